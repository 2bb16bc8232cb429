package bot_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
)

const reviewPath = "/orgs/github-ssh-authority/personal-access-token-requests/415440"

// withTwoApprovers adds bob, another owner, to withApprovers.
func withTwoApprovers(h *harness) func(*bot.Deps) {
	h.gh.SetMembership("github-ssh-authority", "bob", "admin", "active")
	return func(d *bot.Deps) {
		withApprovers(d)
		d.Config.Users["U0BOB"] = "bob"
	}
}

// waitingCard waits until the card says GitHub's confirmation is awaited,
// without buttons.
func (h *harness) waitingCard() {
	h.t.Helper()
	h.eventually("card waiting for GitHub", func() bool { return strings.Contains(h.cardText(), "waiting for GitHub to confirm") })
	if strings.Contains(string(h.slack.Messages(cardChannel)[0].Blocks), `"pat_approve"`) {
		h.t.Error("buttons shown while the outcome is unknown")
	}
}

// timersLeft reports whether the store still holds a timer of the
// request's: a settle timer, or a time-bound grant's.
func (h *harness) timersLeft() bool {
	for _, kind := range []string{"settle", "grant_end", "grant_reminder"} {
		_, err := h.db.Timer(kind, "github-ssh-authority/415440")
		if err == nil {
			return true
		}
		if !errors.Is(err, store.ErrNotFound) {
			h.t.Fatal(err)
		}
	}
	return false
}

// moveClockPastSettle moves time on, past a claim's settle delay, until its
// timer has fired: however the runner's wait and the test's move fall.
func (h *harness) moveClockPastSettle() {
	h.t.Helper()
	if !h.timersLeft() {
		h.t.Fatal("no settle timer in the store")
	}
	h.eventually("the settle timer fired", func() bool {
		h.clock.Advance(31 * time.Second)
		return !h.timersLeft()
	})
}

func (h *harness) reviews() int { return len(h.gh.CallsTo(http.MethodPost, reviewPath)) }

// settledWithOneReview checks that the settle timer is done, and that
// GitHub got one review in all.
func (h *harness) settledWithOneReview() {
	h.t.Helper()
	if h.timersLeft() {
		h.t.Error("the settle timer is still in the store")
	}
	if n := h.reviews(); n != 1 {
		h.t.Errorf("%d reviews sent, want 1", n)
	}
}

// A review that timed out but went through: the claim stays, nobody sends a
// second review, and GitHub's webhook credits the approver.
func TestReviewTimeoutThatSucceededIsCreditedToTheApprover(t *testing.T) {
	h := newHarness(t, "", nil)
	tune := withTwoApprovers(h)
	client, err := github.New(github.Config{AppID: h.gh.AppID, PrivateKey: h.gh.PrivateKeyPEM, BaseURL: h.gh.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h2 := newHarnessWith(t, h, func(d *bot.Deps) { tune(d); d.GitHub = client })
	h2.start()
	h2.posted()
	hold := make(chan struct{}) // GitHub never answers in time
	t.Cleanup(func() { close(hold) })
	h2.gh.Fail(githubtest.Fault{Method: http.MethodPost, Path: reviewPath, Status: http.StatusNoContent, Apply: true, Hold: hold, Times: 1})
	h2.click("U0ALICE", bot.ActionApprove)
	h2.waitingCard()
	h2.eventually("approver told", func() bool {
		e := h2.slack.Ephemerals("U0ALICE")
		return len(e) == 1 && strings.Contains(e[0].Text, "waiting for GitHub to confirm")
	})
	if strings.Contains(h2.slack.Ephemerals("U0ALICE")[0].Text, "Nothing was decided") {
		t.Error("the approver was told nothing was decided")
	}

	// A second approver cannot send a second review meanwhile.
	h2.click("U0BOB", bot.ActionApprove)
	h2.eventually("second approver told", func() bool {
		e := h2.slack.Ephemerals("U0BOB")
		return len(e) == 1 && strings.Contains(e[0].Text, "already deciding")
	})
	if n := h2.reviews(); n != 1 {
		t.Fatalf("%d reviews sent, want 1", n)
	}

	// GitHub's webhook (its sender is the App) credits alice.
	h2.deliver(github.EventPATRequest, "approved", derived(t, "personal_access_token_request.created.json", "created", "approved"))
	h2.eventually("card approved", func() bool { return strings.Contains(h2.cardText(), "*Approved* by <@U0ALICE> (alice)") })
	h2.eventually("requester told", func() bool { return len(h2.slack.Messages("D0HAL")) == 1 })
	decisions := 0
	events, _ := h2.db.AuditEvents(store.AuditFilter{})
	for _, e := range events {
		if e.Kind == "decision" {
			decisions++
			if e.Actor != "alice" || e.SlackUser != "U0ALICE" || e.Source != store.SourceSlack || e.Action != "approve" {
				t.Errorf("decision credited to %+v", e)
			}
		}
	}
	if decisions != 1 {
		t.Errorf("%d decisions in the audit trail, want 1: %+v", decisions, events)
	}
	// Its settle timer, when it comes, finds it settled.
	h2.moveClockPastSettle()
	h2.settledWithOneReview()
}

// A 5xx whose review went through, with no webhook: 30 seconds later GitHub
// lists the token among the grants, and the approval is credited.
func TestUnconfirmedApprovalSettledFromTheGrants(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	h.gh.Fail(githubtest.Fault{Method: http.MethodPost, Path: reviewPath, Status: http.StatusBadGateway, Apply: true, Times: 1})
	h.click("U0ALICE", bot.ActionApprove)
	h.waitingCard()
	if r, _ := h.db.Request("github-ssh-authority", 415440); r.State != store.StateDeciding || !r.Unconfirmed || r.Decision == nil {
		t.Fatalf("record = %s unconfirmed %v %+v", r.State, r.Unconfirmed, r.Decision)
	}
	h.moveClockPastSettle()
	h.eventually("card approved", func() bool { return strings.Contains(h.cardText(), "*Approved* by <@U0ALICE> (alice)") })
	h.settledWithOneReview()
}

// A 5xx whose review did not go through: 30 seconds later GitHub still
// lists the request, so the buttons work again, and the approver hears it.
func TestUnconfirmedReviewReopenedWhenStillPending(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	h.gh.Fail(githubtest.Fault{Method: http.MethodPost, Path: reviewPath, Status: http.StatusInternalServerError, Times: 1})
	h.click("U0ALICE", bot.ActionApprove)
	h.waitingCard()
	h.moveClockPastSettle()
	h.eventually("buttons back", func() bool { return strings.Contains(string(h.slack.Messages(cardChannel)[0].Blocks), `"pat_approve"`) })
	if text := h.cardText(); !strings.Contains(text, "still listed the request as pending") || !strings.Contains(text, "Nothing was decided") {
		t.Errorf("card:\n%s", text)
	}
	h.eventually("approver told", func() bool {
		e := h.slack.Ephemerals("U0ALICE")
		return len(e) == 2 && strings.Contains(e[1].Text, "did not go through")
	})
	h.click("U0ALICE", bot.ActionApprove)
	h.eventually("approved on the second try", func() bool { return strings.Contains(h.cardText(), "*Approved* by <@U0ALICE> (alice)") })
	if n := h.reviews(); n != 2 {
		t.Errorf("%d reviews sent, want 2", n)
	}
}

// patbot stops for good right after GitHub took a review, before anything
// else is recorded, and reconciliation is off: the job its claim wrote
// settles the request after the restart.
func TestClaimSettledAfterACrashWithoutReconciliation(t *testing.T) {
	h := newHarness(t, "", func(d *bot.Deps) { withApprovers(d); d.DrainTimeout = 50 * time.Millisecond })
	h.start()
	h.posted()
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	h.gh.Fail(githubtest.Fault{Method: http.MethodPost, Path: reviewPath, Status: http.StatusNoContent, Apply: true, Hold: hold, Times: 1})
	h.click("U0ALICE", bot.ActionApprove)
	h.eventually("GitHub took the review", func() bool { _, ok := h.gh.Review("github-ssh-authority", 415440); return ok })
	// The crash: from here on nothing this patbot does is recorded.
	h.db.Close()
	h.db = nil
	h.stop()
	h.stop = nil

	h2 := newHarnessWith(t, h, withApprovers) // ReconcileInterval -1: off
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.logs)
		}
	})
	if r, _ := h2.db.Request("github-ssh-authority", 415440); r.State != store.StateDeciding {
		t.Fatalf("state after the crash = %s, want deciding", r.State)
	}
	h2.start()
	h2.moveClockPastSettle()
	h2.eventually("card approved", func() bool { return strings.Contains(h2.cardText(), "*Approved* by <@U0ALICE> (alice)") })
	h2.eventually("requester told", func() bool { return len(h2.slack.Messages("D0HAL")) == 1 })
	h2.settledWithOneReview()
}
