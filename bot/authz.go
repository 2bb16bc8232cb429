package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/patbot/patbot/github"
)

// authzTTL is how long a verdict from GitHub is trusted: someone removed as
// owner loses the power to decide within this time.
const authzTTL = 60 * time.Second

// maxAuthzEntries bounds the verdict cache.
const maxAuthzEntries = 10_000

// verdict says whether a GitHub login may decide an org's requests, and why.
type verdict struct {
	allowed bool
	owner   bool   // an active owner, not only an approver team's member
	why     string // "an owner of acme", or why not
}

type authzEntry struct {
	verdict
	expires time.Time
}

// authorizer checks approvers against GitHub: an active org owner, or an
// active member of one of the org's approver teams. Verdicts are cached for
// authzTTL for read-only views (check); decisions and revocations ask GitHub
// every time (verify), so that a demoted owner cannot decide on a stale
// verdict. Errors are not cached.
type authorizer struct {
	gh  GitHub
	now func() time.Time

	mu    sync.Mutex
	cache map[string]authzEntry
}

func newAuthorizer(gh GitHub, now func() time.Time) *authorizer {
	return &authorizer{gh: gh, now: now, cache: map[string]authzEntry{}}
}

// check answers from the cache when it can: for what only shows things.
func (a *authorizer) check(ctx context.Context, org Org, login string) (verdict, error) {
	a.mu.Lock()
	e, ok := a.cache[authzKey(org, login)]
	a.mu.Unlock()
	if ok && a.now().Before(e.expires) {
		return e.verdict, nil
	}
	return a.verify(ctx, org, login)
}

// verify asks GitHub, and caches the answer for check: for what changes
// things (a decision, a revocation).
func (a *authorizer) verify(ctx context.Context, org Org, login string) (verdict, error) {
	v, err := a.ask(ctx, org, login)
	if err != nil {
		return verdict{}, err
	}
	now := a.now()
	key := authzKey(org, login)
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxAuthzEntries {
		for k, e := range a.cache {
			if !now.Before(e.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxAuthzEntries {
			clear(a.cache)
		}
	}
	a.cache[key] = authzEntry{verdict: v, expires: now.Add(authzTTL)}
	return v, nil
}

func (a *authorizer) ask(ctx context.Context, org Org, login string) (verdict, error) {
	m, err := a.gh.OrgMembership(ctx, org.Login, login)
	switch {
	case errors.Is(err, github.ErrNotFound):
		return verdict{why: fmt.Sprintf("%s is not a member of %s", login, org.Login)}, nil
	case err != nil:
		return verdict{}, err
	case m.ActiveOwner():
		return verdict{allowed: true, owner: true, why: "an owner of " + org.Login}, nil
	case !m.Active():
		return verdict{why: fmt.Sprintf("%s's membership of %s is not active", login, org.Login)}, nil
	}
	for _, team := range org.ApproverTeams {
		tm, err := a.gh.TeamMembership(ctx, org.Login, team, login)
		if errors.Is(err, github.ErrNotFound) {
			continue
		}
		if err != nil {
			return verdict{}, err
		}
		if tm.Active() {
			return verdict{allowed: true, why: fmt.Sprintf("a member of %s/%s", org.Login, team)}, nil
		}
	}
	why := fmt.Sprintf("%s is not an owner of %s", login, org.Login)
	if len(org.ApproverTeams) > 0 {
		why += " nor an active member of its approver teams (" + strings.Join(org.ApproverTeams, ", ") + ")"
	}
	return verdict{why: why}, nil
}

func authzKey(org Org, login string) string { return strings.ToLower(org.Login + "/" + login) }
