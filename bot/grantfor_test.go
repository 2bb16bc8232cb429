package bot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	rules "github.com/patbot/patbot/bot/policy"
)

// A time-bound approval on patbot's clock: the requester hears a day
// before the end, and at the end patbot revokes the grant.
func TestTimeBoundGrantRemindsThenEnds(t *testing.T) {
	day := 24 * time.Hour
	h := newHarness(t, "", func(d *bot.Deps) {
		withApprovers(d)
		org := d.Config.Orgs["github-ssh-authority"]
		org.Policy = &rules.Policy{Mode: rules.ModeEnforce, Rules: []rules.Rule{{Name: "three days", Action: rules.ActionApprove, GrantFor: 3 * day}}}
		d.Config.Orgs = map[string]bot.Org{"github-ssh-authority": org}
	})
	h.start()
	h.posted()
	h.eventually("approved by the rule", func() bool { return strings.Contains(h.cardText(), "Approved* automatically by rule *three days*") })
	if !strings.Contains(h.cardText(), "Access granted until") || len(h.gh.Grants("github-ssh-authority")) != 1 {
		t.Fatalf("card:\n%s", h.cardText())
	}
	dms := func() string {
		var all []string
		for _, m := range h.slack.Messages("D0HAL") {
			all = append(all, m.Text)
		}
		return strings.Join(all, "\n")
	}
	h.eventually("requester told at approval", func() bool { return strings.Contains(dms(), "The access lasts until") })
	h.clock.Advance(2*day - time.Hour)
	// Not due yet: the reminder is still in the store, whenever the
	// runner looks.
	if _, err := h.db.Timer("grant_reminder", "github-ssh-authority/415440"); err != nil {
		t.Fatalf("reminder timer before it is due: %v", err)
	}
	h.eventually("reminded a day before", func() bool {
		h.clock.Advance(10 * time.Minute)
		return strings.Contains(dms(), "ends <!date")
	})
	if len(h.gh.Grants("github-ssh-authority")) != 1 {
		t.Fatal("revoked at the reminder")
	}
	h.eventually("grant revoked at the end", func() bool {
		h.clock.Advance(time.Hour)
		return len(h.gh.Grants("github-ssh-authority")) == 0
	})
	h.eventually("card and requester told", func() bool {
		return strings.Contains(h.cardText(), "Access ended") && strings.Contains(dms(), "ended: it was approved for 3d")
	})
	h.eventually("no timers left", func() bool { return !h.timersLeft() })
}
