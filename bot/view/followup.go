package view

import (
	"fmt"
	"strings"
	"time"

	"github.com/patbot/patbot/store"
)

// Reminder is the thread reply that recalls a waiting request: the nth of
// times, how long it has waited, and whom it asks (Slack user IDs, and
// user group IDs, which start with S).
func Reminder(n, times int, waited time.Duration, mention []string) string {
	var who []string
	for _, id := range mention {
		if strings.HasPrefix(id, "S") {
			who = append(who, "<!subteam^"+id+">")
		} else {
			who = append(who, "<@"+id+">")
		}
	}
	s := fmt.Sprintf(":bell: This request has waited %s for a decision (reminder %d of %d).", Waited(waited), n, times)
	if len(who) > 0 {
		s += " " + strings.Join(who, " ") + ", please approve or deny it."
	}
	return s
}

// Escalation heads the second card, in the escalation channel.
func Escalation(waited time.Duration, card store.Card) string {
	return fmt.Sprintf(":rotating_light: *Escalated:* this request has waited %s for a decision in <#%s>. Approve or deny it here or there.",
		Waited(waited), card.Channel)
}

// Waited says how long in words: "3 days", "5 hours", "20 minutes",
// "40 seconds".
func Waited(d time.Duration) string {
	if d < 2*time.Minute {
		n := int(d.Seconds())
		return fmt.Sprintf("%d %s", n, Plural(n, "second", "seconds"))
	}
	return amount(d)
}
