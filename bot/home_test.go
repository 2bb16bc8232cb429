package bot_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/store"
)

// openHome sends Slack's app_home_opened for user, signed with secret, and
// returns patbot's answer.
func (h *harness) openHome(secret, user, eventID string) int {
	rec := httptest.NewRecorder()
	h.bot.EventsHandler().ServeHTTP(rec, slacktest.EventRequest(secret, "/slack/events", h.clock.Now(), slacktest.AppHomeOpened(user, eventID)))
	return rec.Code
}

// A Home tab follows what it shows, at most once a minute, and only for a
// day after it was opened.
func TestHomeRefreshedWhenItsRequestsChange(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	homes := func() int { return len(h.slack.Homes("U0ALICE")) }
	if code := h.openHome(signingSecret, "U0ALICE", "Ev1"); code != http.StatusOK {
		t.Fatalf("event: %d", code)
	}
	h.eventually("published", func() bool { return homes() == 1 })
	h.click("U0ALICE", bot.ActionApprove)
	h.eventually("approved", func() bool { return strings.Contains(h.cardText(), "*Approved*") })
	// Changed, but published less than a minute ago: it waits.
	h.clock.Advance(30 * time.Second)
	if n := homes(); n != 1 {
		t.Fatalf("published %d times within the minute", n)
	}
	h.eventually("refreshed after the minute", func() bool {
		h.clock.Advance(10 * time.Second)
		return homes() == 2
	})
	if strings.Contains(string(h.slack.Homes("U0ALICE")[1]), `"pat_approve"`) {
		t.Error("the refreshed Home still offers the decided request")
	}
	// A day later, alice's tab is no longer followed: the refresh that
	// republishes a tab opened since (the requester's) leaves hers alone.
	h.clock.Advance(25 * time.Hour)
	h.openHome(signingSecret, "U0HAL", "Ev2")
	h.eventually("the requester's tab", func() bool { return len(h.slack.Homes("U0HAL")) == 1 })
	h.deliver("personal_access_token_request", "created-again", fixture(t, "personal_access_token_request.created.json")) // its card is refreshed
	h.eventually("the requester's tab refreshed", func() bool {
		h.clock.Advance(10 * time.Second)
		return len(h.slack.Homes("U0HAL")) == 2
	})
	if n := homes(); n != 2 {
		t.Errorf("alice's tab published %d times a day after she opened it", n)
	}
}

// A refreshed Home tab stays at the page its user turned to.
func TestHomeRefreshKeepsThePage(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	for i := range int64(80) {
		if _, err := h.db.UpdateRequest("github-ssh-authority", 900+i, func(r *store.Request, _ bool) error {
			r.State, r.Owner, r.TokenName, r.CreatedAt = store.StatePending, "dev", "t", h.clock.Now()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	homes := func() []json.RawMessage { return h.slack.Homes("U0ALICE") }
	h.openHome(signingSecret, "U0ALICE", "Ev1")
	h.eventually("published", func() bool { return len(homes()) == 1 })
	pageOf := func(n int) string {
		t.Helper()
		for _, p := range []string{"Page 1 of 2", "Page 2 of 2"} {
			if strings.Contains(string(homes()[n]), p) {
				return p
			}
		}
		t.Fatalf("Home tab %d without its page: %s", n, homes()[n])
		return ""
	}
	if p := pageOf(0); p != "Page 1 of 2" {
		t.Errorf("opened at %s", p)
	}

	rec := httptest.NewRecorder()
	turn := slacktest.BlockActionPayload("U0ALICE", "", "", view.ActionHomePage+"_next", "1")
	h.bot.InteractionsHandler().ServeHTTP(rec, slacktest.SignedRequest(signingSecret, "/slack/interactions", h.clock.Now(), turn))
	h.eventually("page 2", func() bool { return len(homes()) == 2 })
	if p := pageOf(1); p != "Page 2 of 2" {
		t.Errorf("turned to %s", p)
	}

	h.click("U0ALICE", bot.ActionApprove) // something the tab shows changes
	h.eventually("refreshed", func() bool {
		h.clock.Advance(10 * time.Second)
		return len(homes()) == 3
	})
	if p := pageOf(2); p != "Page 2 of 2" {
		t.Errorf("refreshed at %s, not where its user was", p)
	}
}

// An event the store cannot record is answered 500, so that Slack sends it
// again; a bad signature is refused before anything is read.
func TestEventNotRecordedIsAnswered500(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	if code := h.openHome("not-the-secret", "U0ALICE", "Ev1"); code != http.StatusUnauthorized {
		t.Errorf("badly signed event: %d", code)
	}
	h.db.Close() // the store fails from here on
	if code := h.openHome(signingSecret, "U0ALICE", "Ev2"); code != http.StatusInternalServerError {
		t.Errorf("event the store could not record: %d, want 500", code)
	}
	if n := len(h.slack.Homes("U0ALICE")); n != 0 {
		t.Errorf("published %d Home tabs", n)
	}
	h.db = nil
}
