package bot_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/calendar"
	"github.com/patbot/patbot/bot/slacktest"
)

const escalationChannel = "C0SECURITY1"

// followUpHarness runs patbot with reminders and escalation for the
// fixture's org, whose request it delivers; its clock starts on a Monday,
// 09:00 UTC.
func followUpHarness(t *testing.T, tune func(o *bot.Org)) (*harness, slacktest.Message) {
	h := newHarness(t, "", func(d *bot.Deps) {
		withApprovers(d)
		org := d.Config.Orgs["github-ssh-authority"]
		tune(&org)
		d.Config.Orgs = map[string]bot.Org{"github-ssh-authority": org}
	})
	h.start()
	return h, h.posted()
}

func (h *harness) replies(card slacktest.Message) []slacktest.Message {
	return h.slack.Replies(card.Channel, card.TS)
}

// A reminder due in quiet hours waits until they end, and counts once.
func TestReminderWaitsForQuietHours(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	h, card := followUpHarness(t, func(o *bot.Org) {
		o.Location = berlin
		o.Quiet = &calendar.Quiet{From: 20 * 60, To: 8 * 60}
		// The fixture's request is from 2024: its first reminder is due
		// at once, and the clock (09:00 UTC, 11:00 in Berlin) is not quiet.
		o.Remind = &bot.Remind{After: time.Hour, Every: 10 * time.Hour, Times: 2, Mention: []string{"S0APPROVERS", "U0ALICE"}, Broadcast: true}
	})
	h.eventually("first reminder", func() bool { return len(h.replies(card)) == 1 })
	first := h.replies(card)[0].Text
	if !strings.Contains(first, "reminder 1 of 2") || !strings.Contains(first, "<!subteam^S0APPROVERS> <@U0ALICE>") {
		t.Errorf("reminder = %q", first)
	}
	if !h.replies(card)[0].Broadcast || len(h.slack.Messages(cardChannel)) != 2 {
		t.Error("broadcast: the reply is not shown in the channel too")
	}
	// The second is due at 19:00 UTC, 21:00 in Berlin: quiet until 08:00
	// there, 06:00 UTC the next day.
	h.clock.Advance(10*time.Hour + time.Minute)
	h.eventually("held for quiet hours", func() bool {
		timer, err := h.db.Timer("remind", "github-ssh-authority/415440")
		return err == nil && timer.Due.Equal(time.Date(2026, 6, 2, 6, 0, 0, 0, time.UTC))
	})
	if n := len(h.replies(card)); n != 1 {
		t.Fatalf("%d replies in quiet hours", n)
	}
	h.clock.Advance(11 * time.Hour)
	h.eventually("second reminder after quiet hours", func() bool { return len(h.replies(card)) == 2 })
	h.eventually("no more reminders scheduled", func() bool {
		_, err := h.db.Timer("remind", "github-ssh-authority/415440")
		return err != nil
	})
	if r, _ := h.db.Request("github-ssh-authority", 415440); r.RemindersSent != 2 {
		t.Errorf("reminders counted: %d", r.RemindersSent)
	}
	if n := len(h.replies(card)); n != 2 {
		t.Errorf("%d replies, want 2", n)
	}
}

// Escalation posts a second card once, which decides like the first and
// follows it.
func TestEscalationPostsOnceAndFollowsTheCard(t *testing.T) {
	h, card := followUpHarness(t, func(o *bot.Org) {
		o.Escalate = &bot.Escalate{After: 48 * time.Hour, Channel: escalationChannel}
	})
	h.eventually("escalated", func() bool { return len(h.slack.Messages(escalationChannel)) == 1 })
	esc := h.slack.Messages(escalationChannel)[0]
	if !strings.Contains(esc.BlockText(), "Escalated:") || !strings.Contains(string(esc.Blocks), `"pat_approve"`) {
		t.Fatalf("escalation card:\n%s", esc.BlockText())
	}
	h.clock.Advance(72 * time.Hour)
	// Approved from the escalation channel.
	form := slacktest.BlockActionPayload("U0ALICE", escalationChannel, esc.TS, bot.ActionApprove, "github-ssh-authority/415440")
	rec := httptest.NewRecorder()
	h.bot.InteractionsHandler().ServeHTTP(rec, slacktest.SignedRequest(signingSecret, "/slack/interactions", h.clock.Now(), form))
	if rec.Code != 200 {
		t.Fatalf("click: %d", rec.Code)
	}
	h.eventually("both cards approved", func() bool {
		return strings.Contains(h.cardText(), "*Approved* by <@U0ALICE>") &&
			strings.Contains(h.slack.Messages(escalationChannel)[0].BlockText(), "*Approved* by <@U0ALICE>")
	})
	if n := len(h.slack.Messages(escalationChannel)); n != 1 {
		t.Errorf("%d escalation cards", n)
	}
	if n := h.reviews(); n != 1 {
		t.Errorf("%d reviews", n)
	}
	_ = card
}

// The digest comes daily at the org's local time, when anything waits.
func TestDigestAtLocalTime(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := calendar.TimeOfDay(12 * 60) // 12:00 in Berlin, 10:00 UTC in June
	h, _ := followUpHarness(t, func(o *bot.Org) { o.Location, o.DigestAt = berlin, &at })
	digests := func() int {
		n := 0
		for _, m := range h.slack.Messages(cardChannel) {
			if strings.Contains(m.Text, "pending token request") {
				n++
			}
		}
		return n
	}
	timer, err := h.db.Timer("digest", "github-ssh-authority")
	if err != nil || !timer.Due.Equal(time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("digest timer = %+v, %v", timer.Due, err)
	}
	if digests() != 0 {
		t.Fatal("a digest before its time")
	}
	h.eventually("the digest at noon", func() bool {
		h.clock.Advance(5 * time.Minute)
		return digests() == 1
	})
	h.eventually("tomorrow's scheduled", func() bool {
		timer, err := h.db.Timer("digest", "github-ssh-authority")
		return err == nil && timer.Due.Equal(time.Date(2026, 6, 2, 10, 0, 0, 0, time.UTC))
	})
}
