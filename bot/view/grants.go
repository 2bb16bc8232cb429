package view

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/github"
)

// Listing limits: a page of tokens stays well inside a message's 50 blocks
// and about 13,000 characters, however many tokens a member has.
const (
	GrantsPerPage = 10
	maxGrantRepos = 5
	maxGrantPerms = 300 // characters of permissions shown per token
	SoonExpiry    = 7 * 24 * time.Hour
)

// GrantEntry is one token in a listing.
type GrantEntry struct {
	Org       string // as configured
	Grant     github.Grant
	Repos     []github.Repository // of a subset grant, as far as shown
	CanRevoke bool
	RevokedBy string // Slack user ID, when revoked from this listing
}

// GrantsView is one page of /pat grants. Rendering is a pure function of it.
type GrantsView struct {
	Login       string // whose tokens
	Query       GrantsQuery
	Entries     []GrantEntry // this page
	Total       int
	Expired     int
	ExpireSoon  int
	NeverExpire int
	Orgs        []string // orgs listed
	Notes       []string // orgs not listed, and why (mrkdwn, escaped)
	Now         time.Time
}

// GrantsQuery is what /pat grants asks for; it also travels in the listing's
// buttons, so that a click repeats the query (re-checking who asks).
type GrantsQuery struct {
	Login string `json:"l"`           // GitHub login whose tokens are listed; "" means the viewer's, or with filters everyone's
	Org   string `json:"f,omitempty"` // only this org
	Page  int    `json:"p,omitempty"` // zero-based
	// Filters (approvers' questions): tokens that may reach a repository,
	// that hold a permission (name[:level], at or above the level), unused
	// for a while, used lately, or one token.
	Repo       string `json:"r,omitempty"`
	Permission string `json:"m,omitempty"`
	Unused     string `json:"u,omitempty"` // a duration, as typed
	UsedSince  string `json:"s,omitempty"` // a duration, as typed
	Token      int64  `json:"t,omitempty"`
}

// Filtered reports whether q asks more than whose tokens.
func (q GrantsQuery) Filtered() bool {
	return q.Repo != "" || q.Permission != "" || q.Unused != "" || q.UsedSince != "" || q.Token != 0
}

// Describe is q's filters in words (escaped).
func (q GrantsQuery) Describe() string {
	var parts []string
	if q.Repo != "" {
		parts = append(parts, "reaching `"+Escape(q.Repo)+"`")
	}
	if q.Permission != "" {
		parts = append(parts, "holding `"+Escape(q.Permission)+"`")
	}
	if q.Unused != "" {
		parts = append(parts, "unused for "+Escape(q.Unused))
	}
	if q.UsedSince != "" {
		parts = append(parts, "used within "+Escape(q.UsedSince))
	}
	if q.Token != 0 {
		parts = append(parts, fmt.Sprintf("token %d", q.Token))
	}
	return strings.Join(parts, ", ")
}

// SortGrants puts the most recently used first; never-used tokens last, the
// newest grant first among them.
func SortGrants(all []GrantEntry) {
	slices.SortStableFunc(all, func(a, b GrantEntry) int {
		au, bu := a.Grant.TokenLastUsedAt, b.Grant.TokenLastUsedAt
		switch {
		case au != nil && bu != nil && !au.Equal(*bu):
			return bu.Compare(*au)
		case au != nil && bu == nil:
			return -1
		case au == nil && bu != nil:
			return 1
		}
		if c := b.Grant.AccessGrantedAt.Compare(a.Grant.AccessGrantedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.Grant.ID, b.Grant.ID)
	})
}

// Grants renders one page of a member's tokens.
func Grants(v GrantsView) ([]slack.Block, string) {
	pages := max((v.Total+GrantsPerPage-1)/GrantsPerPage, 1)
	summary := fmt.Sprintf("%d approved fine-grained %s in %s", v.Total, Plural(v.Total, "token", "tokens"), Escape(strings.Join(v.Orgs, ", ")))
	for _, c := range []struct {
		n    int
		what string
	}{{v.Expired, "expired"}, {v.ExpireSoon, "expiring within 7 days"}, {v.NeverExpire, "never expiring"}} {
		if c.n > 0 {
			summary += fmt.Sprintf(" · :warning: %d %s", c.n, c.what)
		}
	}
	if pages > 1 {
		summary += fmt.Sprintf(" · page %d of %d", v.Query.Page+1, pages)
	}
	title := "Fine-grained tokens of " + v.Login
	if v.Login == "" {
		title = "Fine-grained tokens"
	}
	if v.Query.Filtered() {
		summary = "Matching: " + v.Query.Describe() + "\n" + summary
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(Plain(Truncate(title, 150))),
		slack.NewContextBlock("", Mrkdwn(summary)),
	}
	if v.Total == 0 {
		none := fmt.Sprintf("%s has no approved fine-grained tokens here.", Escape(v.Login))
		if v.Query.Filtered() || v.Login == "" {
			none = "No approved fine-grained tokens match."
		}
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(none), nil, nil))
	}
	for _, e := range v.Entries {
		var accessory *slack.Accessory
		if e.CanRevoke && e.RevokedBy == "" {
			accessory = slack.NewAccessory(revokeButton(v, e))
		}
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(grantText(e, v.Now, v.Login == "")), nil, accessory))
	}
	turnTo := func(p int) string {
		q := v.Query
		q.Page = p
		value, _ := json.Marshal(q)
		return string(value)
	}
	if nav := pageButtons("", ActionGrantsPage, v.Query.Page, pages, turnTo); nav != nil {
		blocks = append(blocks, nav)
	}
	if len(v.Notes) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", Mrkdwn(Truncate(strings.Join(v.Notes, "\n"), 2000))))
	}
	return blocks, fmt.Sprintf("%s: %d", Escape(title), v.Total)
}

func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// GrantTokenName is a grant's token name as listings show it (unescaped).
func GrantTokenName(g github.Grant) string {
	return Truncate(cmp.Or(g.TokenName, "unnamed token"), maxTokenName)
}

func grantText(e GrantEntry, now time.Time, owner bool) string {
	g := e.Grant
	name := fmt.Sprintf("*`%s`*", Escape(GrantTokenName(g)))
	if e.RevokedBy != "" {
		name = fmt.Sprintf("~`%s`~ :lock: *revoked* by <@%s>", Escape(GrantTokenName(g)), e.RevokedBy)
	}
	if owner { // a listing of several members' tokens
		name += " of *" + Escape(g.Owner.Login) + "*"
	}
	lines := []string{
		fmt.Sprintf("%s · %s · token %d", name, Escape(e.Org), g.TokenID),
		"*Access:* " + grantAccess(e),
		"*Permissions:* " + Escape(Truncate(compactPermissions(g.Permissions), maxGrantPerms)),
		fmt.Sprintf("*Granted* %s · *Expires* %s · *Last used* %s", SlackDate(g.AccessGrantedAt), grantExpiry(g, now), lastUsed(g, now)),
	}
	return strings.Join(lines, "\n")
}

func grantAccess(e GrantEntry) string {
	switch e.Grant.RepositorySelection {
	case github.SelectionAll:
		return "all repositories"
	case github.SelectionSubset:
		if len(e.Repos) == 0 {
			return "selected repositories"
		}
		var names []string
		for _, r := range e.Repos[:min(len(e.Repos), maxGrantRepos)] {
			names = append(names, "`"+Escape(Truncate(r.FullName, 100))+"`")
		}
		s := strings.Join(names, ", ")
		if more := len(e.Repos) - maxGrantRepos; more > 0 {
			s += fmt.Sprintf(" and %d more", more)
		}
		return s
	}
	return "no repositories"
}

// compactPermissions renders permissions on one line, by group.
func compactPermissions(p github.Permissions) string {
	var groups []string
	for _, g := range []struct {
		name  string
		perms map[string]string
	}{{"org", p.Organization}, {"repo", p.Repository}, {"other", p.Other}} {
		if len(g.perms) == 0 {
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(g.perms)) {
			parts = append(parts, k+":"+g.perms[k])
		}
		groups = append(groups, g.name+" "+strings.Join(parts, ", "))
	}
	if len(groups) == 0 {
		return "none listed"
	}
	return strings.Join(groups, "; ")
}

func grantExpiry(g github.Grant, now time.Time) string {
	exp := g.TokenExpiresAt
	switch {
	case exp == nil:
		return ":warning: never"
	case g.TokenExpired || !exp.After(now):
		return ":warning: " + Relative(*exp, now)
	case exp.Sub(now) <= SoonExpiry:
		return ":warning: " + Relative(*exp, now)
	}
	return Relative(*exp, now)
}

func lastUsed(g github.Grant, now time.Time) string {
	if g.TokenLastUsedAt == nil {
		return "never"
	}
	return strings.TrimPrefix(strings.Replace(Relative(*g.TokenLastUsedAt, now), "expired ", "", 1), "in ")
}

// RevokeValue is what a Revoke button carries: the grant, and the listing
// to show again afterwards.
type RevokeValue struct {
	Org   string      `json:"o"`
	ID    int64       `json:"g"`
	Query GrantsQuery `json:"q"`
}

func revokeButton(v GrantsView, e GrantEntry) *slack.ButtonBlockElement {
	value, _ := json.Marshal(RevokeValue{Org: e.Org, ID: e.Grant.ID, Query: v.Query})
	btn := slack.NewButtonBlockElement(ActionRevoke, string(value), Plain("Revoke"))
	btn.Style = slack.StyleDanger
	btn.Confirm = slack.NewConfirmationBlockObject(
		Plain("Revoke this token?"),
		Plain(Truncate(fmt.Sprintf("%s's token “%s” loses its access to %s at once. This cannot be undone.", cmp.Or(e.Grant.Owner.Login, v.Login), cmp.Or(e.Grant.TokenName, "unnamed"), e.Org), 300)),
		Plain("Revoke"),
		Plain("Cancel"),
	)
	btn.Confirm.Style = slack.StyleDanger
	return btn
}
