package bot

import (
	"context"
	"errors"
	"time"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// reconcileGrace keeps reconciliation away from requests patbot learnt of
// moments ago: GitHub's list may not show a brand-new request yet.
const reconcileGrace = 2 * time.Minute

// Reconcile brings every org's records and cards in line with GitHub's list
// of pending requests: it posts cards for requests patbot never saw, closes
// those no longer pending, and settles decisions a stop left unfinished. It
// returns how many requests it repaired.
func (b *Bot) Reconcile(ctx context.Context) int {
	repairs := 0
	for _, org := range b.config().sorted("") {
		n, err := b.reconcileOrg(ctx, org)
		repairs += n
		if err != nil {
			b.metrics.reconcileRuns.WithLabelValues("error").Inc()
			b.log.Warn("reconciliation with GitHub failed; it runs again later", LogOrg, org.Login, "err", err)
			continue
		}
		b.metrics.reconcileRuns.WithLabelValues("ok").Inc()
	}
	if repairs > 0 {
		b.log.Info("reconciled with GitHub", "repairs", repairs)
	}
	return repairs
}

func (b *Bot) reconcileOrg(ctx context.Context, org Org) (int, error) {
	pending, err := b.gh.ListRequests(ctx, org.Login, github.RequestFilter{})
	if err != nil {
		return 0, err
	}
	repairs := 0
	inGitHub := map[int64]bool{}
	for _, pr := range pending {
		inGitHub[pr.ID] = true
		r, err := b.store.Request(org.Login, pr.ID)
		switch {
		case errors.Is(err, store.ErrNotFound) || err == nil && r.State == store.StatePending && r.Card.TS == "" && !b.postingElsewhere(r):
			// Never seen, or seen without a card (its job failed): posting
			// is idempotent, under the card lock.
			if err := b.adopt(ctx, org, pr); err != nil {
				return repairs, err
			}
			b.metrics.reconcileRepairs.WithLabelValues("card_posted").Inc()
			repairs++
		case err != nil:
			return repairs, err
		case r.State == store.StateDeciding && b.stale(r):
			// Still pending, so the decision never reached GitHub.
			b.unclaim(r, "patbot stopped before GitHub answered; nothing was decided. Try again.")
			b.showCard(ctx, b.log, r.Org, r.ID)
			b.metrics.reconcileRepairs.WithLabelValues("decision_settled").Inc()
			repairs++
		}
	}

	all, err := b.store.Requests(org.Login)
	if err != nil {
		return repairs, err
	}
	var open []store.Request
	for _, r := range all {
		switch {
		case r.State == store.StatePending || r.State == store.StateDeciding:
			open = append(open, r)
		case r.CardOutdated && r.Card.TS != "":
			// A change the card does not show yet (Slack failed).
			if err := b.refreshCard(ctx, r.Org, r.ID); err != nil {
				return repairs, err
			}
			b.metrics.reconcileRepairs.WithLabelValues("card_updated").Inc()
			repairs++
		}
	}
	for _, r := range open {
		if inGitHub[r.ID] || len(r.History) > 0 && b.now().Sub(r.History[len(r.History)-1].At) < reconcileGrace {
			continue
		}
		if r.State == store.StateDeciding && !b.stale(r) {
			continue // its decision is on its way
		}
		b.close(r)
		b.metrics.decisions.WithLabelValues(string(store.StateClosed), string(store.SourceReconcile)).Inc()
		b.showCard(ctx, b.log, r.Org, r.ID)
		b.metrics.reconcileRepairs.WithLabelValues("card_closed").Inc()
		repairs++
	}
	return repairs, nil
}

// stale reports whether a deciding request's decision can no longer be on
// its way: it was claimed before this run of patbot started, or its answer
// was lost, or longer ago than an interaction may take; and in any case
// longer ago than GitHub may take to act on a review.
func (b *Bot) stale(r store.Request) bool {
	if r.Decision == nil {
		return true
	}
	age := b.now().Sub(r.Decision.At)
	return age >= settleAfter && (r.Decision.At.Before(b.started) || r.Unconfirmed) || age > b.jobTimeout+settleAfter
}

// adopt records a pending request patbot has no card for and posts one.
func (b *Bot) adopt(ctx context.Context, org Org, pr github.PendingRequest) error {
	var repos []string
	if pr.RepositorySelection == github.SelectionSubset {
		list, err := b.gh.ListRequestRepositories(ctx, org.Login, pr.ID)
		if err != nil {
			return err
		}
		for _, repo := range list {
			repos = append(repos, repo.FullName)
		}
	}
	_, err := b.store.UpdateRequest(org.Login, pr.ID, func(r *store.Request, exists bool) error {
		if !exists {
			r.Owner, r.OwnerID = pr.Owner.Login, pr.Owner.ID
			r.CreatedAt = pr.CreatedAt
			r.Repositories, r.RepositoryCount = repos, len(repos)
			r.SetState(store.StatePending, b.now(), store.SourceReconcile, pr.Owner.Login, "found pending in GitHub (the webhook was missed)")
		}
		enrich(r, pr)
		if org.Policy == nil && r.Policy == nil {
			r.Policy = flagsOnly(*r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := b.judge(ctx, org, pr.ID); err != nil {
		return err
	}
	b.log.Info("posting a card for a request patbot had not shown", LogOrg, org.Login, LogRequest, pr.ID)
	if err := b.postCard(ctx, org, pr.ID); err != nil {
		return err
	}
	b.enforce(ctx, org, pr.ID)
	return nil
}

// postingElsewhere reports whether a card post for r may still be under
// way, here or on another replica: its intent is younger than a job's
// attempt may take. Once it is older, the post is done or abandoned, and
// posting looks for it first.
func (b *Bot) postingElsewhere(r store.Request) bool {
	return !r.CardIntent.IsZero() && b.now().Sub(r.CardIntent) < b.jobTimeout+b.jobLease
}

// unclaim puts a request whose decision never reached GitHub back to
// pending, with the reason on its card.
func (b *Bot) unclaim(r store.Request, failure string) {
	b.store.UpdateRequest(r.Org, r.ID, func(r *store.Request, _ bool) error {
		if r.State == store.StateDeciding {
			r.Decision, r.Failure = nil, failure
			r.SetState(store.StatePending, b.now(), store.SourceReconcile, "", "decision never reached GitHub")
		}
		return nil
	})
}

// close records that a request is no longer pending in GitHub. The outcome
// of an unfinished decision is unknown; its LastAttempt stays, so that
// GitHub's webhook, if it comes, still credits its approver.
func (b *Bot) close(r store.Request) {
	b.store.UpdateRequest(r.Org, r.ID, func(r *store.Request, _ bool) error {
		switch r.State {
		case store.StatePending:
			r.SetState(store.StateClosed, b.now(), store.SourceReconcile, "", "no longer pending in GitHub (decided or withdrawn while patbot was not listening)")
		case store.StateDeciding:
			r.Decision = nil
			r.SetState(store.StateClosed, b.now(), store.SourceReconcile, "", "no longer pending in GitHub; whether patbot's last decision went through is unknown")
		}
		return nil
	})
}
