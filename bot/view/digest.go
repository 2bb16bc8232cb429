package view

import (
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/store"
)

// ActionDigestReview is the digest's "Review…" button, which opens the
// bulk decision dialog.
const ActionDigestReview = "pat_digest_review"

// maxDigestShown is how many requests a digest lists.
const maxDigestShown = 20

// DigestEntry is one pending request in a digest.
type DigestEntry struct {
	Req  store.Request
	Link string // mrkdwn link to its card
}

// DigestView is one org's digest of pending requests, oldest first.
type DigestView struct {
	Org     string
	Entries []DigestEntry
	Now     time.Time
	// Reviewable says the Review… button has requests to offer.
	Reviewable bool
}

// Digest renders the digest: the oldest 20 requests with their age and
// flags, how many more, and the Review… button.
func Digest(v DigestView) ([]slack.Block, string) {
	n := len(v.Entries)
	blocks := []slack.Block{slack.NewHeaderBlock(Plain(Truncate(fmt.Sprintf("Pending token requests · %s (%d)", v.Org, n), 150)))}
	if n == 0 {
		blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(":sparkles: No token request waits for a decision."), nil, nil))
		return blocks, fmt.Sprintf("No pending token requests in %s", Escape(v.Org))
	}
	var lines []string
	size := 0
	for _, e := range v.Entries[:min(n, maxDigestShown)] {
		r := e.Req
		line := fmt.Sprintf("• `%s` for *%s* · waiting %s · %s", Escape(TokenName(r)), Escape(r.Owner), Waited(v.Now.Sub(r.CreatedAt)), e.Link)
		if p := r.Policy; p != nil && len(p.Flags) > 0 {
			var flags []string
			for _, f := range p.Flags {
				flags = append(flags, "`"+f.Name+"`")
			}
			line += " · :triangular_flag_on_post: " + strings.Join(flags, " ")
		}
		if size += len(line) + 1; size > 2800 {
			break // the section's limit: the rest are counted below
		}
		lines = append(lines, line)
	}
	if more := n - len(lines); more > 0 {
		lines = append(lines, fmt.Sprintf("…and %d more", more))
	}
	blocks = append(blocks, slack.NewSectionBlock(Mrkdwn(Truncate(strings.Join(lines, "\n"), 2900)), nil, nil))
	if v.Reviewable {
		btn := slack.NewButtonBlockElement(ActionDigestReview, strings.ToLower(v.Org), Plain("Review…"))
		btn.Style = slack.StylePrimary
		blocks = append(blocks, slack.NewActionBlock("", btn),
			slack.NewContextBlock("", Mrkdwn("Review… approves or denies several requests at once. Requests a rule asks two approvers for, or would deny, are decided on their cards.")))
	}
	return blocks, fmt.Sprintf("%d pending token %s in %s", n, Plural(n, "request", "requests"), Escape(v.Org))
}
