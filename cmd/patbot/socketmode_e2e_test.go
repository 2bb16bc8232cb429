package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/patbot/patbot/bot/slacktest"
)

// newSocketE2E is newE2E in Socket Mode: an app-level token, no signing
// secret, and Slack's traffic over a WebSocket to the fake.
func newSocketE2E(t *testing.T) *e2e {
	t.Helper()
	return newE2EWith(t, func(env map[string]string, sl *slacktest.Server) {
		sl.EnableSocketMode("xapp-1-test-app-token")
		env["SLACK_APP_TOKEN"] = "xapp-1-test-app-token"
		delete(env, "SLACK_SIGNING_SECRET")
	})
}

func TestE2ESocketModeApproveDenyAndCommands(t *testing.T) {
	e := newSocketE2E(t)
	e.waitFor("Socket Mode connection", e.slack.SocketConnected)
	card := e.created()

	// The HTTP routes for Slack are off.
	resp, err := http.Post(e.base+"/slack/interactions", "application/x-www-form-urlencoded", strings.NewReader("payload={}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/slack/interactions in Socket Mode: %d, want 404", resp.StatusCode)
	}

	// A slash command: the answer is the acknowledgement's payload.
	ack, err := e.slack.SendEnvelope("slash_commands", slacktest.SlashCommandPayload("U0ALICE", "/pat", "help", channel, e.slack.ResponseURL("r1")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ack), "/pat grants") {
		t.Errorf("help acknowledged with %s", ack)
	}

	// A deny reason over GitHub's limit: field errors in the acknowledgement.
	meta := fmt.Sprintf(`{"org":%q,"id":%d,"channel":%q}`, org, requestID, channel)
	long := slacktest.ViewSubmissionPayload("U0ALICE", "pat_deny", meta, map[string]map[string]string{"reason": {"reason_input": strings.Repeat("x", 1025)}})
	ack, err = e.slack.SendEnvelope("interactive", slacktest.InteractionPayload(long))
	if err != nil {
		t.Fatal(err)
	}
	var errs struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	if json.Unmarshal(ack, &errs); errs.ResponseAction != "errors" || errs.Errors["reason"] == "" {
		t.Errorf("too-long reason acknowledged with %s", ack)
	}

	// An approval, exactly as over HTTP.
	click := slacktest.BlockActionPayload("U0ALICE", channel, card.TS, "pat_approve", reqKey)
	if _, err := e.slack.SendEnvelope("interactive", slacktest.InteractionPayload(click)); err != nil {
		t.Fatal(err)
	}
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE> (alice)") })
	if len(e.reviews()) != 1 {
		t.Errorf("%d reviews", len(e.reviews()))
	}
	// Refusals too.
	if _, err := e.slack.SendEnvelope("interactive", slacktest.InteractionPayload(slacktest.BlockActionPayload("U0CAROL", channel, card.TS, "pat_approve", reqKey))); err != nil {
		t.Fatal(err)
	}
	e.ephemeral("U0CAROL", "already approved")
}
