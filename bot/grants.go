package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// maxRequestsShown bounds /pat requests' listing, well inside a message.
const maxRequestsShown = 30

// revocation is a grant just revoked from a listing, shown marked.
type revocation struct {
	org   string
	grant github.Grant
	by    string // Slack user ID
}

// grantsMessage looks up a member's tokens for viewer and renders one page.
// Others' tokens are listed only in orgs where viewer is an approver.
func (b *Bot) grantsMessage(ctx context.Context, viewer string, q view.GrantsQuery, revoked *revocation) *slack.WebhookMessage {
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

	v := view.GrantsView{Login: q.Login, Query: q, Now: b.now()}
	var all []view.GrantEntry
	for _, org := range b.config().sorted(q.Org) {
		verdict, err := b.authz.check(ctx, org, viewerLogin)
		if err != nil {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: could not check your permission (%s).", view.Escape(org.Login), describeGitHubError(err)))
			continue
		}
		if !self && !verdict.allowed {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: only owners and approvers see other members' tokens.", view.Escape(org.Login)))
			continue
		}
		grants, err := b.gh.ListGrants(ctx, org.Login, q.Login)
		if err != nil {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: %s; the tokens there are not listed.", view.Escape(org.Login), describeGitHubError(err)))
			continue
		}
		v.Orgs = append(v.Orgs, org.Login)
		for _, g := range grants {
			all = append(all, view.GrantEntry{Org: org.Login, Grant: g, CanRevoke: verdict.allowed})
		}
		if revoked != nil && strings.EqualFold(revoked.org, org.Login) && !slices.ContainsFunc(grants, func(g github.Grant) bool { return g.ID == revoked.grant.ID }) {
			all = append(all, view.GrantEntry{Org: org.Login, Grant: revoked.grant, RevokedBy: revoked.by})
		}
	}
	if len(v.Orgs) == 0 {
		text := "No tokens to show."
		if len(v.Notes) > 0 {
			text = strings.Join(v.Notes, "\n")
		}
		return ephemeral(text)
	}

	view.SortGrants(all)
	v.Total = len(all)
	for _, e := range all {
		switch exp := e.Grant.TokenExpiresAt; {
		case e.RevokedBy != "":
		case exp == nil:
			v.NeverExpire++
		case e.Grant.TokenExpired || !exp.After(v.Now):
			v.Expired++
		case exp.Sub(v.Now) <= view.SoonExpiry:
			v.ExpireSoon++
		}
	}
	pages := max((len(all)+view.GrantsPerPage-1)/view.GrantsPerPage, 1)
	q.Page = min(max(q.Page, 0), pages-1)
	v.Query = q
	v.Entries = all[q.Page*view.GrantsPerPage : min((q.Page+1)*view.GrantsPerPage, len(all))]
	for i, e := range v.Entries {
		if e.Grant.RepositorySelection != github.SelectionSubset {
			continue
		}
		repos, err := b.gh.ListGrantRepositories(ctx, e.Org, e.Grant.ID)
		if err == nil {
			v.Entries[i].Repos = repos
		}
	}
	blocks, text := view.Grants(v)
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

// revoke revokes a grant for an approver, re-checking their authority, and
// shows the listing again with the grant marked.
func (b *Bot) revoke(ctx context.Context, viewer, responseURL string, rv view.RevokeValue) {
	fail := func(text string) { b.respond(ctx, responseURL, ephemeral(text)) }
	org, ok := b.config().Org(rv.Org)
	if !ok {
		fail(fmt.Sprintf("patbot does not serve the organization %s.", view.Escape(rv.Org)))
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
		refuse("not authorized", fmt.Sprintf("Only owners of %s%s may revoke tokens, and GitHub says %s. Nothing was revoked.", view.Escape(org.Login), teamsClause(org), view.Escape(v.why)))
		return
	}
	grants, err := b.gh.ListGrants(ctx, org.Login, rv.Query.Login)
	if err != nil {
		fail(fmt.Sprintf("Nothing was revoked: %s.", describeGitHubError(err)))
		return
	}
	i := slices.IndexFunc(grants, func(g github.Grant) bool { return g.ID == rv.ID })
	if i < 0 {
		fail("That token no longer has access to " + view.Escape(org.Login) + ": it was revoked or expired already.")
		return
	}
	grant := grants[i]
	err = b.gh.RevokeGrant(ctx, org.Login, grant.ID)
	if errors.Is(err, github.ErrNotFound) {
		fail("That token no longer has access to " + view.Escape(org.Login) + ": it was revoked already.")
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
		viewer, view.Escape(login), view.Escape(grant.Owner.Login), view.Escape(view.GrantTokenName(grant)), grant.TokenID, view.Escape(org.Login))
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
			notes = append(notes, fmt.Sprintf("%s: could not check your permission (%s).", view.Escape(org.Login), describeGitHubError(err)))
			continue
		}
		if !v.allowed {
			continue
		}
		reqs, err := b.store.Requests(org.Login, store.StatePending, store.StateDeciding)
		if err != nil {
			notes = append(notes, view.Escape(org.Login)+": patbot could not read its records.")
			continue
		}
		slices.SortFunc(reqs, func(a, b store.Request) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, r := range reqs {
			total++
			if len(lines) == maxRequestsShown {
				continue
			}
			lines = append(lines, fmt.Sprintf("• *%s* · `%s` for %s · requested %s · %s", view.Escape(org.Login), view.Escape(view.TokenName(r)), view.Escape(r.Owner), view.SlackDate(r.CreatedAt), cardLink(r.Card, teamDomain)))
		}
	}
	if len(lines) == 0 && len(notes) == 0 {
		return ephemeral("No pending token requests in the organizations where you are an approver.")
	}
	text := fmt.Sprintf("*%d pending token %s*\n%s", total, view.Plural(total, "request", "requests"), strings.Join(lines, "\n"))
	if more := total - len(lines); more > 0 {
		text += fmt.Sprintf("\n…and %d more", more)
	}
	if len(notes) > 0 {
		text += "\n" + strings.Join(notes, "\n")
	}
	return ephemeral(view.Truncate(text, 3000))
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
