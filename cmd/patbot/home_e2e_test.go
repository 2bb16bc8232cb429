package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/slacktest"
)

// homeText is the text of the latest Home tab published for user.
func (e *e2e) homeText(user string) string {
	homes := e.slack.Homes(user)
	if len(homes) == 0 {
		return ""
	}
	return slacktest.Message{Blocks: json.RawMessage(gjsonBlocks(homes[len(homes)-1]))}.BlockText()
}

func gjsonBlocks(view json.RawMessage) []byte {
	var v struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	json.Unmarshal(view, &v)
	return v.Blocks
}

func (e *e2e) event(body []byte) (int, string) {
	resp, err := http.DefaultClient.Do(slacktest.EventRequest(testSigning, e.base+"/slack/events", time.Now(), body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The App Home: an approver sees the requests they may decide, with the
// card's buttons, which work from there; a member sees their own requests
// and tokens. Events are signed, deduplicated, and the URL is verified.
func TestE2EAppHome(t *testing.T) {
	e := newE2E(t)
	e.seedGrants()
	e.created()

	if code, body := e.event([]byte(`{"type":"url_verification","token":"x","challenge":"ch4llenge"}`)); code != http.StatusOK || body != "ch4llenge" {
		t.Errorf("url_verification: %d %q", code, body)
	}
	unsigned, _ := http.NewRequest(http.MethodPost, e.base+"/slack/events", strings.NewReader(string(slacktest.AppHomeOpened("U0ALICE", "Ev0"))))
	if resp, err := http.DefaultClient.Do(unsigned); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned event: %v %v", resp.StatusCode, err)
	}

	if code, _ := e.event(slacktest.AppHomeOpened("U0ALICE", "Ev1")); code != http.StatusOK {
		t.Fatalf("app_home_opened: %d", code)
	}
	e.waitFor("alice's Home", func() bool { return e.homeText("U0ALICE") != "" })
	mustContain(t, "alice's Home", e.homeText("U0ALICE"), "Requests you may decide in github-ssh-authority* (1)", "`release-bot` for *halain987*",
		"Your requests awaiting a decision* (0)", "Your fine-grained tokens* (0)")
	home := e.slack.Homes("U0ALICE")[0]
	if !strings.Contains(string(home), `"pat_approve"`) || !strings.Contains(string(home), `"type":"home"`) {
		t.Errorf("alice's Home has no Approve button: %s", home)
	}
	// A redelivery of the same event publishes nothing more.
	e.event(slacktest.AppHomeOpened("U0ALICE", "Ev1"))

	e.event(slacktest.AppHomeOpened("U0HAL", "Ev2"))
	e.waitFor("the requester's Home", func() bool { return e.homeText("U0HAL") != "" })
	hal := e.homeText("U0HAL")
	// halain987 is an owner too: he may decide others' requests, not his own.
	mustContain(t, "the requester's Home", hal, "Requests you may decide in github-ssh-authority* (0)", "Your requests awaiting a decision* (1)",
		"`release-bot`", "Your fine-grained tokens* (4)", "`laptop`")
	e.event(slacktest.AppHomeOpened("U0CAROL", "Ev3"))
	e.waitFor("a member's Home", func() bool { return e.homeText("U0CAROL") != "" })
	carol := e.homeText("U0CAROL")
	mustContain(t, "a member's Home", carol, "Your requests awaiting a decision* (0)", "Your fine-grained tokens* (1)", "`carols-token`")
	if strings.Contains(carol, "Requests you may decide") {
		t.Errorf("a member may decide: %s", carol)
	}
	if n := len(e.slack.Homes("U0ALICE")); n != 1 {
		t.Errorf("alice's Home published %d times after a redelivered event", n)
	}

	// Approve from the Home tab: the same path as the card.
	e.slackPost("/slack/interactions", slacktest.BlockActionPayload("U0ALICE", "", "", "pat_approve", reqKey), time.Now(), testSigning)
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE> (alice)") })
	if n := len(e.reviews()); n != 1 {
		t.Errorf("%d reviews", n)
	}
}

// The Home tab over Socket Mode: the same event, as an envelope.
func TestE2ESocketModeAppHome(t *testing.T) {
	e := newSocketE2E(t)
	e.waitFor("Socket Mode connection", e.slack.SocketConnected)
	e.created()
	if _, err := e.slack.SendEnvelope("events_api", json.RawMessage(slacktest.AppHomeOpened("U0ALICE", "Ev9"))); err != nil {
		t.Fatal(err)
	}
	e.waitFor("alice's Home", func() bool { return e.homeText("U0ALICE") != "" })
	mustContain(t, "alice's Home", e.homeText("U0ALICE"), "Requests you may decide in github-ssh-authority* (1)")
}
