package bot

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// ReplayGitHub is what evaluating rules may ask GitHub: the facts, and,
// for a replay, the pending list. *github.Client has it; nil asks nothing.
type ReplayGitHub interface {
	ListRequests(ctx context.Context, org string, f github.RequestFilter) ([]github.PendingRequest, error)
	TeamMembership(ctx context.Context, org, team, login string) (github.Membership, error)
	ListRequestRepositories(ctx context.Context, org string, requestID int64) ([]github.Repository, error)
}

var _ ReplayGitHub = (*github.Client)(nil)

// ReplayRow is one request replayed against a policy: what the rules would
// do, beside what happened.
type ReplayRow struct {
	Org       string
	ID        int64
	Requester string
	Token     string
	CreatedAt time.Time
	Verdict   policy.Verdict
	// Happened is what became of the request, in words.
	Happened string
	// Live marks a request found pending in GitHub, not in the records.
	Live bool
	// Disagrees marks a past decision by a person that the rules would
	// have made the other way.
	Disagrees bool
}

// ReplaySummary counts a replay's verdicts.
type ReplaySummary struct {
	Requests, Approve, Deny, TwoOrMore, People, Disagree, Unchecked int
}

// Replay evaluates each org's rules in cfg against the recorded requests
// created since a time and, when gh is not nil, the requests GitHub lists
// as pending (asking it for the facts too; without it, rules that need
// facts do not match). Orgs without rules are left out.
func Replay(ctx context.Context, cfg Config, gh ReplayGitHub, records []store.Request, since time.Time, log *slog.Logger) ([]ReplayRow, ReplaySummary, []string) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	teams := &teamCache{gh: gh, now: time.Now, entries: map[string]teamEntry{}}
	var rows []ReplayRow
	var notes []string
	seen := map[string]bool{}
	evaluate := func(org Org, r store.Request, live bool) {
		v := org.Policy.Evaluate(rulesRequest(ctx, gh, log, org, r), teams.facts(ctx, log, org, r.Owner))
		row := ReplayRow{Org: org.Login, ID: r.ID, Requester: r.Owner, Token: r.TokenName, CreatedAt: r.CreatedAt, Verdict: v, Live: live,
			Happened: happened(r)}
		if d := r.Decision; d != nil && d.Source != store.SourcePolicy && (r.State == store.StateApproved || r.State == store.StateDenied) {
			row.Disagrees = v.Action == policy.ActionApprove && r.State == store.StateDenied || v.Action == policy.ActionDeny && r.State == store.StateApproved
		}
		rows = append(rows, row)
		seen[strings.ToLower(org.Login)+"/"+fmt.Sprint(r.ID)] = true
	}
	for _, r := range records {
		org, ok := cfg.Org(r.Org)
		if !ok || org.Policy == nil || r.CreatedAt.Before(since) {
			continue
		}
		evaluate(org, r, false)
	}
	if gh != nil {
		for _, org := range cfg.sorted("") {
			if org.Policy == nil {
				continue
			}
			pending, err := gh.ListRequests(ctx, org.Login, github.RequestFilter{})
			if err != nil {
				notes = append(notes, fmt.Sprintf("%s: GitHub's pending list could not be read (%s)", org.Login, describeGitHubError(err)))
				continue
			}
			for _, pr := range pending {
				if seen[strings.ToLower(org.Login)+"/"+fmt.Sprint(pr.ID)] {
					continue
				}
				r := store.Request{Org: strings.ToLower(org.Login), ID: pr.ID, State: store.StatePending, Owner: pr.Owner.Login, CreatedAt: pr.CreatedAt}
				enrich(&r, pr)
				evaluate(org, r, true)
			}
		}
	}
	slices.SortFunc(rows, func(a, b ReplayRow) int { return a.CreatedAt.Compare(b.CreatedAt) })
	var sum ReplaySummary
	for _, row := range rows {
		sum.Requests++
		switch v := row.Verdict; {
		case v.Action == policy.ActionApprove:
			sum.Approve++
		case v.Action == policy.ActionDeny:
			sum.Deny++
		case v.Approvals >= 2:
			sum.TwoOrMore++
		default:
			sum.People++
		}
		if row.Disagrees {
			sum.Disagree++
		}
		if len(row.Verdict.Unchecked) > 0 {
			sum.Unchecked++
		}
	}
	return rows, sum, notes
}

// happened says, in words, what became of a request.
func happened(r store.Request) string {
	d := r.Decision
	switch {
	case (r.State == store.StateApproved || r.State == store.StateDenied) && d != nil && d.Source == store.SourcePolicy:
		return fmt.Sprintf("%s by rule %s", r.State, d.Rule)
	case (r.State == store.StateApproved || r.State == store.StateDenied) && d != nil && d.Source == store.SourceSlack:
		return fmt.Sprintf("%s by %s", r.State, d.Actor)
	case (r.State == store.StateApproved || r.State == store.StateDenied) && d != nil:
		return fmt.Sprintf("%s in GitHub by %s", r.State, d.Actor)
	}
	return string(r.State)
}
