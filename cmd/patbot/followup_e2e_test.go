package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
)

// followUpRig is a fake GitHub with one pending request, a fake Slack, and
// patbot's environment for the binary with policy.
func followUpRig(t *testing.T, id int64, policy string) (*slacktest.Server, map[string]string) {
	t.Helper()
	gh, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	gh.AddOrg("acme", 1)
	gh.AddRequest("acme", github.PendingRequest{ID: id, Owner: github.User{Login: fmt.Sprint("dev", id), ID: id}, RepositorySelection: "all"})
	sl := slacktest.New(testBotToken)
	t.Cleanup(sl.Close)
	env := fakeEnv(t, policy, gh, sl)
	env["PATBOT_ADDR"] = freeAddr(t)
	env["PATBOT_RECONCILE_INTERVAL"] = "0"
	return sl, env
}

// Reminders through the real binary, a second apart, three in all, with
// patbot SIGKILLed after the first: each is posted once, in the card's
// thread, and none after the third.
func TestE2ERemindersSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const org, channel, id = "acme", "C0000000001", int64(7001)
	sl, env := followUpRig(t, id, `
orgs:
  acme:
    channel: C0000000001
    remind: {after: 1s, every: 1s, times: 3, mention: [S0APPROVERS]}
users: {U0ALICE: alice}
`)
	p := startProcess(t, env)
	if code := send(p.base, "d1", webhookPayload(org, id, "created", "")); code != 202 {
		t.Fatalf("webhook: %d", code)
	}
	waitFor(t, "the card", func() bool { return len(sl.Messages(channel)) == 1 })
	card := sl.Messages(channel)[0]
	waitFor(t, "the first reminder", func() bool { return len(sl.Replies(channel, card.TS)) >= 1 })
	p.kill()
	p = startProcess(t, env)
	waitFor(t, "three reminders", func() bool { return len(sl.Replies(channel, card.TS)) >= 3 })
	p.stop(t)

	db, err := openStore(context.Background(), env["PATBOT_DB"], false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Timer("remind", fmt.Sprintf("%s/%d", org, id)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a reminder is still scheduled: %v", err)
	}
	if r, _ := db.Request(org, id); r.RemindersSent != 3 {
		t.Errorf("reminders counted: %d", r.RemindersSent)
	}
	replies := sl.Replies(channel, card.TS)
	if len(replies) != 3 {
		t.Fatalf("%d reminders, want 3", len(replies))
	}
	for i, m := range replies {
		mustContain(t, "reminder", m.Text, fmt.Sprintf("reminder %d of 3", i+1), "<!subteam^S0APPROVERS>")
	}
	if n := len(sl.Messages(channel)); n != 1 {
		t.Errorf("%d messages in the channel: reminders are thread replies", n)
	}
}

// Quiet hours and escalation through the real binary: a reminder due in
// quiet hours is held until they end (its timer moved, nothing posted),
// and the escalation card is posted once, across a restart.
func TestE2EQuietHoursAndEscalation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const org, channel, escalation, id = "acme", "C0000000001", "C0SECURITY1", int64(7002)
	// Quiet from a minute ago for three hours, in UTC.
	now := time.Now().UTC()
	from, to := now.Add(-time.Minute).Format("15:04"), now.Add(3*time.Hour).Format("15:04")
	sl, env := followUpRig(t, id, fmt.Sprintf(`
orgs:
  acme:
    channel: C0000000001
    quiet_hours: {from: "%s", to: "%s"}
    remind: {after: 1s, times: 1}
    escalate: {after: 1s, channel: C0SECURITY1}
`, from, to))
	p := startProcess(t, env)
	if code := send(p.base, "d1", webhookPayload(org, id, "created", "")); code != 202 {
		t.Fatalf("webhook: %d", code)
	}
	waitFor(t, "the escalation card", func() bool { return len(sl.Messages(escalation)) == 1 })
	waitFor(t, "the reminder held", func() bool { return strings.Contains(p.logs.String(), "reminder held until quiet hours end") })
	p.stop(t)
	p = startProcess(t, env) // a restart posts no second escalation
	card := sl.Messages(channel)[0]
	p.stop(t)

	db, err := openStore(context.Background(), env["PATBOT_DB"], false)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	timer, err := db.Timer("remind", fmt.Sprintf("%s/%d", org, id))
	end := now.Add(3 * time.Hour).Truncate(time.Minute)
	if err != nil || !timer.Due.Equal(end) {
		t.Errorf("the reminder is due %v (%v), want the end of quiet hours, %v", timer.Due, err, end)
	}
	if n := len(sl.Replies(channel, card.TS)); n != 0 {
		t.Errorf("%d reminders posted in quiet hours", n)
	}
	if n := len(sl.Messages(escalation)); n != 1 {
		t.Errorf("%d escalation cards", n)
	}
	if r, _ := db.Request(org, id); r.Escalation.TS == "" || r.Escalation.Channel != escalation {
		t.Errorf("escalation not recorded: %+v", r.Escalation)
	}
}
