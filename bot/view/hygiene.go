package view

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/github"
)

// ActionHygieneRevoke is the Revoke button of a hygiene report's section.
const ActionHygieneRevoke = "pat_hygiene_revoke"

// Sections of a hygiene report.
const (
	HygieneUnused    = "unused"
	HygieneNotMember = "not_member"
	HygieneExpired   = "expired"
	HygieneExpiring  = "expiring"
)

// HygieneSections are the report's sections, in order.
var HygieneSections = []string{HygieneUnused, HygieneNotMember, HygieneExpired, HygieneExpiring}

// HygieneView is one org's grant hygiene report.
type HygieneView struct {
	Org         string
	UnusedAfter time.Duration
	Sections    map[string][]github.Grant
	Now         time.Time
	// Notes say what could not be checked (escaped).
	Notes []string
}

// HygieneValue is what a section's Revoke button carries: the org and the
// section, never the grants: they are read again at the click.
type HygieneValue struct {
	Org     string `json:"o"`
	Section string `json:"s"`
}

// maxHygieneShown bounds the tokens a section lists.
const maxHygieneShown = 10

// Hygiene renders the report: each section with its tokens and a Revoke
// button (with a confirmation) for all of them.
func Hygiene(v HygieneView) ([]slack.Block, string) {
	titles := map[string]string{
		HygieneUnused:    fmt.Sprintf("Unused for %s", durationWords(v.UnusedAfter)),
		HygieneNotMember: "Owner no longer a member",
		HygieneExpired:   "Expired, still listed",
		HygieneExpiring:  "Expiring within 7 days",
	}
	blocks := []slack.Block{slack.NewHeaderBlock(Plain(Truncate("Token hygiene · "+v.Org, 150)))}
	total := 0
	for _, section := range HygieneSections {
		grants := v.Sections[section]
		total += len(grants)
		if len(grants) == 0 {
			continue
		}
		var lines []string
		for _, g := range grants[:min(len(grants), maxHygieneShown)] {
			lines = append(lines, fmt.Sprintf("• `%s` of *%s* · token %d · last used %s", Escape(GrantTokenName(g)), Escape(g.Owner.Login), g.TokenID, lastUsed(g, v.Now)))
		}
		if more := len(grants) - maxHygieneShown; more > 0 {
			lines = append(lines, fmt.Sprintf("…and %d more", more))
		}
		value, _ := json.Marshal(HygieneValue{Org: v.Org, Section: section})
		btn := slack.NewButtonBlockElement(ActionHygieneRevoke+"_"+section, string(value), Plain(fmt.Sprintf("Revoke %d", len(grants))))
		btn.Style = slack.StyleDanger
		btn.Confirm = slack.NewConfirmationBlockObject(Plain("Revoke these tokens?"),
			Plain(Truncate(fmt.Sprintf("The %d %s listed under “%s” lose their access to %s at once (those that still qualify when you confirm). This cannot be undone.",
				len(grants), Plural(len(grants), "token", "tokens"), titles[section], v.Org), 300)),
			Plain("Revoke"), Plain("Cancel"))
		btn.Confirm.Style = slack.StyleDanger
		blocks = append(blocks,
			slack.NewSectionBlock(Mrkdwn(Truncate(fmt.Sprintf("*%s* (%d)\n%s", titles[section], len(grants), strings.Join(lines, "\n")), 2900)), nil, nil),
			slack.NewActionBlock("", btn))
	}
	if total == 0 {
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(":sparkles: Nothing to clean up: no unused, orphaned, expired or expiring tokens."), nil, nil))
	}
	if len(v.Notes) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", Mrkdwn(Truncate(strings.Join(v.Notes, "\n"), 2000))))
	}
	return blocks, fmt.Sprintf("Token hygiene for %s: %d %s to look at", Escape(v.Org), total, Plural(total, "token", "tokens"))
}

func durationWords(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return amount(d)
}
