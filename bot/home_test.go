package bot_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/slacktest"
)

// A Home tab follows what it shows, at most once a minute, and only for a
// day after it was opened.
func TestHomeRefreshedWhenItsRequestsChange(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	open := func(eventID string) {
		rec := httptest.NewRecorder()
		h.bot.EventsHandler().ServeHTTP(rec, slacktest.EventRequest(signingSecret, "/slack/events", h.clock.Now(), slacktest.AppHomeOpened("U0ALICE", eventID)))
		if rec.Code != 200 {
			t.Fatalf("event: %d", rec.Code)
		}
	}
	homes := func() int { return len(h.slack.Homes("U0ALICE")) }
	open("Ev1")
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
	rec := httptest.NewRecorder()
	h.bot.EventsHandler().ServeHTTP(rec, slacktest.EventRequest(signingSecret, "/slack/events", h.clock.Now(), slacktest.AppHomeOpened("U0HAL", "Ev2")))
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
