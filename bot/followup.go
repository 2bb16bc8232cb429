package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/store"
)

// Kinds of the timers that keep a waiting request moving.
const (
	timerRemind   = "remind"
	timerEscalate = "escalate"
)

// followPayload names the request a follow-up timer is for; N is the
// reminder it sends (1 for the first).
type followPayload struct {
	Org string `json:"org"`
	ID  int64  `json:"id"`
	N   int    `json:"n,omitempty"`
}

// waitingSince is when a request began to wait: GitHub's time, or else
// patbot's first record of it.
func waitingSince(r store.Request) time.Time {
	switch {
	case !r.CreatedAt.IsZero():
		return r.CreatedAt
	case len(r.History) > 0:
		return r.History[0].At
	}
	return r.Updated
}

// followUpTimers are the timers a request's card sets when it is first
// recorded, in the same transaction: its first reminder, and its
// escalation.
func followUpTimers(org Org, r store.Request) []store.Timer {
	key := view.RequestKey(org.Login, r.ID)
	since := waitingSince(r)
	var timers []store.Timer
	if org.Remind != nil {
		p, _ := json.Marshal(followPayload{Org: org.Login, ID: r.ID, N: 1})
		timers = append(timers, store.Timer{Kind: timerRemind, Key: key, Due: since.Add(org.Remind.After), Payload: p})
	}
	if org.Escalate != nil {
		p, _ := json.Marshal(followPayload{Org: org.Login, ID: r.ID})
		timers = append(timers, store.Timer{Kind: timerEscalate, Key: key, Due: since.Add(org.Escalate.After), Payload: p})
	}
	return timers
}

// followUp reads what a follow-up timer names. It reports false when there
// is nothing to do: the request is decided, gone, or has no card.
func (b *Bot) followUp(t store.Timer) (followPayload, store.Request, Org, bool) {
	var p followPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		b.log.Error("follow-up timer with an unreadable payload; dropped", "timer", t.ID, "err", err)
		return p, store.Request{}, Org{}, false
	}
	r, err := b.store.Request(p.Org, p.ID)
	org, ok := b.config().Org(p.Org)
	return p, r, org, err == nil && ok && r.State == store.StatePending && r.Card.TS != ""
}

// remind is the remind timer's work: a thread reply on the card of a
// request still pending, mentioning who should decide, then the next
// reminder, Times in all. One due in quiet hours waits until they end.
// Posting and counting are separate steps: the count, written with the
// next timer, keeps a reminder from repeating after a restart.
func (b *Bot) remind(ctx context.Context, t store.Timer) error {
	p, r, org, active := b.followUp(t)
	if !active || org.Remind == nil || p.N < 1 {
		return nil
	}
	now := b.now()
	if org.Quiet != nil && org.Quiet.Contains(now, org.location()) {
		t.Due = org.Quiet.End(now, org.location())
		_, err := b.store.SetTimer(store.Timer{Kind: t.Kind, Key: t.Key, Due: t.Due, Payload: t.Payload})
		b.log.Info("reminder held until quiet hours end", LogOrg, org.Login, LogRequest, r.ID, "n", p.N, "until", t.Due)
		return err
	}
	rem := org.Remind
	if r.RemindersSent < p.N {
		text := view.Reminder(p.N, rem.Times, now.Sub(waitingSince(r)), rem.Mention)
		opts := []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionTS(r.Card.TS)}
		if rem.Broadcast {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
		err := retrySlack(ctx, func() error {
			_, _, err := b.slack.PostMessageContext(ctx, r.Card.Channel, opts...)
			return err
		})
		if err != nil {
			return fmt.Errorf("post reminder %d: %w", p.N, err)
		}
		b.metrics.followUps.WithLabelValues("reminder").Inc()
		b.log.Info("reminder posted", LogOrg, org.Login, LogRequest, r.ID, "n", p.N, "of", rem.Times)
	}
	var next []store.Timer
	if p.N < rem.Times {
		payload, _ := json.Marshal(followPayload{Org: p.Org, ID: p.ID, N: p.N + 1})
		next = append(next, store.Timer{Kind: timerRemind, Key: t.Key, Due: now.Add(rem.Every), Payload: payload})
	}
	_, _, err := b.store.UpdateRequestWithTimers(r.Org, r.ID, next, func(x *store.Request, _ bool) error {
		x.RemindersSent = max(x.RemindersSent, p.N)
		return nil
	})
	return err
}

// escalate is the escalate timer's work: a second card for a request still
// pending, in the escalation channel, once. It is posted like the first
// (its intent recorded, a lost post found again), kept up to date with
// it, and decides through the same path.
func (b *Bot) escalate(ctx context.Context, t store.Timer) error {
	_, r, org, active := b.followUp(t)
	if !active || org.Escalate == nil {
		return nil
	}
	channel := org.Escalate.Channel
	unlock := b.cardLocks.lock(org.Login, r.ID)
	defer unlock()
	var intentBefore time.Time
	r, err := b.store.UpdateRequest(org.Login, r.ID, func(x *store.Request, _ bool) error {
		if x.Escalation.TS != "" {
			return errTaken
		}
		intentBefore, x.EscalationIntent = x.EscalationIntent, b.now()
		return nil
	})
	if errors.Is(err, errTaken) {
		return nil // posted already
	}
	if err != nil {
		return err
	}
	ts := ""
	if !intentBefore.IsZero() {
		if ts, err = b.findCard(ctx, channel, r, intentBefore); err != nil {
			return fmt.Errorf("look for an earlier escalation: %w", err)
		}
	}
	if ts == "" {
		blocks, text := view.Card(b.cardView(r))
		blocks = append([]slack.Block{slack.NewSectionBlock(view.Mrkdwn(view.Escalation(b.now().Sub(waitingSince(r)), r.Card)), nil, nil)}, blocks...)
		text = "Escalated: " + text
		opts := append(cardOptions(blocks, text), cardMetadata(r))
		if _, ts, err = b.slack.PostMessageContext(ctx, channel, opts...); err != nil {
			return fmt.Errorf("post the escalation to %s: %w", channel, err)
		}
		b.metrics.followUps.WithLabelValues("escalation").Inc()
		b.log.Info("request escalated", LogOrg, org.Login, LogRequest, r.ID, "channel", channel, "ts", ts)
	}
	_, err = b.store.UpdateRequest(org.Login, r.ID, func(x *store.Request, _ bool) error {
		x.Escalation = store.Card{Channel: channel, TS: ts}
		return nil
	})
	return err
}
