package bot

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// Outcomes of a webhook delivery, as counted and recorded.
const (
	outcomeQueued        = "queued"
	outcomeDuplicate     = "duplicate"
	outcomeIgnored       = "ignored"
	outcomeUnknownOrg    = "ignored: org not configured"
	outcomeBadSignature  = "bad_signature"
	outcomeMalformed     = "malformed"
	outcomeTooLarge      = "too_large"
	outcomeQueueFull     = "queue_full"
	outcomeStoreError    = "store_error"
	outcomePing          = "ping"
	labelOtherEventOrAct = "other"
)

var knownActions = []string{github.ActionCreated, github.ActionApproved, github.ActionDenied, github.ActionCancelled}

// WebhookHandler receives GitHub's webhooks. Before it answers 2xx, the
// delivery and the work it implies are committed to the store; the work
// itself runs afterwards, so the answer never waits on Slack or GitHub.
func (b *Bot) WebhookHandler() http.Handler {
	return http.HandlerFunc(b.serveWebhook)
}

func (b *Bot) serveWebhook(w http.ResponseWriter, r *http.Request) {
	start := b.now()
	event, delivery := r.Header.Get(github.HeaderEvent), r.Header.Get(github.HeaderDelivery)
	log := b.log.With(LogDelivery, delivery)
	action := ""
	answer := func(status int, outcome, msg string) {
		label := event
		if event != github.EventPATRequest && event != github.EventPing {
			label = labelOtherEventOrAct // GitHub has many events; keep the metric small
		}
		actLabel := action
		if !slices.Contains(knownActions, action) {
			actLabel = labelOtherEventOrAct
		}
		b.metrics.webhooks.WithLabelValues(label, actLabel, outcome).Inc()
		b.metrics.intake.WithLabelValues(outcome).Observe(b.now().Sub(start).Seconds())
		http.Error(w, msg, status)
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, github.MaxPayloadBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			log.Warn("webhook rejected: body over GitHub's 25 MiB cap")
			answer(http.StatusRequestEntityTooLarge, outcomeTooLarge, "payload too large")
			return
		}
		answer(http.StatusBadRequest, outcomeMalformed, "cannot read body")
		return
	}
	// Nothing else is looked at before the signature holds.
	if err := github.VerifySignature(b.secret, body, r.Header.Get(github.HeaderSignature)); err != nil {
		log.Warn("webhook rejected", "err", err, LogEvent, event, "remote", r.RemoteAddr, "bytes", len(body))
		answer(http.StatusUnauthorized, outcomeBadSignature, "invalid signature")
		return
	}
	log = log.With(LogEvent, event)

	switch {
	case event == github.EventPing:
		answer(http.StatusOK, outcomePing, "pong")
		return
	case event == "":
		answer(http.StatusBadRequest, outcomeMalformed, "missing "+github.HeaderEvent+" header")
		return
	case event != github.EventPATRequest:
		log.Debug("webhook ignored: event not handled")
		answer(http.StatusAccepted, outcomeIgnored, "event ignored")
		return
	case delivery == "":
		answer(http.StatusBadRequest, outcomeMalformed, "missing "+github.HeaderDelivery+" header")
		return
	}

	payload, err := github.Payload(r.Header.Get("Content-Type"), body)
	if err != nil {
		log.Warn("webhook rejected: malformed payload", "err", err)
		answer(http.StatusBadRequest, outcomeMalformed, err.Error())
		return
	}
	ev, err := github.ParseRequestEvent(payload)
	if err != nil {
		log.Warn("webhook rejected: malformed payload", "err", err)
		answer(http.StatusBadRequest, outcomeMalformed, err.Error())
		return
	}
	action = ev.Action
	log = log.With(LogAction, ev.Action, LogOrg, ev.Org, LogRequest, ev.Request.ID)
	if !slices.Contains(knownActions, ev.Action) {
		log.Info("webhook ignored: action not handled")
		answer(http.StatusAccepted, outcomeIgnored, "action ignored")
		return
	}

	marker := store.Delivery{ID: delivery, Event: event, Action: ev.Action, Org: ev.Org, RequestID: ev.Request.ID, ReceivedAt: start}
	if _, ok := b.policy.Org(ev.Org); !ok {
		marker.Outcome = outcomeUnknownOrg
		if _, _, err := b.store.AcceptDelivery(marker, nil); err != nil {
			log.Error("cannot record delivery", "err", err)
			answer(http.StatusInternalServerError, outcomeStoreError, "cannot record delivery")
			return
		}
		log.Warn("webhook for an org that is not configured; add it to the policy file to handle its requests")
		answer(http.StatusAccepted, outcomeUnknownOrg, "org not configured")
		return
	}

	if !b.reserve() {
		log.Error("webhook refused: work queue full", "capacity", b.capacity)
		answer(http.StatusServiceUnavailable, outcomeQueueFull, "work queue full")
		return
	}
	marker.Outcome = outcomeQueued
	// The job keeps the event in patbot's compact form: a tenth of
	// GitHub's payload to write and store.
	compact, err := json.Marshal(ev)
	if err != nil {
		b.release()
		answer(http.StatusInternalServerError, outcomeStoreError, "cannot record delivery")
		return
	}
	job := &store.Job{Event: event, Action: ev.Action, Org: ev.Org, RequestID: ev.Request.ID, Payload: compact}
	accepted, jobID, err := b.store.AcceptDelivery(marker, job)
	switch {
	case err != nil:
		b.release()
		log.Error("cannot record delivery", "err", err)
		answer(http.StatusInternalServerError, outcomeStoreError, "cannot record delivery")
	case !accepted:
		b.release()
		log.Info("duplicate delivery ignored")
		answer(http.StatusOK, outcomeDuplicate, "duplicate delivery")
	default:
		b.queue <- jobID // never blocks: the place was reserved
		log.Info("webhook accepted", LogJob, jobID, LogActor, ev.Sender.Login)
		answer(http.StatusAccepted, outcomeQueued, "queued")
	}
}
