package bot

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/bot/view"
)

// Command is the slash command patbot answers.
const Command = "/pat"

// Action IDs of patbot's buttons and dialogs (see view).
const (
	ActionApprove    = view.ActionApprove
	ActionDeny       = view.ActionDeny
	ActionRevoke     = view.ActionRevoke
	ActionGrantsPage = view.ActionGrantsPage
	CallbackDeny     = view.CallbackDeny
)

const usage = "*/pat grants* [@user | github-login] [--org NAME]: a member's approved fine-grained tokens (yours by default). " +
	"Owners and approvers see anyone's, and can revoke them, and may ask which tokens match: " +
	"`--repo NAME`, `--permission NAME[:LEVEL]`, `--unused 90d`, `--used-since 7d`, `--token ID` (combinable).\n" +
	"*/pat requests*: pending token requests, with links to their cards.\n" +
	"*/pat link*: sign in to GitHub, so that patbot knows your account (and can decide as you where your org asks for it).\n" +
	"*/pat whoami*: the GitHub account patbot knows you by.\n" +
	"*/pat unlink*: remove the link, and patbot's authorization to act as you at GitHub.\n" +
	"*/pat digest* [--org NAME]: the pending requests, oldest first, with Review… to decide several at once.\n" +
	"*/pat hygiene* [--org NAME]: owners and approvers: tokens unused, orphaned, expired or expiring soon, with Revoke buttons.\n" +
	"*/pat help*: this message."

var (
	mentionRE = regexp.MustCompile(`^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$`)
	loginRE   = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
)

// slashCommand is the part of Slack's slash command payload patbot uses.
type slashCommand struct {
	Text        string
	UserID      string
	UserName    string
	ChannelID   string
	TeamDomain  string
	ResponseURL string
}

// parseGrantsArgs reads "[@user | login] [--org NAME] [--repo NAME]
// [--permission NAME[:LEVEL]] [--unused DURATION] [--used-since DURATION]
// [--token ID]". A Slack mention is resolved to the account patbot knows.
// It returns the query or what is wrong.
func (b *Bot) parseGrantsArgs(args []string) (view.GrantsQuery, string) {
	var q view.GrantsQuery
	target := ""
	options := map[string]func(string) string{
		"org": func(v string) string { q.Org = v; return "" },
		"repo": func(v string) string {
			q.Repo = v
			return check(repoNameRE.MatchString(v), "`--repo` takes a repository's name, like `payments`.")
		},
		"permission": func(v string) string {
			q.Permission = v
			if _, err := policy.ParsePermission(v); err != nil {
				return "`--permission`: " + view.Escape(err.Error()) + " (like `secrets:write` or `contents`)."
			}
			return ""
		},
		"unused":     func(v string) string { q.Unused = v; return checkDuration("--unused", v) },
		"used-since": func(v string) string { q.UsedSince = v; return checkDuration("--used-since", v) },
		"token": func(v string) string {
			id, err := strconv.ParseInt(v, 10, 64)
			q.Token = id
			return check(err == nil && id > 0, "`--token` takes a token's ID, a number.")
		},
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		set, isOption := options[name]
		switch {
		case strings.HasPrefix(a, "-") && !isOption:
			return q, fmt.Sprintf("Unknown option `%s`.", view.Escape(a))
		case isOption && strings.HasPrefix(a, "-"):
			if !inline {
				if i+1 == len(args) {
					return q, fmt.Sprintf("`--%s` needs a value.", name)
				}
				i++
				value = args[i]
			}
			if problem := set(value); problem != "" {
				return q, problem
			}
		case target != "":
			return q, "Name one member at a time."
		default:
			target = a
		}
	}
	if q.Org != "" {
		o, ok := b.config().Org(q.Org)
		if !ok {
			return q, fmt.Sprintf("patbot does not serve an organization called `%s`.", view.Escape(q.Org))
		}
		q.Org = o.Login
	}
	switch m := mentionRE.FindStringSubmatch(target); {
	case target == "":
	case m != nil:
		p, ok := b.whoIs(m[1])
		if !ok {
			return q, fmt.Sprintf("patbot does not know <@%s>'s GitHub account; name their GitHub login instead: `/pat grants octocat`.", m[1])
		}
		q.Login = p.login
	case loginRE.MatchString(strings.TrimPrefix(target, "@")):
		q.Login = strings.TrimPrefix(target, "@")
	default:
		return q, fmt.Sprintf("`%s` is neither a Slack mention nor a GitHub login.", view.Escape(view.Truncate(target, 60)))
	}
	return q, ""
}

var repoNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

// check is problem unless ok.
func check(ok bool, problem string) string {
	if ok {
		return ""
	}
	return problem
}

func checkDuration(option, v string) string {
	_, err := policy.ParseDuration(v)
	return check(err == nil, fmt.Sprintf("`%s` takes a duration, like `90d` or `12h`.", option))
}

// CommandsHandler receives slash commands over HTTP.
func (b *Bot) CommandsHandler() http.Handler {
	return b.slackRoute(func(_ context.Context, form url.Values) (any, error) {
		if form.Get("user_id") == "" {
			return nil, fmt.Errorf("%w slash command", errMalformed)
		}
		return b.HandleCommand(slashCommand{Text: form.Get("text"), UserID: form.Get("user_id"), UserName: form.Get("user_name"), ChannelID: form.Get("channel_id"),
			TeamDomain: form.Get("team_domain"), ResponseURL: form.Get("response_url")}), nil
	})
}

// ephemeral is a reply only the user sees.
func ephemeral(text string) *slack.WebhookMessage {
	return &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: text}
}

// HandleCommand answers a /pat command at once; lookups run afterwards and
// deliver their answer through the command's response_url.
func (b *Bot) HandleCommand(cmd slashCommand) *slack.WebhookMessage {
	args := strings.Fields(cmd.Text)
	if len(args) > 10 {
		args = args[:10]
	}
	sub := ""
	if len(args) > 0 {
		sub, args = strings.ToLower(args[0]), args[1:]
	}
	switch sub {
	case "grants", "tokens":
		q, problem := b.parseGrantsArgs(args)
		if problem != "" {
			return ephemeral(problem + "\n\n" + usage)
		}
		if err := b.submit(func(ctx context.Context) {
			b.respond(ctx, cmd.ResponseURL, b.grantsMessage(ctx, cmd.UserID, q, nil))
		}); err != nil {
			return ephemeral("patbot is busy; try again in a moment.")
		}
		return ephemeral(":mag: Looking up tokens…")
	case "requests":
		if err := b.submit(func(ctx context.Context) {
			b.respond(ctx, cmd.ResponseURL, b.requestsMessage(ctx, cmd.UserID, cmd.TeamDomain))
		}); err != nil {
			return ephemeral("patbot is busy; try again in a moment.")
		}
		return ephemeral(":mag: Looking up pending requests…")
	case "link":
		why := "Sign in to GitHub to link your GitHub account to your Slack account."
		if p, ok := b.whoIs(cmd.UserID); ok && p.linked {
			why = fmt.Sprintf("You are linked to GitHub as *%s*. Sign in again to renew the link (to link another account, `/pat unlink` first).", view.Escape(p.login))
		}
		return b.linkPrompt(cmd.UserID, cmd.UserName, cmd.TeamDomain, why)
	case "whoami", "unlink":
		answer := b.whoamiMessage
		if sub == "unlink" {
			answer = b.unlinkMessage
		}
		if err := b.submit(func(ctx context.Context) { b.respond(ctx, cmd.ResponseURL, answer(ctx, cmd)) }); err != nil {
			return ephemeral("patbot is busy; try again in a moment.")
		}
		return ephemeral(":mag: Asking GitHub…")
	case "digest":
		only, problem := b.orgArg(sub, args)
		if problem != "" {
			return ephemeral(problem)
		}
		msg := b.digestMessage(cmd.UserID, only, cmd.TeamDomain)
		msg.ResponseType = slack.ResponseTypeEphemeral
		return msg
	case "hygiene":
		only, problem := b.orgArg(sub, args)
		if problem != "" {
			return ephemeral(problem)
		}
		if err := b.submit(func(ctx context.Context) { b.respond(ctx, cmd.ResponseURL, b.hygieneMessage(ctx, cmd.UserID, only)) }); err != nil {
			return ephemeral("patbot is busy; try again in a moment.")
		}
		return ephemeral(":broom: Looking at the tokens…")
	case "", "help":
		return ephemeral(usage)
	default:
		return ephemeral(fmt.Sprintf("Unknown command `%s`.\n\n%s", view.Escape(view.Truncate(sub, 40)), usage))
	}
}

// orgArg reads a subcommand's only argument, "[--org NAME]".
func (b *Bot) orgArg(sub string, args []string) (string, string) {
	switch {
	case len(args) == 0:
		return "", ""
	case len(args) != 2 || args[0] != "--org" && args[0] != "-org":
		return "", fmt.Sprintf("Usage: `/pat %s [--org NAME]`.", sub)
	}
	o, ok := b.config().Org(args[1])
	if !ok {
		return "", fmt.Sprintf("patbot does not serve an organization called `%s`.", view.Escape(args[1]))
	}
	return o.Login, ""
}

// respond replaces the ephemeral message a response_url belongs to.
func (b *Bot) respond(ctx context.Context, responseURL string, msg *slack.WebhookMessage) {
	if responseURL == "" {
		return
	}
	if !b.allowedResponseURL(responseURL) {
		b.log.Warn("response URL refused: not under an allowed prefix", "host", urlHost(responseURL))
		b.metrics.slackRequests.WithLabelValues("response_url", "refused").Inc()
		return
	}
	msg.ResponseType = slack.ResponseTypeEphemeral
	msg.ReplaceOriginal = true
	err := slack.PostWebhookCustomHTTPContext(ctx, responseURL, b.responseClient, msg)
	if err != nil {
		b.log.Warn("cannot answer through the response URL", "err", err)
	}
}

// allowedResponseURL reports whether u is under one of the allowed
// prefixes. The prefixes end in "/", so that a host cannot be extended
// (hooks.slack.com.example.net).
func (b *Bot) allowedResponseURL(u string) bool {
	for _, p := range b.responsePrefixes {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

// urlHost is the host of u for logs: a response URL's path is a credential.
func urlHost(u string) string {
	if parsed, err := url.Parse(u); err == nil {
		return parsed.Host
	}
	return ""
}
