// Package slacktest is a fake of the Slack Web API methods patbot calls,
// served by httptest, plus helpers that sign requests the way Slack signs
// them. It checks the bot token, enforces the Block Kit limits Slack
// enforces, keeps the messages patbot posts and updates, records every call,
// and can be told to fail. It does not depend on package testing, so
// patbot's demo can use it too.
package slacktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is a running fake Slack.
type Server struct {
	// URL is the Web API base URL to configure clients with (ends in /api/).
	URL string
	// Token is the bot token the fake accepts.
	Token string

	srv *httptest.Server

	mu         sync.Mutex
	nextTS     int64
	messages   []*Message
	byTS       map[string]*Message // channel + "/" + ts
	counts     map[string]int      // messages per channel
	ephemerals []Ephemeral
	views      []View
	homes      map[string][]json.RawMessage // user -> Home tabs published
	responses  []Response
	calls      []Call
	faults     []*Fault
	channels   map[string]bool // known channels; empty means all exist
	socket     *socket         // nil until EnableSocketMode
}

// Message is a message patbot posted, with its latest content.
type Message struct {
	Channel string
	TS      string
	// ThreadTS is the parent of a thread reply; Broadcast shows the reply
	// in the channel too.
	ThreadTS  string
	Broadcast bool
	Text      string
	Blocks    json.RawMessage
	Metadata  json.RawMessage
	// Updates counts chat.update calls on it.
	Updates int
	// History holds every version's blocks, oldest first.
	History []json.RawMessage
	// Posted is when the fake received the chat.postMessage.
	Posted time.Time
}

// Ephemeral is a message only one user sees.
type Ephemeral struct {
	Channel, User, Text string
	Blocks              json.RawMessage
}

// View is a modal patbot opened or updated.
type View struct {
	Method    string // views.open or views.update
	TriggerID string
	ViewID    string
	View      json.RawMessage
}

// Response is a message posted to a response_url.
type Response struct {
	Path  string
	Body  json.RawMessage
	Error string // why Slack would refuse it, "" when it is valid
}

// Text returns the response's text and every text in its blocks, decoded.
func (r Response) Text() string {
	var m struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	json.Unmarshal(r.Body, &m)
	return m.Text + "\n" + Message{Blocks: m.Blocks}.BlockText()
}

// Message is the response as a message, for what shows messages.
func (r Response) Message() Message {
	var m struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	json.Unmarshal(r.Body, &m)
	return Message{Text: m.Text, Blocks: m.Blocks}
}

// Mrkdwn returns the response's mrkdwn texts (see Message.Mrkdwn).
func (r Response) Mrkdwn() string {
	var m struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	json.Unmarshal(r.Body, &m)
	return Message{Blocks: m.Blocks}.Mrkdwn()
}

// Call is one Web API call.
type Call struct {
	Method string // e.g. chat.postMessage
	Form   url.Values
	JSON   json.RawMessage
	Error  string // the error Slack answered, "" when ok
}

// Fault makes calls to a method fail.
type Fault struct {
	Method     string // e.g. chat.update; "" matches every method
	Status     int    // HTTP status; 0 means 200 with ok:false
	Error      string // Slack error code for ok:false
	RetryAfter int    // seconds, sent with 429
	Delay      time.Duration
	Times      int // 0 means every call
	// Apply makes the call take effect before the failure is answered, as
	// when Slack posts a message but the answer is lost.
	Apply bool
	// Body, when set, is the whole answer (status 200 unless Status says
	// otherwise): garbage, a proxy's error page.
	Body string
}

// New starts a fake Slack accepting token.
func New(token string) *Server {
	s := &Server{Token: token, nextTS: 1_700_000_000_000100, byTS: map[string]*Message{}, counts: map[string]int{}, homes: map[string][]json.RawMessage{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/apps.connections.open", s.openConnection)
	mux.HandleFunc("GET /socket", s.serveSocket)
	mux.HandleFunc("POST /api/{method}", s.serveMethod)
	mux.HandleFunc("POST /response/{id}", s.serveResponseURL)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "slacktest: no such endpoint "+r.URL.Path, http.StatusNotFound)
	})
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/api/"
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

func cmpOr(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// ResponseURL returns a response_url served by the fake.
func (s *Server) ResponseURL(id string) string { return s.srv.URL + "/response/" + id }

// SetChannels restricts the channels that exist; posting elsewhere fails
// with channel_not_found.
func (s *Server) SetChannels(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels = map[string]bool{}
	for _, id := range ids {
		s.channels[id] = true
	}
}

// Fail adds a fault.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Heal removes every fault: the outage is over.
func (s *Server) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// Messages returns copies of the messages posted to channel ("" for all).
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if (channel == "" || m.Channel == channel) && (m.ThreadTS == "" || m.Broadcast) {
			c := *m
			c.History = slices.Clone(m.History)
			out = append(out, c)
		}
	}
	return out
}

// Homes returns the Home tab views published for user, oldest first.
func (s *Server) Homes(user string) []json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.homes[user])
}

// EventRequest builds an Events API request as Slack sends it to a Request
// URL: the JSON body, signed at ts.
func EventRequest(secret, target string, ts time.Time, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Sign(secret, ts, body))
	req.RequestURI = ""
	return req
}

// AppHomeOpened is the event_callback Slack sends when user opens the app's
// Home tab.
func AppHomeOpened(user, eventID string) []byte {
	b, _ := json.Marshal(map[string]any{
		"token": "deprecated-verification-token", "team_id": "T0001", "api_app_id": "A0PATBOT", "type": "event_callback",
		"event_id": eventID, "event_time": time.Now().Unix(),
		"event": map[string]any{"type": "app_home_opened", "user": user, "channel": "D" + strings.TrimPrefix(user, "U"), "tab": "home",
			"event_ts": fmt.Sprintf("%d.000100", time.Now().Unix())},
	})
	return b
}

// Replies returns the thread replies to the message ts in channel.
func (s *Server) Replies(channel, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages {
		if m.Channel == channel && m.ThreadTS == ts {
			out = append(out, *m)
		}
	}
	return out
}

// Ephemerals returns the ephemeral messages sent to user ("" for all).
func (s *Server) Ephemerals(user string) []Ephemeral {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Ephemeral
	for _, e := range s.ephemerals {
		if user == "" || e.User == user {
			out = append(out, e)
		}
	}
	return out
}

// Views returns the modals opened or updated.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.views)
}

// Responses returns what was posted to response URLs.
func (s *Server) Responses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}

// Calls returns every Web API call, or those of one method.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	problem := checkMessageJSON(body)
	s.mu.Lock()
	s.responses = append(s.responses, Response{Path: r.URL.Path, Body: body, Error: problem})
	s.mu.Unlock()
	if problem != "" {
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	fmt.Fprint(w, "ok")
}

func (s *Server) serveMethod(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	call := Call{Method: method}
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		call.JSON = body
	} else {
		call.Form, _ = url.ParseQuery(string(body))
		if t := call.Form.Get("token"); t != "" {
			token = t
		}
	}
	var result map[string]any
	status := http.StatusOK
	f := s.fault(method)
	if f != nil {
		if f.Apply && token == s.Token {
			s.apply(method, call)
		}
		time.Sleep(f.Delay)
		if f.Body != "" {
			call.Error = "garbage"
			s.mu.Lock()
			s.calls = append(s.calls, call)
			s.mu.Unlock()
			w.WriteHeader(cmpOr(f.Status, http.StatusOK))
			io.WriteString(w, f.Body)
			return
		}
		if f.Status != 0 && f.Status != http.StatusOK {
			status = f.Status
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			}
			call.Error = http.StatusText(f.Status)
		} else {
			call.Error = f.Error
		}
	} else if token != s.Token {
		call.Error = "invalid_auth"
	}
	// The call is recorded before it takes effect, so that whoever sees the
	// effect (a message) also sees the call.
	s.mu.Lock()
	index := len(s.calls)
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	if f == nil && token == s.Token {
		result, call.Error = s.apply(method, call)
		s.mu.Lock()
		s.calls[index].Error = call.Error
		s.mu.Unlock()
	}

	if status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	out := map[string]any{"ok": call.Error == ""}
	if call.Error != "" {
		out["error"] = call.Error
	}
	for k, v := range result {
		out[k] = v
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(out)
}

func (s *Server) fault(method string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method != "" && f.Method != method {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
		}
		return f
	}
	return nil
}

// apply performs a method's effect and returns its result fields or a
// Slack error code.
func (s *Server) apply(method string, c Call) (map[string]any, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "auth.test":
		return map[string]any{"url": "https://example.slack.com/", "team": "Example", "user": "patbot", "team_id": "T0001", "user_id": "U0BOT", "bot_id": "B0BOT"}, ""
	case "chat.postMessage":
		ch := c.Form.Get("channel")
		if e := s.checkChannel(ch); e != "" {
			return nil, e
		}
		if e := checkMessage(c.Form); e != "" {
			return nil, e
		}
		// Timestamps come from the clock, as Slack's do, and never repeat.
		s.nextTS = max(s.nextTS+1, time.Now().UnixMicro())
		ts := fmt.Sprintf("%d.%06d", s.nextTS/1_000_000, s.nextTS%1_000_000)
		blocks := json.RawMessage(c.Form.Get("blocks"))
		thread := c.Form.Get("thread_ts")
		if thread != "" && s.byTS[ch+"/"+thread] == nil {
			return nil, "thread_not_found"
		}
		m := &Message{Channel: ch, TS: ts, Text: c.Form.Get("text"), Blocks: blocks, ThreadTS: thread, Broadcast: c.Form.Get("reply_broadcast") == "true",
			Metadata: json.RawMessage(c.Form.Get("metadata")), History: []json.RawMessage{blocks}, Posted: time.Now()}
		s.messages = append(s.messages, m)
		s.byTS[ch+"/"+ts] = m
		s.counts[ch]++
		return map[string]any{"channel": ch, "ts": ts}, ""
	case "chat.update":
		ch, ts := c.Form.Get("channel"), c.Form.Get("ts")
		m := s.byTS[ch+"/"+ts]
		if m == nil {
			return nil, "message_not_found"
		}
		if e := checkMessage(c.Form); e != "" {
			return nil, e
		}
		m.Text, m.Blocks = c.Form.Get("text"), json.RawMessage(c.Form.Get("blocks"))
		m.Updates++
		m.History = append(m.History, m.Blocks)
		return map[string]any{"channel": ch, "ts": ts, "text": m.Text}, ""
	case "chat.postEphemeral":
		ch := c.Form.Get("channel")
		if e := s.checkChannel(ch); e != "" {
			return nil, e
		}
		if e := checkMessage(c.Form); e != "" {
			return nil, e
		}
		s.ephemerals = append(s.ephemerals, Ephemeral{Channel: ch, User: c.Form.Get("user"), Text: c.Form.Get("text"), Blocks: json.RawMessage(c.Form.Get("blocks"))})
		return map[string]any{"message_ts": "1700000000.999999"}, ""
	case "conversations.open":
		users := c.Form.Get("users")
		if users == "" {
			return nil, "invalid_arguments"
		}
		return map[string]any{"channel": map[string]any{"id": "D" + strings.TrimPrefix(users, "U")}}, ""
	case "conversations.history":
		ch := c.Form.Get("channel")
		if e := s.checkChannel(ch); e != "" {
			return nil, e
		}
		oldest := c.Form.Get("oldest")
		limit, _ := strconv.Atoi(c.Form.Get("limit"))
		limit = min(max(limit, 1), 999)
		start, _ := strconv.Atoi(c.Form.Get("cursor"))
		var msgs []any
		// Newest first, as Slack returns them.
		for i := len(s.messages) - 1; i >= 0; i-- {
			m := s.messages[i]
			if m.Channel != ch || m.TS < oldest || m.ThreadTS != "" && !m.Broadcast { // replies are not history
				continue
			}
			msg := map[string]any{"type": "message", "ts": m.TS, "text": m.Text, "bot_id": "B0BOT"}
			if incl := c.Form.Get("include_all_metadata"); len(m.Metadata) > 0 && (incl == "1" || incl == "true") {
				msg["metadata"] = m.Metadata
			}
			msgs = append(msgs, msg)
		}
		end := min(start+limit, len(msgs))
		page := msgs[min(start, len(msgs)):end]
		out := map[string]any{"messages": page, "has_more": end < len(msgs)}
		if end < len(msgs) {
			out["response_metadata"] = map[string]any{"next_cursor": strconv.Itoa(end)}
		}
		return out, ""
	case "conversations.info":
		ch := c.Form.Get("channel")
		if e := s.checkChannel(ch); e != "" {
			return nil, e
		}
		return map[string]any{"channel": map[string]any{"id": ch, "name": "pat-requests", "is_member": true}}, ""
	case "views.publish":
		var req struct {
			UserID string          `json:"user_id"`
			View   json.RawMessage `json:"view"`
		}
		if err := json.Unmarshal(c.JSON, &req); err != nil || req.UserID == "" {
			return nil, "invalid_arguments"
		}
		if e := checkView(req.View); e != "" {
			return nil, e
		}
		s.homes[req.UserID] = append(s.homes[req.UserID], req.View)
		return map[string]any{"view": map[string]any{"id": "VHOME" + req.UserID}}, ""
	case "views.open", "views.update":
		var req struct {
			TriggerID string          `json:"trigger_id"`
			ViewID    string          `json:"view_id"`
			View      json.RawMessage `json:"view"`
		}
		if err := json.Unmarshal(c.JSON, &req); err != nil {
			return nil, "invalid_json"
		}
		if method == "views.open" && req.TriggerID == "" {
			return nil, "invalid_trigger_id"
		}
		if e := checkView(req.View); e != "" {
			return nil, e
		}
		id := req.ViewID
		if id == "" {
			id = fmt.Sprintf("V%04d", len(s.views)+1)
		}
		s.views = append(s.views, View{Method: method, TriggerID: req.TriggerID, ViewID: id, View: req.View})
		return map[string]any{"view": map[string]any{"id": id}}, ""
	}
	return nil, "unknown_method"
}

func (s *Server) checkChannel(ch string) string {
	if ch == "" || len(s.channels) > 0 && !s.channels[ch] && !strings.HasPrefix(ch, "D") {
		return "channel_not_found"
	}
	return ""
}

// Sign returns the X-Slack-Signature for a request body sent at ts.
func Sign(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", ts.Unix())
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SignedRequest builds a request as Slack sends it to a Request URL: form
// encoded, signed at ts.
func SignedRequest(secret, target string, ts time.Time, form url.Values) *http.Request {
	body := form.Encode()
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Sign(secret, ts, []byte(body)))
	req.RequestURI = ""
	return req
}

// BlockActionPayload is the form Slack posts when user clicks a button
// (action_id, value) on the message ts in channel.
func BlockActionPayload(user, channel, ts, actionID, value string) url.Values {
	p := map[string]any{
		"type":                  "block_actions",
		"user":                  map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": "T0001"},
		"api_app_id":            "A0PATBOT",
		"token":                 "deprecated-verification-token",
		"container":             map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
		"trigger_id":            fmt.Sprintf("%d.1234.%s", time.Now().UnixNano(), user),
		"team":                  map[string]any{"id": "T0001", "domain": "example"},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               map[string]any{"id": channel, "name": "pat-requests"},
		"message":               map[string]any{"type": "message", "ts": ts, "bot_id": "B0BOT", "text": "card"},
		"state":                 map[string]any{"values": map[string]any{}},
		"response_url":          "https://hooks.slack.invalid/actions/T0001/1/xyz",
		"actions": []any{map[string]any{
			"action_id": actionID, "block_id": "b1", "value": value, "type": "button", "action_ts": "1700000000.123456",
			"text": map[string]any{"type": "plain_text", "text": "Click", "emoji": true},
		}},
	}
	raw, _ := json.Marshal(p)
	return url.Values{"payload": {string(raw)}}
}

// SlashCommandForm is the form Slack posts for a slash command typed by
// user in channel; answers to responseURL reach the fake.
func SlashCommandForm(user, command, text, channel, responseURL string) url.Values {
	return url.Values{
		"token": {"deprecated-verification-token"}, "team_id": {"T0001"}, "team_domain": {"example"},
		"channel_id": {channel}, "channel_name": {"pat-requests"}, "user_id": {user}, "user_name": {strings.ToLower(user)},
		"command": {command}, "text": {text}, "api_app_id": {"A0PATBOT"}, "is_enterprise_install": {"false"},
		"response_url": {responseURL}, "trigger_id": {fmt.Sprintf("%d.9012.%s", time.Now().UnixNano(), user)},
	}
}

// WithResponseURL sets the response_url of a BlockActionPayload, for
// clicks on ephemeral messages that are answered through it.
func WithResponseURL(form url.Values, responseURL string) url.Values {
	var p map[string]any
	json.Unmarshal([]byte(form.Get("payload")), &p)
	p["response_url"] = responseURL
	raw, _ := json.Marshal(p)
	return url.Values{"payload": {string(raw)}}
}

// ViewSubmissionPayload is the form Slack posts when user submits a modal
// whose input values are values[block_id][action_id].
func ViewSubmissionPayload(user, callbackID, privateMetadata string, values map[string]map[string]string) url.Values {
	state := map[string]any{}
	for block, actions := range values {
		m := map[string]any{}
		for action, v := range actions {
			m[action] = map[string]any{"type": "plain_text_input", "value": v}
		}
		state[block] = m
	}
	return viewSubmission(user, callbackID, privateMetadata, state)
}

// ViewSubmissionStatePayload is a modal's submission with the state given
// as Slack sends it (block id -> action id -> value object).
func ViewSubmissionStatePayload(user, callbackID, privateMetadata string, state map[string]any) url.Values {
	return viewSubmission(user, callbackID, privateMetadata, state)
}

// ViewSubmissionSelectPayload is a modal's submission with one option
// picked in a static select.
func ViewSubmissionSelectPayload(user, callbackID, privateMetadata, block, action, option string) url.Values {
	state := map[string]any{block: map[string]any{action: map[string]any{"type": "static_select",
		"selected_option": map[string]any{"value": option, "text": map[string]any{"type": "plain_text", "text": option}}}}}
	return viewSubmission(user, callbackID, privateMetadata, state)
}

func viewSubmission(user, callbackID, privateMetadata string, state map[string]any) url.Values {
	p := map[string]any{
		"type":       "view_submission",
		"team":       map[string]any{"id": "T0001", "domain": "example"},
		"user":       map[string]any{"id": user, "username": strings.ToLower(user), "name": strings.ToLower(user), "team_id": "T0001"},
		"api_app_id": "A0PATBOT",
		"token":      "deprecated-verification-token",
		"trigger_id": fmt.Sprintf("%d.5678.%s", time.Now().UnixNano(), user),
		"view": map[string]any{
			"id": "V0001", "team_id": "T0001", "type": "modal", "callback_id": callbackID, "private_metadata": privateMetadata,
			"hash": "1700000000.abcdef", "state": map[string]any{"values": state},
			"title": map[string]any{"type": "plain_text", "text": "Deny token request"},
		},
		"response_urls": []any{},
	}
	raw, _ := json.Marshal(p)
	return url.Values{"payload": {string(raw)}}
}

// BlockText returns every text in the message's blocks, decoded, one per
// line: what a reader sees, for tests to search.
func (m Message) BlockText() string { return blockTexts(m.Blocks, false) }

// Mrkdwn returns the message's mrkdwn texts only: the ones in which Slack
// reads mentions and links, where requester-written text must be escaped.
func (m Message) Mrkdwn() string { return blockTexts(m.Blocks, true) }

func blockTexts(blocks json.RawMessage, onlyMrkdwn bool) string {
	var v any
	if err := json.Unmarshal(blocks, &v); err != nil {
		return ""
	}
	var texts []string
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			if t, ok := x["text"].(string); ok && (!onlyMrkdwn || x["type"] == "mrkdwn") {
				texts = append(texts, t)
			}
			for _, v := range x {
				walk(v)
			}
		case []any:
			for _, v := range x {
				walk(v)
			}
		}
	}
	walk(v)
	return strings.Join(texts, "\n")
}

// Count returns how many messages were posted to channel, without copying
// them (for tools that poll).
func (s *Server) Count(channel string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[channel]
}

// FindMetadata returns the message in channel whose metadata contains
// fragment, without copying the others (for tools that poll).
func (s *Server) FindMetadata(channel, fragment string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.messages) - 1; i >= 0; i-- {
		if m := s.messages[i]; m.Channel == channel && bytes.Contains(m.Metadata, []byte(fragment)) {
			c := *m
			c.History = slices.Clone(m.History)
			return c, true
		}
	}
	return Message{}, false
}
