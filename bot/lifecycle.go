package bot

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// outcomeOf maps a webhook action that ends a request to the state it ends
// in.
var outcomeOf = map[string]store.State{
	github.ActionApproved:  store.StateApproved,
	github.ActionDenied:    store.StateDenied,
	github.ActionCancelled: store.StateCancelled,
}

// jobRefreshCard is the Event of a job that brings a card up to date after
// Slack failed to take an update.
const jobRefreshCard = "card"

// process does the work of one job: an accepted webhook, or a card to
// refresh. It must be idempotent: a crash between doing the work and
// finishing the job runs it again.
func (b *Bot) process(ctx context.Context, job store.Job) error {
	if job.Event == jobRefreshCard {
		return b.refreshCard(ctx, job.Org, job.RequestID)
	}
	ev, err := github.DecodeEvent(job.Payload)
	if err != nil {
		return permanent(fmt.Errorf("parse stored payload: %w", err))
	}
	b.gh.RememberInstallation(ev.Org, ev.InstallationID)
	log := b.log.With(LogDelivery, job.DeliveryID, LogOrg, ev.Org, LogRequest, ev.Request.ID)
	switch ev.Action {
	case github.ActionCreated:
		return b.processCreated(ctx, log, ev)
	case github.ActionApproved, github.ActionDenied, github.ActionCancelled:
		return b.processOutcome(ctx, log, ev)
	}
	return permanent(fmt.Errorf("unhandled action %q", ev.Action))
}

// processCreated records a new request, completed from GitHub's list of
// pending requests (the webhook lacks the reason), and posts its card. It
// asks GitHub first, so that the record is written once.
func (b *Bot) processCreated(ctx context.Context, log *slog.Logger, ev *github.RequestEvent) error {
	org, served := b.config().Org(ev.Org)
	var pr github.PendingRequest
	pending := false
	if served {
		r, err := b.store.Request(ev.Org, ev.Request.ID)
		if err == nil && (r.State != store.StatePending || r.Card.TS != "") {
			// Decided or posted already; a card an earlier attempt may have
			// posted unrecorded is found and brought up to date, and a
			// rule's decision an earlier attempt did not make is made.
			if err := b.refreshCard(ctx, ev.Org, ev.Request.ID); err != nil {
				return err
			}
			b.enforce(ctx, org, ev.Request.ID)
			return nil
		}
		if pr, pending, err = b.findPending(ctx, org, ev.Request.ID, ev.Request.Owner.Login, ev.Request.TokenID); err != nil {
			return fmt.Errorf("look up request in GitHub: %w", err)
		}
	}
	// The intent to post the card is recorded in the same write; an
	// earlier attempt's intent is passed on, so that its card is looked for.
	var intentBefore time.Time
	r, err := b.store.UpdateRequest(ev.Org, ev.Request.ID, func(r *store.Request, exists bool) error {
		applyDetails(r, ev)
		if !exists {
			r.SetState(store.StatePending, b.now(), store.SourceWebhook, ev.Request.Owner.Login, "requested")
		}
		intentBefore = r.CardIntent
		switch {
		case pending && r.State == store.StatePending:
			enrich(r, pr)
			r.CardIntent = b.now()
			if org.Policy == nil && r.Policy == nil {
				r.Policy = flagsOnly(*r)
			}
		case pending:
			enrich(r, pr)
		case served && r.State == store.StatePending:
			r.SetState(store.StateClosed, b.now(), store.SourceWebhook, "", "not pending in GitHub when patbot looked it up")
		}
		return nil
	})
	if err != nil || !served || r.State != store.StatePending {
		if err == nil && served && !pending {
			log.Info("request no longer pending in GitHub; no card posted")
		}
		return err
	}
	if err := b.judge(ctx, org, ev.Request.ID); err != nil {
		return fmt.Errorf("record the policy's verdict: %w", err)
	}
	if err := b.postCardRecorded(ctx, org, ev.Request.ID, intentBefore); err != nil {
		return err
	}
	b.enforce(ctx, org, ev.Request.ID)
	return nil
}

// enrich completes a record with what only the list-requests endpoint says.
func enrich(r *store.Request, pr github.PendingRequest) {
	r.Reason = pr.Reason
	if pr.TokenID != 0 {
		r.TokenID = pr.TokenID
	}
	if pr.TokenName != "" {
		r.TokenName = pr.TokenName
	}
	if empty(r.PermissionsResult) {
		r.PermissionsResult = storePermissions(pr.Permissions)
	}
	if r.RepositorySelection == "" {
		r.RepositorySelection = pr.RepositorySelection
	}
	if r.TokenExpiresAt == nil {
		r.TokenExpiresAt = utcPtr(pr.TokenExpiresAt)
	}
}

func empty(p store.Permissions) bool {
	return len(p.Organization) == 0 && len(p.Repository) == 0 && len(p.Other) == 0
}

// processOutcome applies an approved, denied or cancelled webhook and
// brings the card up to date.
func (b *Bot) processOutcome(ctx context.Context, log *slog.Logger, ev *github.RequestEvent) error {
	var changed, elsewhere, confirmed bool
	r, err := b.store.UpdateRequest(ev.Org, ev.Request.ID, func(r *store.Request, exists bool) error {
		if !exists {
			// Decided before patbot saw it (or auto-approved, in orgs
			// that do not require approval): kept for the audit trail,
			// and no card is posted.
			applyDetails(r, ev)
		}
		confirmed = r.State == store.StateDeciding && r.Unconfirmed
		changed, elsewhere = b.recordOutcome(r, ev)
		confirmed = confirmed && changed && !elsewhere
		return nil
	})
	if err != nil || !changed && !r.CardOutdated {
		return err // a confirmation, or a redelivery whose card is shown
	}
	if confirmed {
		// The claim whose answer was lost: its approver is credited.
		b.recordDecision(ctx, log, r, r.Decision, "confirmed by GitHub's webhook")
		return nil
	}
	if elsewhere {
		b.audit(store.AuditEvent{Kind: "decision", Org: r.Org, RequestID: r.ID, Action: decisionOrCancel(r.State),
			Actor: ev.Sender.Login, Source: store.SourceWebhook, Detail: ev.Action + " in GitHub"})
		b.metrics.decisions.WithLabelValues(string(r.State), string(store.SourceWebhook)).Inc()
	}
	if changed {
		log.Info("request "+ev.Action, LogActor, ev.Sender.Login, "elsewhere", elsewhere)
	}
	return b.refreshCard(ctx, r.Org, r.ID)
}

func decisionOrCancel(s store.State) string {
	if s == store.StateCancelled {
		return "cancel"
	}
	return decisionAction(s)
}

// lateConfirmation is how long after a failed attempt (a timeout, say) a
// matching webhook is taken as GitHub having accepted that attempt after
// all.
const lateConfirmation = 15 * time.Minute

// recordOutcome applies an approved, denied or cancelled webhook. It reports
// whether the record changed, and whether the outcome came from outside
// patbot. The webhook that confirms patbot's own decision changes nothing.
func (b *Bot) recordOutcome(r *store.Request, ev *github.RequestEvent) (changed, elsewhere bool) {
	to := outcomeOf[ev.Action]
	if r.State == to {
		return false, false
	}
	now := b.now()
	switch {
	case to == store.StateCancelled:
		r.Decision = nil
		elsewhere = true
	case r.State == store.StateDeciding && r.Decision != nil && r.Decision.Action == decisionAction(to):
		// patbot's own decision, confirmed before GitHub's answer arrived.
	case r.LastAttempt != nil && r.LastAttempt.Action == decisionAction(to) && now.Sub(r.LastAttempt.At) < lateConfirmation:
		// An attempt that looked failed (a timeout) went through.
		r.Decision = r.LastAttempt
	default:
		r.Decision = &store.Decision{Action: decisionAction(to), Actor: ev.Sender.Login, At: now, Source: store.SourceWebhook}
		elsewhere = true
	}
	r.LastAttempt, r.Failure, r.Unconfirmed = nil, "", false
	r.SetState(to, now, store.SourceWebhook, ev.Sender.Login, ev.Action+" in GitHub")
	return true, elsewhere
}

func decisionAction(s store.State) string {
	if s == store.StateApproved {
		return github.ActionApprove
	}
	return github.ActionDeny
}

// applyDetails copies what the webhook says of the request into its record.
func applyDetails(r *store.Request, ev *github.RequestEvent) {
	w := ev.Request
	r.Owner, r.OwnerID = w.Owner.Login, w.Owner.ID
	if w.TokenID != 0 {
		r.TokenID = w.TokenID
	}
	if w.TokenName != "" {
		r.TokenName = w.TokenName
	}
	if ev.InstallationID != 0 {
		r.InstallationID = ev.InstallationID
	}
	r.RepositorySelection = w.RepositorySelection
	r.RepositoryCount = w.RepositoryCount
	r.Repositories = r.Repositories[:0]
	for _, repo := range w.Repositories {
		r.Repositories = append(r.Repositories, repo.FullName)
	}
	r.PermissionsAdded = storePermissions(w.PermissionsAdded)
	r.PermissionsUpgraded = storePermissions(w.PermissionsUpgraded)
	r.PermissionsResult = storePermissions(w.PermissionsResult)
	r.CreatedAt = w.CreatedAt
	r.TokenExpiresAt = utcPtr(w.TokenExpiresAt)
}

func storePermissions(p github.Permissions) store.Permissions {
	return store.Permissions{Organization: p.Organization, Repository: p.Repository, Other: p.Other}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
