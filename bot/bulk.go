package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// Decisions made together, from the digest: the dialog, the claims, one
// bulk review per 100 requests, and the confirmations GitHub's
// asynchronous answer needs.

// timerBulkConfirm is the kind of the timer that confirms a bulk review
// from GitHub's pending list, 5 s, 30 s and 2 min after it was sent.
const timerBulkConfirm = "bulk_confirm"

var bulkConfirmAfter = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute}

// bulkMetadata travels with the dialog.
type bulkMetadata struct {
	Org     string  `json:"org"`
	Picked  []int64 `json:"picked,omitempty"` // ticked on the pages not shown
	Channel string  `json:"channel"`
}

// bulkConfirmPayload names the claims a bulk review made.
type bulkConfirmPayload struct {
	Org     string    `json:"org"`
	IDs     []int64   `json:"ids"`
	At      time.Time `json:"at"` // the claims' time
	Attempt int       `json:"attempt"`
	Channel string    `json:"channel"`
}

// bulkCandidates are the requests of org an approver may decide together:
// pending, eligible, and not their own.
func (b *Bot) bulkCandidates(org Org, login string) ([]store.Request, error) {
	reqs, err := b.pendingOldestFirst(org)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(reqs, func(r store.Request) bool { return !bulkEligible(r) || strings.EqualFold(r.Owner, login) }), nil
}

// openBulkModal opens the dialog at once (the trigger lasts 3 seconds).
func (b *Bot) openBulkModal(ctx context.Context, ic slack.InteractionCallback, orgName string) error {
	org, ok := b.config().Org(orgName)
	me, known := b.whoIs(ic.User.ID)
	channel := cmp.Or(ic.Container.ChannelID, ic.Channel.ID)
	if !ok || !known {
		return b.submit(func(ctx context.Context) { b.tell(ctx, channel, ic.User.ID, b.notLinked(ic.User.ID)) })
	}
	reqs, err := b.bulkCandidates(org, me.login)
	if err != nil {
		return err
	}
	meta, _ := json.Marshal(bulkMetadata{Org: org.Login, Channel: channel})
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), viewsOpenTimeout)
	defer cancel()
	if _, err := b.slack.OpenViewContext(octx, ic.TriggerID, view.BulkModal(org.Login, reqs, 0, nil, false, b.now(), string(meta))); err != nil {
		b.log.Warn("cannot open the bulk dialog", LogOrg, org.Login, "err", err)
	}
	return nil
}

// bulkState reads the dialog: what is ticked (on the page shown, as Slack
// sends it, and on the others, as metadata carries it), select all, the
// decision and the reason.
func bulkState(v slack.View, meta bulkMetadata) (picked map[int64]bool, all bool, decision, reason string) {
	picked = map[int64]bool{}
	for _, id := range meta.Picked {
		picked[id] = true
	}
	if v.State == nil {
		return picked, false, "", ""
	}
	for block, actions := range v.State.Values {
		if !strings.HasPrefix(block, view.BulkPickBlock) {
			continue
		}
		for _, o := range actions[view.BulkPickInput].SelectedOptions {
			if id, err := strconv.ParseInt(o.Value, 10, 64); err == nil {
				picked[id] = true
			}
		}
	}
	all = len(v.State.Values[view.BulkAllBlock][view.BulkAllInput].SelectedOptions) > 0
	decision = v.State.Values[view.BulkDecisionBlock][view.BulkDecisionInput].SelectedOption.Value
	reason = v.State.Values[view.BulkReasonBlock][view.BulkReasonInput].Value
	return picked, all, decision, reason
}

// bulkPage turns the dialog's page, keeping what was ticked. Metadata
// carries the ticks of the pages not shown, so that a tick removed on the
// page shown is removed.
func (b *Bot) bulkPage(ctx context.Context, ic slack.InteractionCallback, a *slack.BlockAction) error {
	var meta bulkMetadata
	if json.Unmarshal([]byte(ic.View.PrivateMetadata), &meta) != nil {
		return nil
	}
	org, ok := b.config().Org(meta.Org)
	me, known := b.whoIs(ic.User.ID)
	if !ok || !known {
		return nil
	}
	reqs, err := b.bulkCandidates(org, me.login)
	if err != nil {
		return err
	}
	picked, all, _, _ := bulkState(ic.View, meta)
	page, _ := strconv.Atoi(a.Value)
	page, _, onPage := view.Paged(reqs, page, view.BulkPerPage)
	notShown := maps.Clone(picked)
	for _, r := range onPage {
		delete(notShown, r.ID)
	}
	meta.Picked = slices.Sorted(maps.Keys(notShown))
	raw, _ := json.Marshal(meta)
	modal := view.BulkModal(org.Login, reqs, page, picked, all, b.now(), string(raw))
	return b.submit(func(ctx context.Context) {
		if _, err := b.slack.UpdateViewContext(ctx, modal, "", ic.View.Hash, ic.View.ID); err != nil {
			b.log.Info("cannot turn the bulk dialog's page", "err", err)
		}
	})
}

// handleBulkSubmission checks the dialog and decides in the background.
func (b *Bot) handleBulkSubmission(ic slack.InteractionCallback) (any, error) {
	var meta bulkMetadata
	if err := json.Unmarshal([]byte(ic.View.PrivateMetadata), &meta); err != nil || meta.Org == "" {
		b.log.Warn("bulk dialog without its metadata")
		return nil, nil
	}
	picked, all, decision, reason := bulkState(ic.View, meta)
	problems := map[string]string{}
	if len(picked) == 0 && !all {
		problems[view.BulkAllBlock] = "Tick at least one request, or all of them."
	}
	if decision != github.ActionApprove && decision != github.ActionDeny {
		problems[view.BulkDecisionBlock] = "Approve or deny?"
	}
	if len(problems) > 0 {
		return slack.NewErrorsViewSubmissionResponse(problems), nil
	}
	ids := slices.Collect(maps.Keys(picked))
	user := ic.User.ID
	return nil, b.submit(func(ctx context.Context) { b.bulkDecide(ctx, user, meta, ids, all, decision, reason) })
}

// bulkDecide decides the requests picked (or all that qualify) for an
// approver: authorized without the cache, each claimed first so that no
// one else decides it (those decided meanwhile are reported, not
// decided), then sent to GitHub 100 at a time, as the App or as the
// approver; a refused bulk call (422) falls back to single reviews.
func (b *Bot) bulkDecide(ctx context.Context, slackUser string, meta bulkMetadata, ids []int64, all bool, action, reason string) {
	org, ok := b.config().Org(meta.Org)
	if !ok {
		return
	}
	log := b.log.With(LogOrg, org.Login, LogAction, action, "slack_user", slackUser)
	candidates, err := b.bulkCandidates(org, "")
	if err != nil {
		b.tell(ctx, meta.Channel, slackUser, "patbot could not read its records. Nothing was decided; try again.")
		return
	}
	if all {
		ids = ids[:0]
		for _, r := range candidates {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		b.tell(ctx, meta.Channel, slackUser, "No request to decide. Nothing was changed.")
		return
	}
	who, refused := b.checkBulkApprover(ctx, org, slackUser, action)
	if refused.text != "" {
		b.refuse(ctx, meta.Channel, slackUser, refused)
		return
	}
	if org.asApprover() && !b.approverToken(ctx, log, &who, decisionRequest{org: org.Login, action: action, slackUser: slackUser, channel: meta.Channel}) {
		return
	}
	as := store.AsApp
	if who.cred != nil {
		as = store.AsApprover
	}
	at := b.now()
	var claimed []int64
	var elsewhere, skipped []string
	for _, id := range ids {
		var current store.Request
		claim := &store.Decision{Action: action, Actor: who.login, ActorID: who.githubID, As: as, SlackUser: slackUser, Reason: reason, At: at,
			Source: store.SourceSlack, Authority: who.why}
		_, _, err := b.store.UpdateRequestWithTimers(org.Login, id, nil, func(r *store.Request, exists bool) error {
			current = *r
			switch {
			case !exists || r.State != store.StatePending:
				return errTaken
			case !bulkEligible(*r) || strings.EqualFold(r.Owner, who.login):
				return errCounted
			}
			c := *claim
			if action == github.ActionApprove {
				c.GrantFor = b.grantFor(org, *r, nil)
			}
			r.Decision, r.LastAttempt, r.Unconfirmed = &c, &c, true
			r.Failure = "GitHub carries out decisions made together in a moment"
			r.SetState(store.StateDeciding, at, store.SourceSlack, who.login, action+" (with others)")
			return nil
		})
		switch {
		case err == nil:
			claimed = append(claimed, id)
		case errors.Is(err, errTaken):
			elsewhere = append(elsewhere, fmt.Sprintf("%d (%s)", id, strings.TrimSuffix(b.alreadyText(current), ".")))
		default:
			skipped = append(skipped, strconv.FormatInt(id, 10))
		}
	}
	if len(claimed) == 0 {
		b.tell(ctx, meta.Channel, slackUser, "None of those requests could be decided: "+strings.Join(append(elsewhere, skipped...), "; ")+". Nothing was sent to GitHub.")
		return
	}
	payload, _ := json.Marshal(bulkConfirmPayload{Org: org.Login, IDs: claimed, At: at, Attempt: 1, Channel: meta.Channel})
	key := fmt.Sprintf("%s/%d", strings.ToLower(org.Login), at.UnixNano())
	if _, err := b.timers.Set(store.Timer{Kind: timerBulkConfirm, Key: key, Due: at.Add(bulkConfirmAfter[0]), Payload: payload}); err != nil {
		log.Error("cannot schedule the bulk review's confirmation; reconciliation settles the claims", "err", err)
	}
	for _, id := range claimed {
		b.showCard(ctx, log, org.Login, id)
	}
	calls := 0
	for chunk := range slices.Chunk(claimed, 100) {
		calls++
		err := b.gh.ReviewRequests(ctx, org.Login, chunk, github.Review{Action: action, Reason: reason}, who.as())
		switch status := github.StatusCode(err); {
		case err == nil || outcomeUnknown(err):
			// Confirmed from the pending list by the timer.
		case status == 422:
			log.Warn("bulk review refused; deciding one at a time", "requests", len(chunk), "err", err)
			for _, id := range chunk {
				d := decisionRequest{org: strings.ToLower(org.Login), id: id, action: action, reason: reason, slackUser: slackUser, channel: meta.Channel}
				r, rerr := b.store.Request(org.Login, id)
				if rerr != nil || r.Decision == nil {
					continue
				}
				err := b.review(ctx, &who, d)
				b.settle(ctx, log, who, d, r.Decision, err)
			}
		default:
			for _, id := range chunk {
				r, rerr := b.store.Request(org.Login, id)
				if rerr == nil && r.Decision != nil {
					b.fail(ctx, log, who, decisionRequest{org: strings.ToLower(org.Login), id: id, action: action, slackUser: slackUser}, r.Decision, b.describeReviewError(who, err))
				}
			}
		}
	}
	b.metrics.followUps.WithLabelValues("bulk_review").Inc()
	log.Info("bulk review sent", "requests", len(claimed), "calls", calls, "decided_elsewhere", len(elsewhere))
	text := fmt.Sprintf("Sent %d %s to GitHub in %d %s; patbot confirms each from GitHub in a moment, and the cards follow.",
		len(claimed), view.Plural(len(claimed), view.DecisionNoun(action), view.DecisionNoun(action)+"s"), calls, view.Plural(calls, "call", "calls"))
	if len(elsewhere) > 0 {
		text += " Decided meanwhile, so left alone: " + strings.Join(elsewhere, "; ") + "."
	}
	b.tell(ctx, meta.Channel, slackUser, text)
}

// checkBulkApprover checks who decides requests together, as
// checkApprover does for one (each request's own conditions are checked
// at its claim). GitHub is asked without the cache; refusals are audited.
func (b *Bot) checkBulkApprover(ctx context.Context, org Org, slackUser, action string) (approver, refusal) {
	who, ok := b.whoIs(slackUser)
	refuse := func(detail, text string, signIn bool) (approver, refusal) {
		b.audit(store.AuditEvent{Kind: "refused", Org: org.Login, Action: action, Actor: who.login, ActorID: who.githubID, SlackUser: slackUser,
			Source: store.SourceSlack, Detail: detail + " (decisions made together)"})
		b.metrics.refusals.WithLabelValues(detail).Inc()
		return approver{}, refusal{text: text, signIn: signIn && b.identity != nil}
	}
	if !ok || !who.acceptedBy(org) || org.asApprover() && !who.linked {
		return refuse("not linked", b.notLinked(slackUser)+" Nothing was changed.", true)
	}
	v, err := b.authz.verify(ctx, org, who.login)
	switch {
	case err != nil:
		return refuse("authorization check failed", fmt.Sprintf("patbot could not check your permission with GitHub (%s). Nothing was changed.", describeGitHubError(err)), false)
	case !v.allowed:
		return refuse("not authorized", fmt.Sprintf("Only owners of %s%s may decide token requests, and GitHub says %s. Nothing was changed.",
			view.Escape(org.Login), teamsClause(org), view.Escape(v.why)), false)
	case org.asApprover() && !v.owner:
		return refuse("not an owner", fmt.Sprintf("In %s patbot sends decisions to GitHub as the approver, and GitHub lets only organization owners decide; you are %s. Nothing was changed.",
			view.Escape(org.Login), view.Escape(v.why)), false)
	}
	return approver{org: org, login: who.login, githubID: who.githubID, why: v.why}, refusal{}
}

// bulkConfirm is the bulk_confirm timer's work: the requests GitHub no
// longer lists as pending were decided (the approver is credited); the
// rest wait for the next look, and after the last one get their buttons
// back.
func (b *Bot) bulkConfirm(ctx context.Context, t store.Timer) error {
	var p bulkConfirmPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		b.log.Error("bulk confirmation with an unreadable payload; dropped", "timer", t.ID, "err", err)
		return nil
	}
	org, ok := b.config().Org(p.Org)
	if !ok {
		return nil
	}
	items, err := b.gh.ListRequests(ctx, org.Login, github.RequestFilter{})
	if err != nil {
		return fmt.Errorf("list pending requests: %w", err)
	}
	pending := map[int64]bool{}
	for _, it := range items {
		pending[it.ID] = true
	}
	log := b.log.With(LogOrg, org.Login)
	var waiting []int64
	confirmed := 0
	for _, id := range p.IDs {
		r, err := b.store.Request(org.Login, id)
		if err != nil || r.State != store.StateDeciding || r.Decision == nil || !r.Decision.At.Equal(p.At) {
			continue // settled otherwise (a webhook, a fallback)
		}
		claim := r.Decision
		who := approver{org: org, login: claim.Actor, githubID: claim.ActorID, why: claim.Authority}
		d := decisionRequest{org: strings.ToLower(org.Login), id: id, action: claim.Action, reason: claim.Reason, slackUser: claim.SlackUser, channel: p.Channel}
		switch {
		case !pending[id]:
			b.confirm(ctx, log.With(LogRequest, id), org.Login, d, claim, "GitHub carried out the decisions made together")
			confirmed++
		case p.Attempt >= len(bulkConfirmAfter):
			b.fail(ctx, log.With(LogRequest, id), who, d, claim, fmt.Sprintf("GitHub still listed it as pending %s after the decisions made together", bulkConfirmAfter[len(bulkConfirmAfter)-1]))
		default:
			waiting = append(waiting, id)
		}
	}
	log.Info("bulk review confirmed", "confirmed", confirmed, "waiting", len(waiting), "attempt", p.Attempt)
	if len(waiting) == 0 {
		return nil
	}
	p.IDs, p.Attempt = waiting, p.Attempt+1
	payload, _ := json.Marshal(p)
	_, err = b.store.SetTimer(store.Timer{Kind: t.Kind, Key: t.Key, Due: p.At.Add(bulkConfirmAfter[p.Attempt-1]), Payload: payload})
	return err
}
