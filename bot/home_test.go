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
	// A day later, a change publishes nothing: the tab is no longer followed.
	h.clock.Advance(25 * time.Hour)
	h.deliver("personal_access_token_request", "created-2", fixture(t, "personal_access_token_request.created.json"))
	h.eventually("the next check ran", func() bool { h.clock.Advance(time.Minute); return h.clock.Timers() > 0 })
	if n := homes(); n != 2 {
		t.Errorf("published %d times after the day", n)
	}
}
