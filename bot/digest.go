package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/calendar"
	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/store"
)

// timerDigest is the kind of an org's daily digest timer (key: the org).
const timerDigest = "digest"

// scheduleDigests gives each org with a digest its timer, unless it has
// one: a restart keeps the schedule.
func (b *Bot) scheduleDigests() {
	for _, org := range b.config().sorted("") {
		if org.DigestAt == nil {
			continue
		}
		if _, err := b.store.Timer(timerDigest, strings.ToLower(org.Login)); errors.Is(err, store.ErrNotFound) {
			b.timers.Set(store.Timer{Kind: timerDigest, Key: strings.ToLower(org.Login), Due: calendar.NextAt(b.now(), *org.DigestAt, org.location())})
		}
	}
}

// digestTimer is the digest timer's work: the digest in the org's channel,
// and the next one, at the same local time tomorrow.
func (b *Bot) digestTimer(ctx context.Context, t store.Timer) error {
	org, ok := b.config().Org(t.Key)
	if !ok || org.DigestAt == nil {
		return nil
	}
	reqs, err := b.pendingOldestFirst(org)
	if err != nil {
		return err
	}
	if len(reqs) > 0 { // a quiet day needs no message
		blocks, text, err := b.digest(org, "")
		if err != nil {
			return err
		}
		if _, _, err := b.slack.PostMessageContext(ctx, org.Channel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)); err != nil {
			return fmt.Errorf("post the digest: %w", err)
		}
		b.metrics.followUps.WithLabelValues("digest").Inc()
	}
	b.log.Info("digest done", LogOrg, org.Login, "pending", len(reqs))
	_, err = b.store.SetTimer(store.Timer{Kind: timerDigest, Key: t.Key, Due: calendar.NextAt(b.now(), *org.DigestAt, org.location())})
	return err
}

// pendingOldestFirst are an org's requests awaiting a decision.
func (b *Bot) pendingOldestFirst(org Org) ([]store.Request, error) {
	reqs, err := b.store.Requests(org.Login, store.StatePending)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(reqs, func(a, b store.Request) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return reqs, nil
}

// digest renders an org's digest; teamDomain, when known, makes card links
// permalinks.
func (b *Bot) digest(org Org, teamDomain string) ([]slack.Block, string, error) {
	reqs, err := b.pendingOldestFirst(org)
	if err != nil {
		return nil, "", err
	}
	v := view.DigestView{Org: org.Login, Now: b.now()}
	for _, r := range reqs {
		v.Entries = append(v.Entries, view.DigestEntry{Req: r, Link: cardLink(r.Card, teamDomain)})
		v.Reviewable = v.Reviewable || bulkEligible(r)
	}
	blocks, text := view.Digest(v)
	return blocks, text, nil
}

// bulkEligible reports whether a request may be decided with others: not
// one a rule asks two approvers for, or would deny.
func bulkEligible(r store.Request) bool {
	p := r.Policy
	return r.State == store.StatePending && (p == nil || p.Mode != policy.ModeEnforce || p.Action != policy.ActionDeny && approvalsNeeded(r) < 2)
}

// digestMessage is /pat digest's answer: the digest of each org (or the
// one named), for anyone who asks.
func (b *Bot) digestMessage(viewer, only, teamDomain string) *slack.WebhookMessage {
	var blocks []slack.Block
	var texts []string
	for _, org := range b.config().sorted(only) {
		bl, text, err := b.digest(org, teamDomain)
		if err != nil {
			b.log.Warn("cannot make a digest", LogOrg, org.Login, "err", err)
			continue
		}
		blocks, texts = append(blocks, bl...), append(texts, text)
	}
	if len(blocks) == 0 {
		return ephemeral("patbot could not read its records just now; try again in a moment.")
	}
	return &slack.WebhookMessage{Text: strings.Join(texts, "; "), Blocks: &slack.Blocks{BlockSet: blocks[:min(len(blocks), 50)]}}
}
