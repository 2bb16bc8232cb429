package slacktest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"unicode/utf8"
)

// Block Kit limits Slack enforces (reference: Slack's Block Kit documentation;
// the aggregate limit was observed, not documented).
const (
	maxMessageBlocks  = 50
	maxModalBlocks    = 100
	maxTextObject     = 3000
	maxSectionFields  = 10
	maxFieldText      = 2000
	maxHeaderText     = 150
	maxContextElems   = 10
	maxActionElems    = 25
	maxButtonText     = 75
	maxButtonValue    = 2000
	maxID             = 255
	maxMessageChars   = 13200 // msg_blocks_too_long above this, all blocks included
	maxModalTitle     = 24
	maxMetadata       = 3000
	maxInputMaxLength = 3000
)

type textObject struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji *bool  `json:"emoji"`
}

type element struct {
	Type      string      `json:"type"`
	ActionID  string      `json:"action_id"`
	Text      *textObject `json:"text"`
	Value     string      `json:"value"`
	Style     string      `json:"style"`
	Confirm   *confirm    `json:"confirm"`
	MaxLength int         `json:"max_length"`
}

type confirm struct {
	Title   *textObject `json:"title"`
	Text    *textObject `json:"text"`
	Confirm *textObject `json:"confirm"`
	Deny    *textObject `json:"deny"`
}

type block struct {
	Type      string            `json:"type"`
	BlockID   string            `json:"block_id"`
	Text      *textObject       `json:"text"`
	Fields    []*textObject     `json:"fields"`
	Elements  []json.RawMessage `json:"elements"` // shape depends on the block type
	Accessory *element          `json:"accessory"`
	Label     *textObject       `json:"label"`
	Element   *element          `json:"element"`
}

// checker walks blocks and reports the first limit broken, as the Slack
// error code plus a pointer to the problem.
type checker struct {
	chars int
	ids   map[string]bool
	err   string
}

func (c *checker) fail(format string, a ...any) {
	if c.err == "" {
		c.err = "invalid_blocks: " + fmt.Sprintf(format, a...)
	}
}

func (c *checker) text(t *textObject, max int, where string, required bool) {
	if t == nil {
		if required {
			c.fail("%s: text missing", where)
		}
		return
	}
	n := utf8.RuneCountInString(t.Text)
	c.chars += n
	switch {
	case t.Type != "plain_text" && t.Type != "mrkdwn":
		c.fail("%s: text type %q", where, t.Type)
	case n == 0:
		c.fail("%s: empty text", where)
	case n > max:
		c.fail("%s: %d characters, limit %d", where, n, max)
	case t.Type == "mrkdwn" && t.Emoji != nil:
		c.fail("%s: mrkdwn text must not set emoji", where)
	}
}

func (c *checker) element(e *element, where string) {
	if len(e.ActionID) > maxID {
		c.fail("%s: action_id too long", where)
	}
	switch e.Type {
	case "button":
		c.text(e.Text, maxButtonText, where+".text", true)
		if e.Text != nil && e.Text.Type != "plain_text" {
			c.fail("%s: button text must be plain_text", where)
		}
		if len(e.Value) > maxButtonValue {
			c.fail("%s: value over %d characters", where, maxButtonValue)
		}
		if e.Style != "" && e.Style != "primary" && e.Style != "danger" {
			c.fail("%s: style %q", where, e.Style)
		}
		if e.Confirm != nil {
			c.text(e.Confirm.Title, 100, where+".confirm.title", true)
			c.text(e.Confirm.Text, 300, where+".confirm.text", true)
			c.text(e.Confirm.Confirm, 30, where+".confirm.confirm", true)
			c.text(e.Confirm.Deny, 30, where+".confirm.deny", true)
		}
	case "plain_text_input":
		if e.MaxLength < 0 || e.MaxLength > maxInputMaxLength {
			c.fail("%s: max_length %d", where, e.MaxLength)
		}
	}
}

func (c *checker) blocks(raw json.RawMessage, max int) {
	if len(raw) == 0 {
		return
	}
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		c.err = "invalid_blocks_format"
		return
	}
	if len(blocks) > max {
		c.fail("%d blocks, limit %d", len(blocks), max)
	}
	for i, b := range blocks {
		where := fmt.Sprintf("/blocks/%d", i)
		if b.BlockID != "" {
			if len(b.BlockID) > maxID {
				c.fail("%s: block_id too long", where)
			}
			if c.ids[b.BlockID] {
				c.fail("%s: duplicate block_id %q", where, b.BlockID)
			}
			c.ids[b.BlockID] = true
		}
		switch b.Type {
		case "header":
			c.text(b.Text, maxHeaderText, where+"/text", true)
		case "section":
			c.text(b.Text, maxTextObject, where+"/text", len(b.Fields) == 0)
			if len(b.Fields) > maxSectionFields {
				c.fail("%s: %d fields, limit %d", where, len(b.Fields), maxSectionFields)
			}
			for j, f := range b.Fields {
				c.text(f, maxFieldText, fmt.Sprintf("%s/fields/%d", where, j), true)
			}
			if b.Accessory != nil {
				c.element(b.Accessory, where+"/accessory")
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > maxContextElems {
				c.fail("%s: %d context elements", where, len(b.Elements))
			}
			for j, rawElem := range b.Elements {
				var t textObject
				json.Unmarshal(rawElem, &t)
				if t.Type == "mrkdwn" || t.Type == "plain_text" {
					c.text(&t, maxTextObject, fmt.Sprintf("%s/elements/%d", where, j), true)
				}
			}
		case "actions":
			if len(b.Elements) == 0 || len(b.Elements) > maxActionElems {
				c.fail("%s: %d action elements", where, len(b.Elements))
			}
			seen := map[string]bool{}
			for j, rawElem := range b.Elements {
				e := &element{}
				if err := json.Unmarshal(rawElem, e); err != nil {
					c.fail("%s/elements/%d: %v", where, j, err)
					continue
				}
				if seen[e.ActionID] {
					c.fail("%s: duplicate action_id %q", where, e.ActionID)
				}
				seen[e.ActionID] = true
				c.element(e, fmt.Sprintf("%s/elements/%d", where, j))
			}
		case "input":
			c.text(b.Label, 2000, where+"/label", true)
			if b.Element == nil {
				c.fail("%s: input without element", where)
			} else {
				c.element(b.Element, where+"/element")
			}
		case "divider":
		default:
			c.fail("%s: unsupported block type %q", where, b.Type)
		}
	}
}

func newChecker() *checker { return &checker{ids: map[string]bool{}} }

// checkMessage checks a chat.* call's form.
func checkMessage(form url.Values) string {
	c := newChecker()
	blocks := form.Get("blocks")
	if blocks == "" && form.Get("text") == "" {
		return "no_text"
	}
	c.blocks(json.RawMessage(blocks), maxMessageBlocks)
	if c.err == "" && c.chars > maxMessageChars {
		return "msg_blocks_too_long"
	}
	return c.err
}

// checkMessageJSON checks a message posted to a response_url.
func checkMessageJSON(body []byte) string {
	var m struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return "invalid_json"
	}
	form := url.Values{"text": {m.Text}}
	if len(m.Blocks) > 0 && string(m.Blocks) != "null" {
		form.Set("blocks", string(m.Blocks))
	}
	return checkMessage(form)
}

// checkView checks a modal view.
func checkView(raw json.RawMessage) string {
	var v struct {
		Type            string          `json:"type"`
		Title           *textObject     `json:"title"`
		Submit          *textObject     `json:"submit"`
		Close           *textObject     `json:"close"`
		Blocks          json.RawMessage `json:"blocks"`
		PrivateMetadata string          `json:"private_metadata"`
		CallbackID      string          `json:"callback_id"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "invalid_arguments"
	}
	c := newChecker()
	if v.Type == "home" { // a Home tab: no title, 100 blocks
		c.blocks(v.Blocks, maxModalBlocks)
		return c.err
	}
	if v.Type != "modal" {
		c.fail("view type %q", v.Type)
	}
	c.text(v.Title, maxModalTitle, "/title", true)
	c.text(v.Submit, maxModalTitle, "/submit", false)
	c.text(v.Close, maxModalTitle, "/close", false)
	if utf8.RuneCountInString(v.PrivateMetadata) > maxMetadata {
		c.fail("private_metadata over %d characters", maxMetadata)
	}
	if len(v.CallbackID) > maxID {
		c.fail("callback_id too long")
	}
	c.blocks(v.Blocks, maxModalBlocks)
	return c.err
}

// ValidateMessage reports the error Slack would answer for a message with
// this fallback text and these blocks (JSON), or "" when Slack accepts it.
func ValidateMessage(text string, blocks []byte) string {
	form := url.Values{"text": {text}}
	if len(blocks) > 0 {
		form.Set("blocks", string(blocks))
	}
	return checkMessage(form)
}
