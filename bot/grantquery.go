package bot

import (
	"context"
	"fmt"
	"time"

	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
)

// GrantQuerier lists an org's grants as GitHub filters them; *github.Client
// has it.
type GrantQuerier interface {
	QueryGrants(ctx context.Context, org string, f github.GrantFilter) ([]github.Grant, error)
}

var _ GrantQuerier = (*github.Client)(nil)

// FindGrants lists org's grants that q selects. GitHub filters what it can
// (owner, repository, token, recent use); patbot the rest: a permission at
// or above a level, and unused tokens, counting a token never used as
// unused once it was granted longer ago than the query's duration.
func FindGrants(ctx context.Context, gh GrantQuerier, org string, q view.GrantsQuery, now time.Time) ([]github.Grant, error) {
	f := github.GrantFilter{Repository: q.Repo}
	if q.Login != "" {
		f.Owners = []string{q.Login}
	}
	if q.Token != 0 {
		f.TokenIDs = []int64{q.Token}
	}
	if q.UsedSince != "" {
		d, err := policy.ParseDuration(q.UsedSince)
		if err != nil {
			return nil, fmt.Errorf("--used-since: %w", err)
		}
		f.LastUsedAfter = now.Add(-d)
	}
	var perm *policy.Permission
	if q.Permission != "" {
		p, err := policy.ParsePermission(q.Permission)
		if err != nil {
			return nil, fmt.Errorf("--permission: %w", err)
		}
		perm = &p
	}
	var unusedSince time.Time
	if q.Unused != "" {
		d, err := policy.ParseDuration(q.Unused)
		if err != nil {
			return nil, fmt.Errorf("--unused: %w", err)
		}
		unusedSince = now.Add(-d)
	}
	grants, err := gh.QueryGrants(ctx, org, f)
	if err != nil {
		return nil, err
	}
	var out []github.Grant
	for _, g := range grants {
		if perm != nil && !perm.HeldIn(policy.Permissions{Organization: g.Permissions.Organization, Repository: g.Permissions.Repository, Other: g.Permissions.Other}) {
			continue
		}
		if !unusedSince.IsZero() && !Unused(g, unusedSince) {
			continue
		}
		out = append(out, g)
	}
	return out, nil
}

// Unused reports whether a grant's token has not been used since a time:
// its last use is older, or it was never used and was granted before then.
func Unused(g github.Grant, since time.Time) bool {
	if g.TokenLastUsedAt != nil {
		return g.TokenLastUsedAt.Before(since)
	}
	return g.AccessGrantedAt.Before(since)
}
