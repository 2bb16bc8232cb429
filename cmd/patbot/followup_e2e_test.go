package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
)

// Reminders through the real binary, a second apart, three in all, with
// patbot SIGKILLed after the first: each is posted once, in the card's
// thread, and none after the third.
func TestE2ERemindersSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const org, channel, id = "acme", "C0000000001", int64(7001)
	gh, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	gh.AddOrg(org, 1)
	gh.AddRequest(org, github.PendingRequest{ID: id, Owner: github.User{Login: fmt.Sprint("dev", id), ID: id}, RepositorySelection: "all"})
	sl := slacktest.New(testBotToken)
	t.Cleanup(sl.Close)
	env := fakeEnv(t, `
orgs:
  acme:
    channel: C0000000001
    remind: {after: 1s, every: 1s, times: 3, mention: [S0APPROVERS]}
users: {U0ALICE: alice}
`, gh, sl)
	env["PATBOT_ADDR"] = freeAddr(t)
	env["PATBOT_RECONCILE_INTERVAL"] = "0"
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
