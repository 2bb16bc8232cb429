package view

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// Action IDs of the card's buttons, the grants listing's, and the deny
// modal's callback and input.
const (
	ActionApprove    = "pat_approve"
	ActionDeny       = "pat_deny"
	ActionRevoke     = "pat_revoke"
	ActionGrantsPage = "pat_grants_page"
	CallbackDeny     = "pat_deny"
	DenyReasonBlock  = "reason"
	DenyReasonInput  = "reason_input"
)

// Card limits, well inside Slack's (3,000 characters a text object, 50
// blocks, about 13,000 characters a message), whatever the requester wrote.
const (
	maxTokenName      = 100
	maxReasonShown    = 1500
	maxReposShown     = 10
	maxPermsPerGroup  = 25
	maxPermGroupChars = 900 // three groups stay under a section's 3,000
	maxFailureShown   = 300
	maxLifetimeNoFlag = 90 * 24 * time.Hour
)

// CardView is everything a request's card shows. Rendering is a pure
// function of it.
type CardView struct {
	Req            store.Request
	OrgLogin       string // as configured
	WebURL         string // https://github.com or a GitHub Enterprise Server host
	RequesterSlack string // Slack user ID of the requester, "" if not mapped
	Now            time.Time
	// ChooseGrantFor: Approve opens a dialog to pick how long access
	// lasts, instead of a confirmation.
	ChooseGrantFor bool
}

// Truncate cuts s to at most n characters, marking the cut.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func Mrkdwn(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, text, false, false)
}

// Plain is a plain-text object: Slack shows it as it is, so it needs no
// escaping, only the cleaning of text shown inline.
func Plain(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, cleanText(text, false), true, false)
}

// SlackDate renders t in each reader's time zone, with a UTC fallback.
func SlackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

// RequestKey is the button value: the request, nothing else. Who may act
// is decided from the clicker, never from the payload.
func RequestKey(org string, id int64) string {
	return strings.ToLower(org) + "/" + strconv.FormatInt(id, 10)
}

func ParseRequestKey(v string) (org string, id int64, ok bool) {
	org, idText, found := strings.Cut(v, "/")
	id, err := strconv.ParseInt(idText, 10, 64)
	return org, id, found && org != "" && err == nil && id > 0
}

func (c CardView) RequestURL() string {
	return fmt.Sprintf("%s/organizations/%s/settings/personal-access-token-requests/%d", c.WebURL, c.OrgLogin, c.Req.ID)
}

func (c CardView) requester() string {
	r := c.Req
	s := fmt.Sprintf("<%s/%s|*%s*>", c.WebURL, Escape(r.Owner), Escape(r.Owner))
	if c.RequesterSlack != "" {
		s += fmt.Sprintf(" (<@%s>)", c.RequesterSlack)
	}
	return s
}

func TokenName(r store.Request) string {
	if r.TokenName == "" {
		return "unnamed token"
	}
	return Truncate(r.TokenName, maxTokenName)
}

// Card returns the card's blocks and the plain-text fallback that
// notifications show.
func Card(c CardView) ([]slack.Block, string) {
	r := c.Req
	blocks := []slack.Block{
		slack.NewHeaderBlock(Plain(Truncate("Fine-grained PAT request · "+c.OrgLogin, 150))),
		slack.NewSectionBlock(Mrkdwn(fmt.Sprintf("%s asks for a fine-grained personal access token to access *%s*.", c.requester(), Escape(c.OrgLogin))), nil, nil),
		slack.NewSectionBlock(nil, c.fields(), nil),
		slack.NewSectionBlock(Mrkdwn("*Reason*\n"+reasonText(r.Reason)), nil, nil),
	}
	if r.RepositorySelection == "subset" {
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(repositoriesText(r)), nil, nil))
	}
	blocks = append(blocks, slack.NewSectionBlock(Mrkdwn("*Permissions*\n"+permissionsText(r)), nil, nil))
	if policy := policyText(r); policy != "" {
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(policy), nil, nil))
	}
	blocks = append(blocks, slack.NewContextBlock("", Mrkdwn(fmt.Sprintf("Request %d · <%s|Open in GitHub>", r.ID, c.RequestURL()))))
	if status := c.status(); status != "" {
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(status), nil, nil))
	}
	if r.State == store.StatePending {
		blocks = append(blocks, c.buttons())
	}
	return blocks, c.fallback()
}

func (c CardView) fields() []*slack.TextBlockObject {
	r := c.Req
	token := fmt.Sprintf("*Token*\n`%s`", Escape(TokenName(r)))
	if r.TokenID != 0 {
		token += fmt.Sprintf(" (ID %d)", r.TokenID)
	}
	fields := []*slack.TextBlockObject{
		Mrkdwn(token),
		Mrkdwn("*Expires*\n" + expiryText(r, c.Now)),
		Mrkdwn("*Repositories*\n" + selectionText(r)),
	}
	if !r.CreatedAt.IsZero() {
		fields = append(fields, Mrkdwn("*Requested*\n"+SlackDate(r.CreatedAt)))
	}
	return fields
}

func expiryText(r store.Request, now time.Time) string {
	if r.TokenExpiresAt == nil {
		return ":warning: *never expires*"
	}
	exp := *r.TokenExpiresAt
	s := exp.UTC().Format("2006-01-02") + " (" + Relative(exp, now) + ")"
	if !r.CreatedAt.IsZero() && exp.Sub(r.CreatedAt) > maxLifetimeNoFlag {
		s += fmt.Sprintf("\n:warning: lifetime of %d days, over 90", int(exp.Sub(r.CreatedAt).Hours()/24))
	}
	return s
}

// Relative says how far t is from now: "in 30 days", "expired 2 hours ago".
func Relative(t, now time.Time) string {
	d := t.Sub(now)
	past := d < 0
	if past {
		d = -d
	}
	if past {
		return "expired " + amount(d) + " ago"
	}
	return "in " + amount(d)
}

// amount is a duration in words: "3 days", "5 hours", "20 minutes",
// "moments".
func amount(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
	return "moments"
}

func selectionText(r store.Request) string {
	switch r.RepositorySelection {
	case "all":
		return "all repositories (current and future)"
	case "subset":
		n := max(r.RepositoryCount, len(r.Repositories))
		if n == 1 {
			return "1 selected repository"
		}
		return fmt.Sprintf("%d selected repositories", n)
	default:
		return "none (organization permissions only)"
	}
}

func reasonText(reason string) string {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return "_no reason given_"
	}
	return Quote(reason)
}

// Quote shows someone's words (a reason) as a mrkdwn quote, cut to
// maxReasonShown.
func Quote(text string) string {
	return ">" + strings.ReplaceAll(escapeLines(Truncate(text, maxReasonShown)), "\n", "\n>")
}

func repositoriesText(r store.Request) string {
	total := max(r.RepositoryCount, len(r.Repositories))
	var b strings.Builder
	fmt.Fprintf(&b, "*Selected repositories (%d)*", total)
	for _, name := range r.Repositories[:min(len(r.Repositories), maxReposShown)] {
		fmt.Fprintf(&b, "\n• `%s`", Escape(Truncate(name, 140)))
	}
	if more := total - min(len(r.Repositories), maxReposShown); more > 0 {
		fmt.Fprintf(&b, "\n…and %d more", more)
	}
	return b.String()
}

func permissionsText(r store.Request) string {
	groups := []struct {
		name             string
		result, upgraded map[string]string
	}{
		{"Organization", r.PermissionsResult.Organization, r.PermissionsUpgraded.Organization},
		{"Repository", r.PermissionsResult.Repository, r.PermissionsUpgraded.Repository},
		{"Other", r.PermissionsResult.Other, r.PermissionsUpgraded.Other},
	}
	var lines []string
	for _, g := range groups {
		if len(g.result) == 0 {
			continue
		}
		names := slices.Sorted(maps.Keys(g.result))
		var parts []string
		chars := 0
		for _, name := range names {
			part := fmt.Sprintf("`%s: %s`", Escape(Truncate(name, 60)), Escape(Truncate(g.result[name], 20)))
			if _, up := g.upgraded[name]; up {
				part += " (upgrade)"
			}
			chars += utf8.RuneCountInString(part) + 2
			if len(parts) == maxPermsPerGroup || chars > maxPermGroupChars {
				break
			}
			parts = append(parts, part)
		}
		if more := len(names) - len(parts); more > 0 {
			parts = append(parts, fmt.Sprintf("and %d more", more))
		}
		lines = append(lines, fmt.Sprintf("*%s:* %s", g.name, strings.Join(parts, ", ")))
	}
	if len(lines) == 0 {
		return "_none listed_"
	}
	return strings.Join(lines, "\n")
}

// Decider names who decided: the Slack approver when patbot decided,
// otherwise the GitHub login.
func Decider(d *store.Decision) string {
	if d.Source == store.SourcePolicy {
		return "rule *" + Escape(d.Rule) + "*"
	}
	if d.SlackUser != "" {
		return fmt.Sprintf("<@%s> (%s)", d.SlackUser, Escape(d.Actor))
	}
	return Escape(d.Actor)
}

// status is the line that says where the request stands, or "" for a
// pending request without a failure to report.
func (c CardView) status() string {
	r := c.Req
	d := r.Decision
	switch r.State {
	case store.StatePending:
		if r.Failure != "" {
			return ":warning: " + Escape(Truncate(r.Failure, maxFailureShown))
		}
		return ""
	case store.StateDeciding:
		if d != nil && r.Unconfirmed {
			return fmt.Sprintf(":hourglass_flowing_sand: %s sent an %s, but %s: *waiting for GitHub to confirm*. Nobody else can decide meanwhile.",
				Decider(d), DecisionNoun(d.Action), Escape(Truncate(r.Failure, maxFailureShown)))
		}
		if d != nil {
			return fmt.Sprintf(":hourglass_flowing_sand: %s is sending a decision to GitHub…", Decider(d))
		}
	case store.StateApproved, store.StateDenied:
		verb := "Approved"
		emoji := ":white_check_mark:"
		if r.State == store.StateDenied {
			verb, emoji = "Denied", ":x:"
		}
		if d == nil {
			return fmt.Sprintf("%s *%s* in GitHub", emoji, verb)
		}
		where := ""
		switch d.Source {
		case store.SourceSlack:
		case store.SourcePolicy:
			where = " automatically"
		default:
			where = " in GitHub"
		}
		s := fmt.Sprintf("%s *%s*%s by %s · %s", emoji, verb, where, Decider(d), SlackDate(d.At))
		if r.State == store.StateDenied && d.Reason != "" {
			s += "\n" + Quote(d.Reason)
		}
		switch {
		case r.State == store.StateApproved && r.GrantEnded != nil:
			s += fmt.Sprintf("\n:lock: Access ended %s: patbot revoked the grant when its time was up.", SlackDate(*r.GrantEnded))
		case r.State == store.StateApproved && r.GrantEnds != nil:
			s += fmt.Sprintf("\n:hourglass: Access granted until %s; then patbot revokes it.", SlackDate(*r.GrantEnds))
		}
		return s
	case store.StateCancelled:
		return ":no_entry_sign: *Cancelled* by the requester" + at(r)
	case store.StateClosed:
		return ":white_circle: *No longer pending* in GitHub: it was decided or withdrawn elsewhere" + at(r)
	case store.StateFailed:
		return ":warning: " + Escape(Truncate(r.Failure, maxFailureShown))
	}
	return ""
}

// at is " · <date of the last change>" for states that carry no decision.
func at(r store.Request) string {
	if len(r.History) == 0 {
		return ""
	}
	return " · " + SlackDate(r.History[len(r.History)-1].At)
}

func (c CardView) buttons() slack.Block {
	r := c.Req
	value := RequestKey(c.OrgLogin, r.ID)
	approve := slack.NewButtonBlockElement(ActionApprove, value, Plain("Approve"))
	approve.Style = slack.StylePrimary
	if c.ChooseGrantFor {
		approve.Text = Plain("Approve…") // the dialog asks for how long, and confirms
	} else {
		approve.Confirm = slack.NewConfirmationBlockObject(
			Plain("Approve this token?"),
			Plain(Truncate(fmt.Sprintf("%s's token “%s” will get the listed access to %s.", r.Owner, TokenName(r), c.OrgLogin), 300)),
			Plain("Approve"),
			Plain("Cancel"),
		)
	}
	deny := slack.NewButtonBlockElement(ActionDeny, value, Plain("Deny…"))
	deny.Style = slack.StyleDanger
	return slack.NewActionBlock("", approve, deny)
}

func (c CardView) fallback() string {
	r := c.Req
	s := fmt.Sprintf("Fine-grained PAT request from %s for %s: %s", Escape(r.Owner), Escape(c.OrgLogin), Escape(TokenName(r)))
	switch r.State {
	case store.StateApproved:
		s += " (approved)"
	case store.StateDenied:
		s += " (denied)"
	case store.StateCancelled:
		s += " (cancelled)"
	case store.StateClosed:
		s += " (no longer pending)"
	}
	if p := r.Policy; p != nil && len(p.Flags) > 0 {
		flags := make([]string, len(p.Flags))
		for i, f := range p.Flags {
			flags[i] = f.Name + " (" + Escape(Truncate(f.Reason, 80)) + ")"
		}
		s += " [flags: " + strings.Join(flags, "; ") + "]"
	}
	return s
}

func DecisionNoun(action string) string {
	if action == github.ActionDeny {
		return "denial"
	}
	return "approval"
}
