package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// Listing limits: a page of tokens stays well inside a message's 50 blocks
// and about 13,000 characters, however many tokens a member has.
const (
	grantsPerPage    = 10
	maxGrantRepos    = 5
	maxGrantPerms    = 300 // characters of permissions shown per token
	soonExpiry       = 7 * 24 * time.Hour
	maxRequestsShown = 30
)

// grantEntry is one token in a listing.
type grantEntry struct {
	Org       string // as configured
	Grant     github.Grant
	Repos     []github.Repository // of a subset grant, as far as shown
	CanRevoke bool
	RevokedBy string // Slack user ID, when revoked from this listing
}

// grantsView is one page of /pat grants. Rendering is a pure function of it.
type grantsView struct {
	Login       string // whose tokens
	Query       grantsQuery
	Entries     []grantEntry // this page
	Total       int
	Expired     int
	ExpireSoon  int
	NeverExpire int
	Orgs        []string // orgs listed
	Notes       []string // orgs not listed, and why (mrkdwn, escaped)
	Now         time.Time
}

// revocation is a grant just revoked from a listing, shown marked.
type revocation struct {
	org   string
	grant github.Grant
	by    string // Slack user ID
}

// grantsMessage looks up a member's tokens for viewer and renders one page.
// Others' tokens are listed only in orgs where viewer is an approver.
func (b *Bot) grantsMessage(ctx context.Context, viewer string, q grantsQuery, revoked *revocation) *slack.WebhookMessage {
	viewerLogin, mapped := b.config().Users[viewer]
	if q.Login == "" {
		if !mapped {
			return ephemeral(notLinked(viewer))
		}
		q.Login = viewerLogin
	}
	self := mapped && strings.EqualFold(viewerLogin, q.Login)
	if !mapped {
		return ephemeral(notLinked(viewer) + " Until then you cannot look up tokens.")
	}

	v := grantsView{Login: q.Login, Query: q, Now: b.now()}
	var all []grantEntry
	for _, org := range b.config().sorted(q.Org) {
		verdict, err := b.authz.check(ctx, org, viewerLogin)
		if err != nil {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: could not check your permission (%s).", escape(org.Login), describeGitHubError(err)))
			continue
		}
		if !self && !verdict.allowed {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: only owners and approvers see other members' tokens.", escape(org.Login)))
			continue
		}
		grants, err := b.gh.ListGrants(ctx, org.Login, q.Login)
		if err != nil {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: %s; the tokens there are not listed.", escape(org.Login), describeGitHubError(err)))
			continue
		}
		v.Orgs = append(v.Orgs, org.Login)
		for _, g := range grants {
			all = append(all, grantEntry{Org: org.Login, Grant: g, CanRevoke: verdict.allowed})
		}
		if revoked != nil && strings.EqualFold(revoked.org, org.Login) && !slices.ContainsFunc(grants, func(g github.Grant) bool { return g.ID == revoked.grant.ID }) {
			all = append(all, grantEntry{Org: org.Login, Grant: revoked.grant, RevokedBy: revoked.by})
		}
	}
	if len(v.Orgs) == 0 {
		text := "No tokens to show."
		if len(v.Notes) > 0 {
			text = strings.Join(v.Notes, "\n")
		}
		return ephemeral(text)
	}

	sortGrants(all)
	v.Total = len(all)
	for _, e := range all {
		switch exp := e.Grant.TokenExpiresAt; {
		case e.RevokedBy != "":
		case exp == nil:
			v.NeverExpire++
		case e.Grant.TokenExpired || !exp.After(v.Now):
			v.Expired++
		case exp.Sub(v.Now) <= soonExpiry:
			v.ExpireSoon++
		}
	}
	pages := max((len(all)+grantsPerPage-1)/grantsPerPage, 1)
	q.Page = min(max(q.Page, 0), pages-1)
	v.Query = q
	v.Entries = all[q.Page*grantsPerPage : min((q.Page+1)*grantsPerPage, len(all))]
	for i, e := range v.Entries {
		if e.Grant.RepositorySelection != github.SelectionSubset {
			continue
		}
		repos, err := b.gh.ListGrantRepositories(ctx, e.Org, e.Grant.ID)
		if err == nil {
			v.Entries[i].Repos = repos
		}
	}
	blocks, text := renderGrants(v)
	return &slack.WebhookMessage{Text: text, Blocks: &slack.Blocks{BlockSet: blocks}}
}

func notLinked(slackUser string) string {
	return fmt.Sprintf("Your Slack account is not linked to a GitHub login. Ask whoever runs patbot to add `%s: <your GitHub login>` under `users` in its policy file.", slackUser)
}

// sorted returns the orgs (or only the one named) in order of login.
func (p Config) sorted(only string) []Org {
	var orgs []Org
	for _, o := range p.Orgs {
		if only == "" || strings.EqualFold(only, o.Login) {
			orgs = append(orgs, o)
		}
	}
	slices.SortFunc(orgs, func(a, b Org) int { return cmp.Compare(strings.ToLower(a.Login), strings.ToLower(b.Login)) })
	return orgs
}

// sortGrants puts the most recently used first; never-used tokens last, the
// newest grant first among them.
func sortGrants(all []grantEntry) {
	slices.SortStableFunc(all, func(a, b grantEntry) int {
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

// renderGrants renders one page of a member's tokens.
func renderGrants(v grantsView) ([]slack.Block, string) {
	pages := max((v.Total+grantsPerPage-1)/grantsPerPage, 1)
	summary := fmt.Sprintf("%d approved fine-grained %s in %s", v.Total, plural(v.Total, "token", "tokens"), escape(strings.Join(v.Orgs, ", ")))
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
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(truncate("Fine-grained tokens of "+v.Login, 150))),
		slack.NewContextBlock("", mrkdwn(summary)),
	}
	if v.Total == 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(fmt.Sprintf("%s has no approved fine-grained tokens here.", escape(v.Login))), nil, nil))
	}
	for _, e := range v.Entries {
		var accessory *slack.Accessory
		if e.CanRevoke && e.RevokedBy == "" {
			accessory = slack.NewAccessory(revokeButton(v, e))
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(grantText(e, v.Now)), nil, accessory))
	}
	if nav := pageButtons(v.Query, pages); nav != nil {
		blocks = append(blocks, nav)
	}
	if len(v.Notes) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", mrkdwn(truncate(strings.Join(v.Notes, "\n"), 2000))))
	}
	return blocks, fmt.Sprintf("Fine-grained tokens of %s: %d", escape(v.Login), v.Total)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func grantText(e grantEntry, now time.Time) string {
	g := e.Grant
	name := fmt.Sprintf("*`%s`*", escape(truncate(cmp.Or(g.TokenName, "unnamed token"), maxTokenName)))
	if e.RevokedBy != "" {
		name = fmt.Sprintf("~`%s`~ :lock: *revoked* by <@%s>", escape(truncate(cmp.Or(g.TokenName, "unnamed token"), maxTokenName)), e.RevokedBy)
	}
	lines := []string{
		fmt.Sprintf("%s · %s · token %d", name, escape(e.Org), g.TokenID),
		"*Access:* " + grantAccess(e),
		"*Permissions:* " + escape(truncate(compactPermissions(g.Permissions), maxGrantPerms)),
		fmt.Sprintf("*Granted* %s · *Expires* %s · *Last used* %s", slackDate(g.AccessGrantedAt), grantExpiry(g, now), lastUsed(g, now)),
	}
	return strings.Join(lines, "\n")
}

func grantAccess(e grantEntry) string {
	switch e.Grant.RepositorySelection {
	case github.SelectionAll:
		return "all repositories"
	case github.SelectionSubset:
		if len(e.Repos) == 0 {
			return "selected repositories"
		}
		var names []string
		for _, r := range e.Repos[:min(len(e.Repos), maxGrantRepos)] {
			names = append(names, "`"+escape(truncate(r.FullName, 100))+"`")
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
		return ":warning: " + relative(*exp, now)
	case exp.Sub(now) <= soonExpiry:
		return ":warning: " + relative(*exp, now)
	}
	return relative(*exp, now)
}

func lastUsed(g github.Grant, now time.Time) string {
	if g.TokenLastUsedAt == nil {
		return "never"
	}
	return strings.TrimPrefix(strings.Replace(relative(*g.TokenLastUsedAt, now), "expired ", "", 1), "in ")
}

// revokeValue is what a Revoke button carries: the grant, and the listing
// to show again afterwards.
type revokeValue struct {
	Org   string      `json:"o"`
	ID    int64       `json:"g"`
	Query grantsQuery `json:"q"`
}

func revokeButton(v grantsView, e grantEntry) *slack.ButtonBlockElement {
	value, _ := json.Marshal(revokeValue{Org: e.Org, ID: e.Grant.ID, Query: v.Query})
	btn := slack.NewButtonBlockElement(ActionRevoke, string(value), plain("Revoke"))
	btn.Style = slack.StyleDanger
	btn.Confirm = slack.NewConfirmationBlockObject(
		plain("Revoke this token?"),
		plain(truncate(fmt.Sprintf("%s's token “%s” loses its access to %s at once. This cannot be undone.", v.Login, cmp.Or(e.Grant.TokenName, "unnamed"), e.Org), 300)),
		plain("Revoke"),
		plain("Cancel"),
	)
	btn.Confirm.Style = slack.StyleDanger
	return btn
}

func pageButtons(q grantsQuery, pages int) slack.Block {
	var buttons []slack.BlockElement
	for _, p := range []struct {
		page  int
		label string
	}{{q.Page - 1, "‹ Previous"}, {q.Page + 1, "Next ›"}} {
		if p.page < 0 || p.page >= pages {
			continue
		}
		pq := q
		pq.Page = p.page
		value, _ := json.Marshal(pq)
		buttons = append(buttons, slack.NewButtonBlockElement(fmt.Sprintf("%s_%d", ActionGrantsPage, p.page), string(value), plain(p.label)))
	}
	if len(buttons) == 0 {
		return nil
	}
	return slack.NewActionBlock("", buttons...)
}

// revoke revokes a grant for an approver, re-checking their authority, and
// shows the listing again with the grant marked.
func (b *Bot) revoke(ctx context.Context, viewer, responseURL string, rv revokeValue) {
	fail := func(text string) { b.respond(ctx, responseURL, ephemeral(text)) }
	org, ok := b.config().Org(rv.Org)
	if !ok {
		fail(fmt.Sprintf("patbot does not serve the organization %s.", escape(rv.Org)))
		return
	}
	login, mapped := b.config().Users[viewer]
	refuse := func(detail, text string) {
		b.audit(store.AuditEvent{Kind: "refused", Org: org.Login, GrantID: rv.ID, Action: "revoke", Actor: login, SlackUser: viewer, Source: store.SourceSlack, Detail: detail})
		b.metrics.refusals.WithLabelValues(detail).Inc()
		fail(text)
	}
	if !mapped {
		refuse("slack user not mapped", notLinked(viewer))
		return
	}
	v, err := b.authz.verify(ctx, org, login) // never a cached verdict for a revocation
	if err != nil {
		refuse("authorization check failed", fmt.Sprintf("patbot could not check your permission with GitHub (%s). Nothing was revoked.", describeGitHubError(err)))
		return
	}
	if !v.allowed {
		refuse("not authorized", fmt.Sprintf("Only owners of %s%s may revoke tokens, and GitHub says %s. Nothing was revoked.", escape(org.Login), teamsClause(org), escape(v.why)))
		return
	}
	grants, err := b.gh.ListGrants(ctx, org.Login, rv.Query.Login)
	if err != nil {
		fail(fmt.Sprintf("Nothing was revoked: %s.", describeGitHubError(err)))
		return
	}
	i := slices.IndexFunc(grants, func(g github.Grant) bool { return g.ID == rv.ID })
	if i < 0 {
		fail("That token no longer has access to " + escape(org.Login) + ": it was revoked or expired already.")
		return
	}
	grant := grants[i]
	err = b.gh.RevokeGrant(ctx, org.Login, grant.ID)
	if errors.Is(err, github.ErrNotFound) {
		fail("That token no longer has access to " + escape(org.Login) + ": it was revoked already.")
		return
	}
	if err != nil {
		b.log.Warn("revoke failed", LogOrg, org.Login, "grant", grant.ID, LogActor, login, "err", err)
		fail(fmt.Sprintf("The token was not revoked: %s. It still has access; try again.", describeGitHubError(err)))
		return
	}
	b.audit(store.AuditEvent{Kind: "revocation", Org: org.Login, GrantID: grant.ID, Action: "revoke", Actor: login, SlackUser: viewer,
		Source: store.SourceSlack, Detail: fmt.Sprintf("token %q (%d) of %s; authorized as %s", grant.TokenName, grant.TokenID, grant.Owner.Login, v.why)})
	b.log.Info("grant revoked", LogOrg, org.Login, "grant", grant.ID, "token_id", grant.TokenID, "owner", grant.Owner.Login, LogActor, login)
	notice := fmt.Sprintf(":lock: <@%s> (%s) revoked %s's fine-grained token “%s” (token %d): it no longer has access to *%s*.",
		viewer, escape(login), escape(grant.Owner.Login), escape(truncate(cmp.Or(grant.TokenName, "unnamed"), maxTokenName)), grant.TokenID, escape(org.Login))
	_, _, err = b.slack.PostMessageContext(ctx, org.Channel, slack.MsgOptionText(notice, false))
	if err != nil {
		b.log.Warn("cannot post the revocation notice", "channel", org.Channel, "err", err)
	}
	b.respond(ctx, responseURL, b.grantsMessage(ctx, viewer, rv.Query, &revocation{org: org.Login, grant: grant, by: viewer}))
}

// requestsMessage lists pending requests in the orgs where viewer is an
// approver, each with a link to its card.
func (b *Bot) requestsMessage(ctx context.Context, viewer, teamDomain string) *slack.WebhookMessage {
	login, mapped := b.config().Users[viewer]
	if !mapped {
		return ephemeral(notLinked(viewer))
	}
	var lines, notes []string
	total := 0
	for _, org := range b.config().sorted("") {
		v, err := b.authz.check(ctx, org, login)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: could not check your permission (%s).", escape(org.Login), describeGitHubError(err)))
			continue
		}
		if !v.allowed {
			continue
		}
		reqs, err := b.store.Requests(org.Login, store.StatePending, store.StateDeciding)
		if err != nil {
			notes = append(notes, escape(org.Login)+": patbot could not read its records.")
			continue
		}
		slices.SortFunc(reqs, func(a, b store.Request) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, r := range reqs {
			total++
			if len(lines) == maxRequestsShown {
				continue
			}
			lines = append(lines, fmt.Sprintf("• *%s* · `%s` for %s · requested %s · %s", escape(org.Login), escape(tokenName(r)), escape(r.Owner), slackDate(r.CreatedAt), cardLink(r.Card, teamDomain)))
		}
	}
	if len(lines) == 0 && len(notes) == 0 {
		return ephemeral("No pending token requests in the organizations where you are an approver.")
	}
	text := fmt.Sprintf("*%d pending token %s*\n%s", total, plural(total, "request", "requests"), strings.Join(lines, "\n"))
	if more := total - len(lines); more > 0 {
		text += fmt.Sprintf("\n…and %d more", more)
	}
	if len(notes) > 0 {
		text += "\n" + strings.Join(notes, "\n")
	}
	return ephemeral(truncate(text, 3000))
}

// cardLink links to a card: a permalink when the workspace is known, the
// channel otherwise.
func cardLink(c store.Card, teamDomain string) string {
	switch {
	case c.TS == "":
		return "no card"
	case teamDomain == "":
		return fmt.Sprintf("card in <#%s>", c.Channel)
	}
	return fmt.Sprintf("<https://%s.slack.com/archives/%s/p%s|card>", teamDomain, c.Channel, strings.ReplaceAll(c.TS, ".", ""))
}
