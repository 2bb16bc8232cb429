package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/identity"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/store"
)

// person is who a Slack user is on GitHub, and how patbot knows it.
type person struct {
	login    string
	githubID int64 // known when linked
	// linked: the user proved the account by signing in to GitHub; else
	// the configuration's users map says so.
	linked bool
}

// whoIs tells who a Slack user is on GitHub: the account they linked,
// else the login the users map gives them.
func (b *Bot) whoIs(slackUser string) (person, bool) {
	if b.identity != nil {
		l, err := b.identity.Link(slackUser)
		if err == nil {
			return person{login: l.GitHubLogin, githubID: l.GitHubID, linked: true}, true
		}
		if !errors.Is(err, store.ErrNotFound) {
			b.log.Warn("cannot read a Slack user's link", "slack_user", slackUser, "err", err)
		}
	}
	if login, ok := b.config().Users[slackUser]; ok {
		return person{login: login}, true
	}
	return person{}, false
}

// acceptedBy reports whether org accepts p's identity for deciding and
// for seeing others' tokens: with identity: linked, only a linked one.
func (p person) acceptedBy(org Org) bool { return p.linked || org.Identity != IdentityLinked }

// slackUserOf returns the Slack user of a GitHub login (the users map, or
// a link), or "".
func (b *Bot) slackUserOf(login string) string {
	if u := b.config().slackByLogin[strings.ToLower(login)]; u != "" || b.identity == nil {
		return u
	}
	links, err := b.store.Links()
	if err != nil {
		return ""
	}
	for _, l := range links {
		if strings.EqualFold(l.GitHubLogin, login) {
			return l.SlackUser
		}
	}
	return ""
}

// notLinked tells a Slack user patbot does not know how to become known.
func (b *Bot) notLinked(slackUser string) string {
	if b.identity != nil {
		return "Your Slack account is not linked to a GitHub account: run `/pat link` to sign in to GitHub."
	}
	return fmt.Sprintf("Your Slack account is not linked to a GitHub login. Ask whoever runs patbot to add `%s: <your GitHub login>` under `users` in its policy file.", slackUser)
}

// linkPrompt starts a sign-in for a Slack user and asks them, with why,
// to follow it.
func (b *Bot) linkPrompt(slackUser, slackName, team, why string) *slack.WebhookMessage {
	if b.identity == nil {
		return ephemeral(why + " Linking GitHub accounts is not set up in this patbot: ask whoever runs it to set GITHUB_APP_CLIENT_ID.")
	}
	signIn, err := b.identity.Start(slackUser, slackName, team)
	if err != nil {
		b.log.Error("cannot start a sign-in", "slack_user", slackUser, "err", err)
		return ephemeral(why + " patbot could not start a sign-in just now; try `/pat link` again in a moment.")
	}
	blocks, text := view.LinkPrompt(why, signIn)
	return &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: text, Blocks: &slack.Blocks{BlockSet: blocks}}
}

// tellToLink answers a click that needs the user linked: why, with the
// sign-in button, only to them.
func (b *Bot) tellToLink(ctx context.Context, channel, slackUser, why string) {
	msg := b.linkPrompt(slackUser, "", "", why)
	opts := []slack.MsgOption{slack.MsgOptionText(msg.Text, false)}
	if msg.Blocks != nil {
		opts = append(opts, slack.MsgOptionBlocks(msg.Blocks.BlockSet...))
	}
	if _, err := b.slack.PostEphemeralContext(ctx, channel, slackUser, opts...); err != nil {
		b.log.Warn("cannot send an ephemeral message", "channel", channel, "slack_user", slackUser, "err", err)
	}
}

// linked is told of each confirmed link: the audit trail records it, and
// the user hears it in Slack.
func (b *Bot) linked(ctx context.Context, l store.Link) {
	b.audit(store.AuditEvent{Kind: "link", Actor: l.GitHubLogin, ActorID: l.GitHubID, SlackUser: l.SlackUser, Source: store.SourceSlack,
		Detail: "signed in to GitHub and confirmed"})
	text := fmt.Sprintf(":link: You are linked to GitHub as *%s*. patbot now knows you by that account; `/pat whoami` shows the link, `/pat unlink` removes it.",
		view.Escape(l.GitHubLogin))
	if err := b.dm(ctx, l.SlackUser, text); err != nil {
		b.log.Warn("cannot tell a user they are linked", "slack_user", l.SlackUser, "err", err)
	}
}

// SignInHandler serves GitHub's callback and the confirmation page, under
// PATBOT_PUBLIC_URL; nil when linking is off.
func (b *Bot) SignInHandler() http.Handler {
	if b.identity == nil {
		return nil
	}
	return b.identity.Handler()
}

// whoamiMessage says how patbot knows a Slack user, and whether GitHub
// still takes their token.
func (b *Bot) whoamiMessage(ctx context.Context, cmd slashCommand) *slack.WebhookMessage {
	if b.identity != nil {
		st, err := b.identity.Check(ctx, cmd.UserID)
		switch {
		case err == nil && st.Valid:
			return ephemeral(fmt.Sprintf("You are linked to GitHub as *%s* (user id %d) since %s. Your token works: patbot can act as you where your orgs decide as the approver.",
				view.Escape(st.Link.GitHubLogin), st.Link.GitHubID, view.SlackDate(st.Link.LinkedAt)))
		case err == nil:
			return b.linkPrompt(cmd.UserID, cmd.UserName, cmd.TeamDomain, fmt.Sprintf(
				"You are linked to GitHub as *%s*, but your token does not work (%s). Sign in again to renew it.",
				view.Escape(st.Link.GitHubLogin), view.Escape(st.Problem)))
		case !errors.Is(err, identity.ErrNotLinked):
			b.log.Warn("cannot check a link", "slack_user", cmd.UserID, "err", err)
			return ephemeral("patbot could not read your link just now; try again in a moment.")
		}
	}
	if login, ok := b.config().Users[cmd.UserID]; ok {
		text := fmt.Sprintf("patbot's configuration maps you to the GitHub login *%s*; you have not signed in to GitHub.", view.Escape(login))
		if b.identity != nil {
			text += " Run `/pat link` to prove the account is yours."
		}
		return ephemeral(text)
	}
	return ephemeral(b.notLinked(cmd.UserID))
}

// unlinkMessage removes a Slack user's link and revokes their
// authorization of the App at GitHub.
func (b *Bot) unlinkMessage(ctx context.Context, cmd slashCommand) *slack.WebhookMessage {
	if b.identity == nil {
		return ephemeral("Linking GitHub accounts is not set up in this patbot.")
	}
	l, revoked, err := b.identity.Unlink(ctx, cmd.UserID)
	switch {
	case errors.Is(err, identity.ErrNotLinked):
		return ephemeral("Your Slack account is not linked to a GitHub account.")
	case err != nil:
		b.log.Warn("cannot unlink", "slack_user", cmd.UserID, "err", err)
		return ephemeral("patbot could not remove your link just now; nothing was changed. Try again in a moment.")
	}
	detail := "GitHub revoked patbot's authorization"
	text := fmt.Sprintf("Unlinked from the GitHub account *%s*, and GitHub revoked patbot's authorization to act as you.", view.Escape(l.GitHubLogin))
	if !revoked {
		detail = "GitHub did not confirm revoking patbot's authorization"
		text = fmt.Sprintf("Unlinked from the GitHub account *%s*. GitHub did not confirm revoking patbot's authorization: "+
			"remove it yourself under Settings → Applications → Authorized GitHub Apps.", view.Escape(l.GitHubLogin))
	}
	b.audit(store.AuditEvent{Kind: "unlink", Actor: l.GitHubLogin, ActorID: l.GitHubID, SlackUser: cmd.UserID, Source: store.SourceSlack, Detail: detail})
	return ephemeral(text)
}
