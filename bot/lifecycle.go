package bot

import (
	"context"
	"fmt"
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

// process does the work of one accepted webhook. It must be idempotent: a
// crash between doing the work and finishing the job runs it again.
func (b *Bot) process(_ context.Context, job store.Job) error {
	ev, err := github.ParseRequestEvent(job.Payload)
	if err != nil {
		return permanent(fmt.Errorf("parse stored payload: %w", err))
	}
	b.gh.RememberInstallation(ev.Org, ev.InstallationID)
	switch ev.Action {
	case github.ActionCreated:
		_, err = b.store.UpdateRequest(ev.Org, ev.Request.ID, func(r *store.Request, exists bool) error {
			applyDetails(r, ev)
			if !exists {
				r.SetState(store.StatePending, b.now(), store.SourceWebhook, ev.Request.Owner.Login, "requested")
			}
			return nil
		})
	case github.ActionApproved, github.ActionDenied, github.ActionCancelled:
		_, err = b.store.UpdateRequest(ev.Org, ev.Request.ID, func(r *store.Request, exists bool) error {
			if !exists {
				// Decided before patbot saw it (or auto-approved, in orgs
				// that do not require approval): kept for the audit trail.
				applyDetails(r, ev)
			}
			b.recordOutcome(r, ev)
			return nil
		})
	default:
		return permanent(fmt.Errorf("unhandled action %q", ev.Action))
	}
	return err
}

// recordOutcome applies an approved, denied or cancelled webhook. The
// webhook that confirms a decision patbot already recorded changes nothing.
func (b *Bot) recordOutcome(r *store.Request, ev *github.RequestEvent) {
	to := outcomeOf[ev.Action]
	if r.State == to {
		return
	}
	now := b.now()
	if to != store.StateCancelled && (r.Decision == nil || r.Decision.Action != decisionAction(to)) {
		r.Decision = &store.Decision{Action: decisionAction(to), Actor: ev.Sender.Login, At: now, Source: store.SourceWebhook}
	}
	r.SetState(to, now, store.SourceWebhook, ev.Sender.Login, ev.Action+" in GitHub")
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
