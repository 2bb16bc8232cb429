package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/identity"
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
	me, known := b.whoIs(viewer)
	if !known {
		return ephemeral(b.notLinked(viewer) + " Until then you cannot look up tokens.")
	}
	if q.Login == "" && !q.Filtered() {
		q.Login = me.login
	}
	self := strings.EqualFold(me.login, q.Login)

	v := view.GrantsView{Login: q.Login, Query: q, Now: b.now()}
	var all []view.GrantEntry
	for _, org := range b.config().sorted(q.Org) {
		if !self && q.Login != "" && !me.acceptedBy(org) {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: only approvers who signed in to GitHub (`/pat link`) see other members' tokens.", view.Escape(org.Login)))
			continue
		}
		verdict, err := b.authz.check(ctx, org, me.login)
		if err != nil {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: could not check your permission (%s).", view.Escape(org.Login), describeGitHubError(err)))
			continue
		}
		if !self && q.Login != "" && !verdict.allowed {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: only owners and approvers see other members' tokens.", view.Escape(org.Login)))
			continue
		}
		orgQuery := q
		if orgQuery.Login == "" && !(verdict.allowed && me.acceptedBy(org)) {
			orgQuery.Login = me.login // everyone else sees only their own
			v.Notes = append(v.Notes, fmt.Sprintf("%s: only your own tokens are listed; owners and approvers see everyone's.", view.Escape(org.Login)))
		}
		grants, err := FindGrants(ctx, b.gh, org.Login, orgQuery, b.now())
		if err != nil {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: %s; the tokens there are not listed.", view.Escape(org.Login), describeGitHubError(err)))
			continue
		}
		v.Orgs = append(v.Orgs, org.Login)
		for _, g := range grants {
			all = append(all, view.GrantEntry{Org: org.Login, Grant: g, CanRevoke: verdict.allowed && me.acceptedBy(org) && (!org.asApprover() || verdict.owner)})
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
	q.Page, _, v.Entries = view.Paged(all, q.Page, view.GrantsPerPage)
	v.Query = q
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
	me, known := b.whoIs(viewer)
	as := store.AsApp
	if org.asApprover() {
		as = store.AsApprover
	}
	refuse := func(detail, text string, signIn bool) {
		b.audit(store.AuditEvent{Kind: "refused", Org: org.Login, GrantID: rv.ID, Action: "revoke", Actor: me.login, ActorID: me.githubID,
			SlackUser: viewer, Source: store.SourceSlack, As: as, Detail: detail})
		b.metrics.refusals.WithLabelValues(detail).Inc()
		if signIn && b.identity != nil {
			b.respond(ctx, responseURL, b.linkPrompt(viewer, "", "", text))
			return
		}
		fail(text)
	}
	if !known {
		refuse("slack user not mapped", b.notLinked(viewer), true)
		return
	}
	if !me.acceptedBy(org) || org.asApprover() && !me.linked {
		refuse("not linked", fmt.Sprintf("In %s only approvers who signed in to GitHub may revoke tokens. Sign in to link your account; nothing was revoked.", view.Escape(org.Login)), true)
		return
	}
	v, err := b.authz.verify(ctx, org, me.login) // never a cached verdict for a revocation
	if err != nil {
		refuse("authorization check failed", fmt.Sprintf("patbot could not check your permission with GitHub (%s). Nothing was revoked.", describeGitHubError(err)), false)
		return
	}
	if !v.allowed {
		refuse("not authorized", fmt.Sprintf("Only owners of %s%s may revoke tokens, and GitHub says %s. Nothing was revoked.", view.Escape(org.Login), teamsClause(org), view.Escape(v.why)), false)
		return
	}
	if org.asApprover() && !v.owner {
		refuse("not an owner", fmt.Sprintf("In %s patbot revokes tokens as the approver, and GitHub lets only organization owners do that; you are %s. Nothing was revoked.",
			view.Escape(org.Login), view.Escape(v.why)), false)
		return
	}
	var cred *identity.Credential
	if org.asApprover() {
		c, err := b.identity.Token(ctx, viewer)
		if err != nil {
			refuse("token unusable", "GitHub no longer accepts your sign-in, so patbot cannot revoke as you. Sign in to GitHub again; nothing was revoked.", true)
			return
		}
		cred = &c
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
	err = b.revokeAs(ctx, org, grant.ID, &cred)
	if errors.Is(err, identity.ErrRelink) {
		refuse("token unusable", "GitHub no longer accepts your sign-in, so patbot cannot revoke as you. Sign in to GitHub again; nothing was revoked.", true)
		return
	}
	if errors.Is(err, github.ErrNotFound) && (cred == nil || !b.stillGranted(ctx, org, grant)) {
		fail("That token no longer has access to " + view.Escape(org.Login) + ": it was revoked already.")
		return
	}
	if err != nil {
		b.log.Warn("revoke failed", LogOrg, org.Login, "grant", grant.ID, LogActor, me.login, "err", err)
		fail(fmt.Sprintf("The token was not revoked: %s. It still has access; try again.", b.describeReviewError(approver{login: me.login, cred: cred}, err)))
		return
	}
	b.audit(store.AuditEvent{Kind: "revocation", Org: org.Login, GrantID: grant.ID, Action: "revoke", Actor: me.login, ActorID: me.githubID, As: as,
		SlackUser: viewer, Source: store.SourceSlack, Detail: fmt.Sprintf("token %q (%d) of %s; authorized as %s", grant.TokenName, grant.TokenID, grant.Owner.Login, v.why)})
	b.log.Info("grant revoked", LogOrg, org.Login, "grant", grant.ID, "token_id", grant.TokenID, "owner", grant.Owner.Login, LogActor, me.login, "as", as)
	b.somethingChanged() // Home tabs list tokens
	notice := fmt.Sprintf(":lock: <@%s> (%s) revoked %s's fine-grained token “%s” (token %d): it no longer has access to *%s*.",
		viewer, view.Escape(me.login), view.Escape(grant.Owner.Login), view.Escape(view.GrantTokenName(grant)), grant.TokenID, view.Escape(org.Login))
	_, _, err = b.slack.PostMessageContext(ctx, org.Channel, slack.MsgOptionText(notice, false))
	if err != nil {
		b.log.Warn("cannot post the revocation notice", "channel", org.Channel, "err", err)
	}
	b.respond(ctx, responseURL, b.grantsMessage(ctx, viewer, rv.Query, &revocation{org: org.Login, grant: grant, by: viewer}))
}

// revokeAs revokes a grant as the App or, with cred, as the approver,
// whose token is refreshed once if GitHub refuses it as expired.
func (b *Bot) revokeAs(ctx context.Context, org Org, patID int64, cred **identity.Credential) error {
	as := func() github.UserToken {
		if *cred == nil {
			return ""
		}
		return (*cred).Token
	}
	err := b.gh.RevokeGrant(ctx, org.Login, patID, as())
	if *cred == nil || github.StatusCode(err) != http.StatusUnauthorized {
		return err
	}
	fresh, rerr := b.identity.Refresh(ctx, **cred)
	if errors.Is(rerr, identity.ErrRelink) || errors.Is(rerr, identity.ErrNotLinked) {
		return identity.ErrRelink
	}
	if rerr != nil {
		return err
	}
	*cred = &fresh
	return b.gh.RevokeGrant(ctx, org.Login, patID, as())
}

// stillGranted reports whether GitHub still lists a grant (after a 404
// that may mean "gone" or "not yours to see").
func (b *Bot) stillGranted(ctx context.Context, org Org, g github.Grant) bool {
	grants, err := b.gh.ListGrants(ctx, org.Login, g.Owner.Login)
	return err != nil || slices.ContainsFunc(grants, func(x github.Grant) bool { return x.ID == g.ID })
}

// requestsMessage lists pending requests in the orgs where viewer is an
// approver, each with a link to its card.
func (b *Bot) requestsMessage(ctx context.Context, viewer, teamDomain string) *slack.WebhookMessage {
	me, known := b.whoIs(viewer)
	if !known {
		return ephemeral(b.notLinked(viewer))
	}
	var lines, notes []string
	total := 0
	for _, org := range b.config().sorted("") {
		if !me.acceptedBy(org) {
			notes = append(notes, fmt.Sprintf("%s: only approvers who signed in to GitHub (`/pat link`) see its requests.", view.Escape(org.Login)))
			continue
		}
		v, err := b.authz.check(ctx, org, me.login)
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
