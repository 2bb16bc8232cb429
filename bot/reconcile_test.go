package bot_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
)

// reconciling turns reconciliation on, every interval.
func reconciling(interval time.Duration) func(*bot.Deps) {
	return func(d *bot.Deps) { withApprovers(d); d.ReconcileInterval = interval }
}

func TestReconcilePostsCardsForMissedWebhooks(t *testing.T) {
	h := newHarness(t, "", reconciling(time.Hour))
	// GitHub lists the fixture's request (from newGitHub) and a subset
	// request whose webhook never arrived.
	h.gh.AddRequest("github-ssh-authority", github.PendingRequest{ID: 777, Owner: github.User{Login: "hubot", ID: 2}, TokenID: 5,
		TokenName: "deploy", Reason: "deploys", RepositorySelection: "subset"},
		github.Repository{ID: 1, Name: "api", FullName: "github-ssh-authority/api"})
	h.start()
	h.eventually("two cards, recorded", func() bool {
		r, err := h.db.Request("github-ssh-authority", 777)
		return len(h.slack.Messages(cardChannel)) == 2 && err == nil && r.Card.TS != ""
	})
	r, err := h.db.Request("github-ssh-authority", 777)
	if err != nil || r.State != store.StatePending || r.Card.TS == "" || r.Reason != "deploys" || len(r.Repositories) != 1 ||
		r.History[0].Source != store.SourceReconcile {
		t.Fatalf("record = %+v, %v", r, err)
	}
	var text string
	for _, m := range h.slack.Messages(cardChannel) {
		text += m.BlockText()
	}
	if !strings.Contains(text, "`github-ssh-authority/api`") || !strings.Contains(text, "deploys") {
		t.Errorf("cards:\n%s", text)
	}
	// A webhook arriving late changes nothing: the card exists.
	h.deliver(github.EventPATRequest, "late", fixture(t, "personal_access_token_request.created.json"))
	h.eventually("late webhook processed", func() bool { return len(h.jobs()) == 0 })
	if n := len(h.slack.Messages(cardChannel)); n != 2 {
		t.Errorf("%d cards after the late webhook, want 2", n)
	}
	if got := h.bot.Reconcile(context.Background()); got != 0 {
		t.Errorf("a second reconciliation repaired %d requests", got)
	}
}

func TestReconcileClosesCardsDecidedWhileDown(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	h.stop()
	h.stop = nil
	// Decided in GitHub while patbot was down, and the webhook was lost.
	h.gh.RemoveRequest("github-ssh-authority", 415440)
	h.clock.Advance(3 * time.Minute) // past the grace period
	h2 := newHarnessWith(t, h, withApprovers)
	if got := h2.bot.Reconcile(context.Background()); got != 1 {
		t.Fatalf("repaired %d, want 1", got)
	}
	if !strings.Contains(h.cardText(), "No longer pending") || strings.Contains(string(h.slack.Messages(cardChannel)[0].Blocks), "pat_approve") {
		t.Errorf("card:\n%s", h.cardText())
	}
	r, _ := h.db.Request("github-ssh-authority", 415440)
	if r.State != store.StateClosed || r.History[len(r.History)-1].Source != store.SourceReconcile {
		t.Errorf("record = %s %+v", r.State, r.History)
	}
}

func TestReconcileSettlesDecisionsLeftByAStop(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stillThere  bool
		wantState   store.State
		wantOnCard  string
		wantButtons bool
	}{
		{"still pending in GitHub", true, store.StatePending, "patbot stopped before GitHub answered", true},
		{"gone from GitHub", false, store.StateClosed, "No longer pending", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "", withApprovers)
			h.start()
			h.posted()
			h.stop()
			h.stop = nil
			// A claim from before the stop: the review never got an answer.
			_, err := h.db.UpdateRequest("github-ssh-authority", 415440, func(r *store.Request, _ bool) error {
				d := &store.Decision{Action: "approve", Actor: "alice", SlackUser: "U0ALICE", At: h.clock.Now().Add(-time.Minute), Source: store.SourceSlack}
				r.Decision, r.LastAttempt = d, d
				r.SetState(store.StateDeciding, d.At.Add(-5*time.Minute), store.SourceSlack, "alice", "approve")
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.stillThere {
				h.gh.RemoveRequest("github-ssh-authority", 415440)
			}
			h2 := newHarnessWith(t, h, reconciling(time.Hour))
			h2.start()
			h2.eventually("card updated", func() bool { return strings.Contains(h.cardText(), tc.wantOnCard) })
			if has := strings.Contains(string(h.slack.Messages(cardChannel)[0].Blocks), "pat_approve"); has != tc.wantButtons {
				t.Errorf("buttons = %v, want %v", has, tc.wantButtons)
			}
			r, _ := h.db.Request("github-ssh-authority", 415440)
			if r.State != tc.wantState || r.Decision != nil {
				t.Errorf("record = %s %+v", r.State, r.Decision)
			}
			if tc.stillThere {
				// The buttons work again.
				h2.click("U0ALICE", bot.ActionApprove)
				h2.eventually("approved", func() bool { return strings.Contains(h.cardText(), "*Approved* by <@U0ALICE>") })
			} else {
				// GitHub's webhook, if it comes, still credits the approver.
				h2.deliver(github.EventPATRequest, "approved", derived(t, "personal_access_token_request.created.json", "created", "approved"))
				h2.eventually("approved", func() bool { return strings.Contains(h.cardText(), "*Approved* by <@U0ALICE>") })
			}
		})
	}
}

func TestReconcileRunsPeriodicallyAndSurvivesGitHubErrors(t *testing.T) {
	h := newHarness(t, "", reconciling(50*time.Millisecond))
	h.gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: "/orgs/github-ssh-authority/personal-access-token-requests", Status: http.StatusInternalServerError, Times: 3})
	h.start()
	h.eventually("card posted once GitHub answers", func() bool { return len(h.slack.Messages(cardChannel)) == 1 })
	if !strings.Contains(h.logs.String(), "reconciliation with GitHub failed") {
		t.Error("the failure was not logged")
	}
}
