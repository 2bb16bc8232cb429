package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// timerHygiene is the kind of an org's hygiene report timer (key: the org).
const timerHygiene = "hygiene"

// expiringWithin is what a hygiene report calls expiring soon.
const expiringWithin = 7 * 24 * time.Hour

// scheduleHygiene gives each org with a hygiene schedule its timer, unless
// it has one: a restart keeps the schedule.
func (b *Bot) scheduleHygiene() {
	for _, org := range b.config().sorted("") {
		if org.Hygiene == nil {
			continue
		}
		if _, err := b.store.Timer(timerHygiene, strings.ToLower(org.Login)); errors.Is(err, store.ErrNotFound) {
			b.timers.Set(store.Timer{Kind: timerHygiene, Key: strings.ToLower(org.Login), Due: b.now().Add(org.Hygiene.Every)})
		}
	}
}

// hygieneReport sorts an org's grants into the report's sections.
func (b *Bot) hygieneReport(ctx context.Context, org Org) (view.HygieneView, error) {
	unusedAfter := 90 * 24 * time.Hour
	if org.Hygiene != nil {
		unusedAfter = org.Hygiene.UnusedAfter
	}
	now := b.now()
	v := view.HygieneView{Org: org.Login, UnusedAfter: unusedAfter, Now: now, Sections: map[string][]github.Grant{}}
	grants, err := b.gh.ListGrants(ctx, org.Login)
	if err != nil {
		return v, err
	}
	members := map[string]bool{} // owner login -> still an active member
	for _, g := range grants {
		exp := g.TokenExpiresAt
		member, checked := members[strings.ToLower(g.Owner.Login)]
		if !checked {
			m, err := b.gh.OrgMembership(ctx, org.Login, g.Owner.Login)
			switch {
			case errors.Is(err, github.ErrNotFound):
				member = false
			case err != nil:
				member = true // unknown: not reported as gone
				v.Notes = append(v.Notes, fmt.Sprintf("Could not check whether %s is still a member (%s).", view.Escape(g.Owner.Login), describeGitHubError(err)))
			default:
				member = m.Active()
			}
			members[strings.ToLower(g.Owner.Login)] = member
		}
		switch {
		case !member:
			v.Sections[view.HygieneNotMember] = append(v.Sections[view.HygieneNotMember], g)
		case g.TokenExpired || exp != nil && !exp.After(now):
			v.Sections[view.HygieneExpired] = append(v.Sections[view.HygieneExpired], g)
		case Unused(g, now.Add(-unusedAfter)):
			v.Sections[view.HygieneUnused] = append(v.Sections[view.HygieneUnused], g)
		case exp != nil && exp.Sub(now) <= expiringWithin:
			v.Sections[view.HygieneExpiring] = append(v.Sections[view.HygieneExpiring], g)
		}
	}
	return v, nil
}

// hygieneTimer is the hygiene timer's work: the report to the org's
// channel, a DM to each owner of a token expiring soon, and the next
// report.
func (b *Bot) hygieneTimer(ctx context.Context, t store.Timer) error {
	org, ok := b.config().Org(t.Key)
	if !ok || org.Hygiene == nil {
		return nil // no longer scheduled
	}
	start := b.now()
	v, err := b.hygieneReport(ctx, org)
	if err != nil {
		return fmt.Errorf("hygiene report of %s: %w", org.Login, err)
	}
	blocks, text := view.Hygiene(v)
	if _, _, err := b.slack.PostMessageContext(ctx, org.Channel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)); err != nil {
		return fmt.Errorf("post the hygiene report: %w", err)
	}
	owners := map[string][]github.Grant{}
	for _, g := range v.Sections[view.HygieneExpiring] {
		owners[g.Owner.Login] = append(owners[g.Owner.Login], g)
	}
	for owner, grants := range owners {
		user := b.slackUserOf(owner)
		if user == "" {
			continue
		}
		var names []string
		for _, g := range grants {
			names = append(names, fmt.Sprintf("“%s” (%s)", view.Escape(view.GrantTokenName(g)), view.SlackDate(*g.TokenExpiresAt)))
		}
		text := fmt.Sprintf(":hourglass: Your fine-grained %s for *%s* %s soon: %s. Make a new one before then if you still need it.",
			view.Plural(len(grants), "token", "tokens"), view.Escape(org.Login), view.Plural(len(grants), "expires", "expire"), strings.Join(names, ", "))
		if err := b.dm(ctx, user, text); err != nil {
			b.log.Warn("cannot tell an owner their token expires soon", "slack_user", user, "err", err)
		}
	}
	counts := []any{LogOrg, org.Login, "took", b.now().Sub(start)}
	for _, s := range view.HygieneSections {
		counts = append(counts, s, len(v.Sections[s]))
	}
	b.metrics.followUps.WithLabelValues("hygiene_report").Inc()
	b.log.Info("hygiene report posted", counts...)
	_, err = b.store.SetTimer(store.Timer{Kind: timerHygiene, Key: t.Key, Due: b.now().Add(org.Hygiene.Every)})
	return err
}

// hygieneMessage is /pat hygiene's answer: the report of each org (or the
// one named) where viewer is an owner or approver.
func (b *Bot) hygieneMessage(ctx context.Context, viewer, only string) *slack.WebhookMessage {
	me, known := b.whoIs(viewer)
	if !known {
		return ephemeral(b.notLinked(viewer))
	}
	var blocks []slack.Block
	var texts, notes []string
	for _, org := range b.config().sorted(only) {
		v, err := b.authz.check(ctx, org, me.login)
		if err != nil || !v.allowed || !me.acceptedBy(org) {
			notes = append(notes, fmt.Sprintf("%s: only owners and approvers see its hygiene report.", view.Escape(org.Login)))
			continue
		}
		report, err := b.hygieneReport(ctx, org)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %s.", view.Escape(org.Login), describeGitHubError(err)))
			continue
		}
		bl, text := view.Hygiene(report)
		blocks, texts = append(blocks, bl...), append(texts, text)
	}
	if len(blocks) == 0 {
		return ephemeral(strings.Join(append(notes, "No hygiene report to show."), "\n"))
	}
	if len(notes) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", view.Mrkdwn(strings.Join(notes, "\n"))))
	}
	return &slack.WebhookMessage{Text: strings.Join(texts, "; "), Blocks: &slack.Blocks{BlockSet: blocks[:min(len(blocks), 50)]}}
}

// hygieneRevoke revokes, for an owner or approver who confirmed it, the
// grants of a report's section that still qualify, with GitHub's bulk
// revoke (as the App, or as the approver where the org decides so), then
// lists the grants again to learn which went, and audits each.
func (b *Bot) hygieneRevoke(ctx context.Context, viewer, responseURL string, hv view.HygieneValue) {
	fail := func(text string) { b.respond(ctx, responseURL, ephemeral(text)) }
	org, ok := b.config().Org(hv.Org)
	if !ok || !slices.Contains(view.HygieneSections, hv.Section) {
		fail("That report is not patbot's any more.")
		return
	}
	me, known := b.whoIs(viewer)
	if !known || !me.acceptedBy(org) || org.asApprover() && !me.linked {
		b.audit(store.AuditEvent{Kind: "refused", Org: org.Login, Action: "revoke", Actor: me.login, SlackUser: viewer, Source: store.SourceSlack, Detail: "hygiene: not linked"})
		fail(b.notLinked(viewer) + " Nothing was revoked.")
		return
	}
	v, err := b.authz.verify(ctx, org, me.login) // never a cached verdict for a revocation
	switch {
	case err != nil:
		fail(fmt.Sprintf("patbot could not check your permission with GitHub (%s). Nothing was revoked.", describeGitHubError(err)))
		return
	case !v.allowed || org.asApprover() && !v.owner:
		b.audit(store.AuditEvent{Kind: "refused", Org: org.Login, Action: "revoke", Actor: me.login, ActorID: me.githubID, SlackUser: viewer,
			Source: store.SourceSlack, Detail: "hygiene: not authorized"})
		b.metrics.refusals.WithLabelValues("not authorized").Inc()
		fail(fmt.Sprintf("Only owners of %s%s may revoke tokens, and GitHub says %s. Nothing was revoked.", view.Escape(org.Login), teamsClause(org), view.Escape(v.why)))
		return
	}
	var as github.UserToken
	asWho := store.AsApp
	if org.asApprover() {
		cred, err := b.identity.Token(ctx, viewer)
		if err != nil {
			fail("GitHub no longer accepts your sign-in, so patbot cannot revoke as you. Run `/pat link`; nothing was revoked.")
			return
		}
		as, asWho = cred.Token, store.AsApprover
	}
	report, err := b.hygieneReport(ctx, org)
	if err != nil {
		fail(fmt.Sprintf("Nothing was revoked: %s.", describeGitHubError(err)))
		return
	}
	targets := report.Sections[hv.Section]
	if len(targets) == 0 {
		fail("No token qualifies for that section any more. Nothing was revoked.")
		return
	}
	var ids []int64
	for _, g := range targets {
		ids = append(ids, g.ID)
	}
	// A call GitHub answers with an error may still have been carried out
	// (a timeout, a 5xx): what the list shows afterwards is what is audited.
	var sendErr error
	for chunk := range slices.Chunk(ids, 100) {
		if sendErr = b.gh.RevokeGrants(ctx, org.Login, chunk, as); sendErr != nil {
			b.log.Warn("bulk revoke failed", LogOrg, org.Login, "grants", len(chunk), "err", sendErr)
			break
		}
	}
	// GitHub works asynchronously: the grants gone from its list are the
	// ones revoked.
	var still []github.Grant
	listed := false
	for wait := time.Duration(0); ; wait = max(2*wait, time.Second) {
		if wait > 0 {
			select {
			case <-ctx.Done():
			case <-b.clock.After(wait):
			}
		}
		grants, err := b.gh.ListGrants(ctx, org.Login)
		if err != nil {
			break
		}
		listed = true
		still = slices.DeleteFunc(slices.Clone(targets), func(t github.Grant) bool {
			return !slices.ContainsFunc(grants, func(g github.Grant) bool { return g.ID == t.ID })
		})
		if len(still) == 0 || sendErr != nil || wait >= 8*time.Second || ctx.Err() != nil {
			break
		}
	}
	switch {
	case sendErr != nil && !listed:
		fail(fmt.Sprintf("GitHub did not take the revocation: %s. Some tokens may have been revoked; run `/pat hygiene` again.", describeGitHubError(sendErr)))
		return
	case sendErr != nil && len(still) == len(targets):
		fail(fmt.Sprintf("GitHub did not take the revocation: %s. Nothing was revoked.", describeGitHubError(sendErr)))
		return
	}
	revoked := 0
	for _, g := range targets {
		if slices.ContainsFunc(still, func(s github.Grant) bool { return s.ID == g.ID }) {
			continue
		}
		revoked++
		b.audit(store.AuditEvent{Kind: "revocation", Org: org.Login, GrantID: g.ID, Action: "revoke", Actor: me.login, ActorID: me.githubID, As: asWho,
			SlackUser: viewer, Source: store.SourceSlack, Detail: fmt.Sprintf("hygiene (%s): token %q (%d) of %s; authorized as %s", hv.Section, g.TokenName, g.TokenID, g.Owner.Login, v.why)})
	}
	b.somethingChanged()
	b.log.Info("hygiene revocation", LogOrg, org.Login, "section", hv.Section, "revoked", revoked, "still_listed", len(still), LogActor, me.login)
	text := fmt.Sprintf(":lock: <@%s> revoked %d %s of %s (%s).", viewer, revoked, view.Plural(revoked, "token", "tokens"), view.Escape(org.Login), hv.Section)
	switch {
	case sendErr != nil:
		text += fmt.Sprintf(" GitHub did not take the rest (%s): run `/pat hygiene` to see what is left.", describeGitHubError(sendErr))
	case len(still) > 0:
		text += fmt.Sprintf(" GitHub still lists %d of them; it may take a moment: run `/pat hygiene` to see.", len(still))
	}
	b.respond(ctx, responseURL, ephemeral(text))
}
