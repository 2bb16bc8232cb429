package bot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/github"
)

// RequiredPermissions are the App permissions patbot needs on each org.
var RequiredPermissions = map[string]string{
	"organization_personal_access_token_requests": "write", // review requests, and receive their webhooks
	"organization_personal_access_tokens":         "write", // list and revoke grants
	"members":                                     "read",  // check approvers
}

// SlackScopes lists every Slack Web API method patbot calls and the bot
// scope it needs ("" for none). The manifest must grant them all.
var SlackScopes = map[string]string{
	"chat.postMessage":   "chat:write",
	"chat.update":        "chat:write",
	"chat.postEphemeral": "chat:write",
	"conversations.open": "im:write",
	"conversations.info": "channels:read groups:read", // patbot check: public and private channels
	// Finding a card that a post interrupted by a crash may have left.
	"conversations.history": "channels:history groups:history",
	"views.open":            "",
	"views.update":          "",
	"views.publish":         "", // the Home tab
	"auth.test":             "",
}

// CheckResult is one line of patbot check. A warning is OK but worth
// reading.
type CheckResult struct {
	OK      bool
	Warning bool
	What    string
	Detail  string
}

// CheckGitHub is what the check needs of GitHub.
type CheckGitHub interface {
	App(ctx context.Context) (github.App, error)
	OrgInstallation(ctx context.Context, org string) (github.Installation, error)
}

// CheckSlack is what the check needs of Slack.
type CheckSlack interface {
	AuthTestContext(ctx context.Context) (*slack.AuthTestResponse, error)
	GetConversationInfoContext(ctx context.Context, input *slack.GetConversationInfoInput) (*slack.Channel, error)
}

var _ CheckSlack = (*slack.Client)(nil)

// Check verifies that the App, its installations, the Slack token and every
// org's channel work as the policy needs. It reports every problem, not
// just the first.
func Check(ctx context.Context, gh CheckGitHub, sl CheckSlack, p Config) []CheckResult {
	var out []CheckResult
	add := func(ok bool, what, format string, a ...any) {
		out = append(out, CheckResult{OK: ok, What: what, Detail: fmt.Sprintf(format, a...)})
	}
	orgs := p.sorted("")

	app, err := gh.App(ctx)
	if err != nil {
		add(false, "GitHub App", "the App ID and private key do not authenticate: %s", describeCheckError(err))
	} else {
		add(true, "GitHub App", "authenticated as %s (ID %d)", app.Slug, app.ID)
		for _, o := range orgs {
			what := "GitHub " + o.Login
			inst, err := gh.OrgInstallation(ctx, o.Login)
			if errors.Is(err, github.ErrNotFound) {
				add(false, what, "the App is not installed on %s: install it from the App's settings (Install App)", o.Login)
				continue
			}
			if err != nil {
				add(false, what, "cannot look up the installation: %s", describeCheckError(err))
				continue
			}
			if missing := missingPermissions(inst.Permissions); len(missing) > 0 {
				add(false, what, "installation %d lacks %s: grant them in the App's settings, then accept the new permissions on the org", inst.ID, strings.Join(missing, ", "))
				continue
			}
			add(true, what, "installed (installation %d) with the permissions patbot needs", inst.ID)
		}
	}

	auth, err := sl.AuthTestContext(ctx)
	if err != nil {
		add(false, "Slack", "the bot token does not work: %s", describeCheckError(err))
		return out
	}
	add(true, "Slack", "bot token works: @%s in %s", auth.User, auth.Team)
	for _, o := range orgs {
		channels := []string{o.Channel}
		if o.Escalate != nil {
			channels = append(channels, o.Escalate.Channel)
		}
		for _, channel := range channels {
			what := "Slack " + channel + " (" + o.Login + ")"
			ch, err := sl.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: channel})
			switch {
			case err != nil:
				add(false, what, "%s: check the channel ID, and that the bot is invited (/invite @%s)", describeCheckError(err), auth.User)
			case ch.IsArchived:
				add(false, what, "the channel is archived")
			case !ch.IsMember:
				add(false, what, "the bot is not in #%s: /invite @%s there", ch.Name, auth.User)
			default:
				add(true, what, "#%s exists and the bot can post there", ch.Name)
			}
		}
	}
	return out
}

func missingPermissions(granted map[string]string) []string {
	var missing []string
	for _, name := range slices.Sorted(maps.Keys(RequiredPermissions)) {
		want, have := RequiredPermissions[name], granted[name]
		if have == "" || want == "write" && have != "write" {
			missing = append(missing, name+": "+want)
		}
	}
	return missing
}

func describeCheckError(err error) string {
	var se slack.SlackErrorResponse
	var apiErr *github.APIError
	switch {
	case errors.As(err, &se):
		return "Slack says " + se.Err
	case errors.As(err, &apiErr):
		return describeGitHubError(err)
	}
	return "cannot connect (" + err.Error() + ")"
}

// CheckLinkingGitHub is what the linking check needs of GitHub.
type CheckLinkingGitHub interface {
	CheckClientCredentials(ctx context.Context, f github.WebFlow) error
}

// CheckLinking verifies what linking GitHub accounts needs: that GitHub
// accepts the App's client id and secret, and where GitHub must send
// browsers back (the App's callback URL).
func CheckLinking(ctx context.Context, gh CheckLinkingGitHub, f github.WebFlow, keyID string) []CheckResult {
	var out []CheckResult
	switch err := gh.CheckClientCredentials(ctx, f); {
	case errors.Is(err, github.ErrClientCredentials):
		out = append(out, CheckResult{What: "GitHub sign-in", Detail: "GitHub does not accept GITHUB_APP_CLIENT_ID and GITHUB_APP_CLIENT_SECRET: copy them from the App's settings (General: Client ID, Client secrets)"})
	case err != nil:
		out = append(out, CheckResult{What: "GitHub sign-in", Detail: "cannot ask GitHub about the client id and secret: " + describeCheckError(err)})
	default:
		out = append(out, CheckResult{OK: true, What: "GitHub sign-in", Detail: fmt.Sprintf(
			"GitHub accepts the client id and secret; the App's callback URL must be %s; user tokens are sealed under key %s", f.RedirectURL, keyID)})
	}
	return out
}

// PolicyWarnings are settings that work but may not do what was meant.
func PolicyWarnings(p Config) []CheckResult {
	var out []CheckResult
	for _, o := range p.sorted("") {
		if o.asApprover() && len(o.ApproverTeams) > 0 {
			out = append(out, CheckResult{OK: true, Warning: true, What: "policy " + o.Login, Detail: fmt.Sprintf(
				"decide_as: approver lets only owners decide (GitHub's rule), so approver_teams (%s) cannot decide in %s: remove them, or decide as the App",
				strings.Join(o.ApproverTeams, ", "), o.Login)})
		}
	}
	return out
}
