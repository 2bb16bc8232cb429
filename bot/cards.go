package bot

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/store"
)

// cardMetadataType tags patbot's cards with Slack message metadata naming
// the request, so a card can be found in a channel's history.
const cardMetadataType = "patbot_pat_request"

// cardMetadata tags a card of r, so that findCard can tell it.
func cardMetadata(r store.Request) slack.MsgOption {
	return slack.MsgOptionMetadata(slack.SlackMetadata{
		EventType:    cardMetadataType,
		EventPayload: map[string]any{"request": view.RequestKey(r.Org, r.ID)},
	})
}

// cardLocks serialise the updates of one request's card: each update renders
// the record as it is when the lock is held, so the last update shows the
// latest state whatever order concurrent paths finish in.
type cardLocks [64]sync.Mutex

func (l *cardLocks) lock(org string, id int64) func() {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", strings.ToLower(org), id)
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

func (b *Bot) cardView(r store.Request) view.CardView {
	login, choose := r.Org, false
	if o, ok := b.config().Org(r.Org); ok {
		login, choose = o.Login, o.Policy != nil && len(o.Policy.GrantForChoices) > 0
	}
	return view.CardView{Req: r, OrgLogin: login, WebURL: b.webURL, RequesterSlack: b.slackUserOf(r.Owner), Now: b.now(), ChooseGrantFor: choose}
}

func cardOptions(blocks []slack.Block, text string) []slack.MsgOption {
	return []slack.MsgOption{slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...)}
}

// postCard posts a request's card to its org's channel and records where it
// is. The intent is recorded first, so that a crash between posting and
// recording is visible.
func (b *Bot) postCard(ctx context.Context, org Org, id int64) error {
	unlock := b.cardLocks.lock(org.Login, id)
	defer unlock()
	var intentBefore time.Time
	r, err := b.store.UpdateRequest(org.Login, id, func(r *store.Request, _ bool) error {
		intentBefore = r.CardIntent
		r.CardIntent = b.now()
		return nil
	})
	if err != nil {
		return err
	}
	return b.postCardLocked(ctx, org, r, intentBefore)
}

// postCardRecorded posts a card whose intent the caller recorded in r's
// last write; intentBefore is the intent that write replaced, if any.
func (b *Bot) postCardRecorded(ctx context.Context, org Org, id int64, intentBefore time.Time) error {
	unlock := b.cardLocks.lock(org.Login, id)
	defer unlock()
	r, err := b.store.Request(org.Login, id)
	if err != nil {
		return err
	}
	return b.postCardLocked(ctx, org, r, intentBefore)
}

// postCardLocked posts r's card unless it exists. The card lock is held and
// the intent to post is recorded.
func (b *Bot) postCardLocked(ctx context.Context, org Org, r store.Request, intentBefore time.Time) error {
	id := r.ID
	if r.Card.TS != "" {
		return nil
	}
	if !intentBefore.IsZero() {
		// An earlier attempt may have posted the card and stopped (a crash,
		// a 5xx, a timeout) before recording it: find it before posting.
		ts, err := b.findCard(ctx, org.Channel, r, intentBefore)
		if err != nil {
			return fmt.Errorf("look for an earlier card: %w", err)
		}
		if ts != "" {
			b.log.Info("found the card an interrupted post left", LogOrg, r.Org, LogRequest, r.ID, "ts", ts)
			return b.recordCard(ctx, org, id, org.Channel, ts)
		}
	}
	blocks, text := view.Card(b.cardView(r))
	opts := append(cardOptions(blocks, text), cardMetadata(r))
	channel, ts, err := b.slack.PostMessageContext(ctx, org.Channel, opts...)
	if err != nil {
		return fmt.Errorf("post card to %s: %w", org.Channel, err)
	}
	b.somethingChanged()
	b.log.Info("card posted", LogOrg, r.Org, LogRequest, r.ID, "channel", channel, "ts", ts)
	return b.recordCard(ctx, org, id, channel, ts)
}

// recordCard stores where a request's card is, and brings it up to date if
// the request was decided or cancelled meanwhile. The card lock is held.
func (b *Bot) recordCard(ctx context.Context, org Org, id int64, channel, ts string) error {
	before, err := b.store.Request(org.Login, id)
	if err != nil {
		return err
	}
	// The reminders and the escalation are scheduled with the card.
	followUps := followUpTimers(org, before)
	r, _, err := b.store.UpdateRequestWithTimers(org.Login, id, followUps, func(r *store.Request, _ bool) error {
		r.Card = store.Card{Channel: channel, TS: ts}
		return nil
	})
	if err != nil {
		return err
	}
	if len(followUps) > 0 {
		b.timers.Wake()
	}
	if r.State != store.StatePending {
		return b.updateCardLocked(ctx, r)
	}
	return nil
}

// maxHistoryPages bounds the search for an earlier card: 10 pages of 200
// messages posted since the first attempt.
const maxHistoryPages = 10

// findCard looks in channel's history, since shortly before since, for a
// card patbot posted for r (its message metadata names the request).
func (b *Bot) findCard(ctx context.Context, channel string, r store.Request, since time.Time) (string, error) {
	params := &slack.GetConversationHistoryParameters{
		ChannelID: channel, Limit: 200, IncludeAllMetadata: true,
		Oldest: strconv.FormatInt(since.Add(-time.Minute).Unix(), 10),
	}
	for range maxHistoryPages {
		var resp *slack.GetConversationHistoryResponse
		err := retrySlack(ctx, func() (err error) {
			resp, err = b.slack.GetConversationHistoryContext(ctx, params)
			return err
		})
		if err != nil {
			return "", err
		}
		for _, m := range resp.Messages {
			if m.Metadata.EventType == cardMetadataType && m.Metadata.EventPayload["request"] == view.RequestKey(r.Org, r.ID) {
				return m.Timestamp, nil
			}
		}
		if !resp.HasMore || resp.ResponseMetaData.NextCursor == "" {
			return "", nil
		}
		params.Cursor = resp.ResponseMetaData.NextCursor
	}
	return "", nil
}

// refreshCard renders a request's card from its record and updates it in
// Slack. A request without a card has nothing to refresh, unless a post was
// begun: it may have reached Slack unrecorded (a lost answer, a crash), so
// the card is looked for and, if found, recorded and brought up to date.
func (b *Bot) refreshCard(ctx context.Context, org string, id int64) error {
	unlock := b.cardLocks.lock(org, id)
	defer unlock()
	r, err := b.store.Request(org, id)
	if err != nil {
		return err
	}
	if r.Card.TS == "" && !r.CardIntent.IsZero() {
		o, ok := b.config().Org(org)
		if !ok {
			return nil
		}
		ts, err := b.findCard(ctx, o.Channel, r, r.CardIntent)
		if err != nil || ts == "" {
			return err
		}
		b.log.Info("found the card an interrupted post left", LogOrg, r.Org, LogRequest, r.ID, "ts", ts)
		return b.recordCard(ctx, o, id, o.Channel, ts)
	}
	return b.updateCardLocked(ctx, r)
}

func (b *Bot) updateCardLocked(ctx context.Context, r store.Request) error {
	b.somethingChanged() // Home tabs show requests too
	if r.Card.TS == "" {
		return nil
	}
	blocks, text := view.Card(b.cardView(r))
	err := retrySlack(ctx, func() error {
		_, _, _, err := b.slack.UpdateMessageContext(ctx, r.Card.Channel, r.Card.TS, cardOptions(blocks, text)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("update card %s/%s: %w", r.Card.Channel, r.Card.TS, err)
	}
	if e := r.Escalation; e.TS != "" {
		// The escalated copy follows the card.
		blocks := append([]slack.Block{slack.NewSectionBlock(view.Mrkdwn(view.Escalation(b.now().Sub(waitingSince(r)), r.Card)), nil, nil)}, blocks...)
		err := retrySlack(ctx, func() error {
			_, _, _, err := b.slack.UpdateMessageContext(ctx, e.Channel, e.TS, cardOptions(blocks, text)...)
			return err
		})
		if err != nil {
			return fmt.Errorf("update the escalated card %s/%s: %w", e.Channel, e.TS, err)
		}
	}
	if r.CardOutdated {
		// Slack shows this version now; a newer one stays outdated.
		_, err = b.store.UpdateRequest(r.Org, r.ID, func(cur *store.Request, _ bool) error {
			if cur.Updated.Equal(r.Updated) {
				cur.CardOutdated = false
			}
			return nil
		})
	}
	return err
}

// tell sends a message only user sees, in channel.
func (b *Bot) tell(ctx context.Context, channel, user, text string) {
	if channel == "" || user == "" {
		return
	}
	_, err := b.slack.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false))
	if err != nil {
		b.log.Warn("cannot send an ephemeral message", "channel", channel, "slack_user", user, "err", err)
	}
}

// notifyRequester sends the requester a direct message about patbot's
// decision, when their Slack account is known.
func (b *Bot) notifyRequester(ctx context.Context, r store.Request) {
	user := b.slackUserOf(r.Owner)
	if user == "" || r.Decision == nil {
		return
	}
	card := b.cardView(r)
	verb := "approved"
	if r.State == store.StateDenied {
		verb = "denied"
	}
	text := fmt.Sprintf("Your fine-grained token request “%s” for *%s* was %s by %s.", view.Escape(view.TokenName(r)), view.Escape(card.OrgLogin), verb, view.Decider(r.Decision))
	if r.State == store.StateDenied && r.Decision.Reason != "" {
		text += "\n" + view.Quote(r.Decision.Reason)
	}
	if r.State == store.StateApproved && r.GrantEnds != nil {
		text += fmt.Sprintf("\nThe access lasts until %s: then patbot revokes it.", view.SlackDate(*r.GrantEnds))
	}
	text += fmt.Sprintf("\n<%s|Open in GitHub>", card.RequestURL())
	if err := b.dm(ctx, user, text); err != nil {
		b.log.Warn("cannot DM the requester", "slack_user", user, "err", err)
	}
}

// dm sends a Slack user a direct message.
func (b *Bot) dm(ctx context.Context, user, text string) error {
	var ch *slack.Channel
	err := retrySlack(ctx, func() (err error) {
		ch, _, _, err = b.slack.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
		return err
	})
	if err != nil {
		return fmt.Errorf("open a DM: %w", err)
	}
	_, _, err = b.slack.PostMessageContext(ctx, ch.ID, slack.MsgOptionText(text, false))
	return err
}
