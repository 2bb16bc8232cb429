package bot

import (
	"bytes"
	"errors"
	"log/slog"
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
	outcomeOverBudget    = "over_budget"
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

// intake is what became of one delivery: the answer, the metric labels and
// the one log line every delivery gets.
type intake struct {
	status  int
	outcome string
	answer  string
	level   slog.Level
	logMsg  string
	attrs   []slog.Attr
	event   string
	action  string
}

func (in *intake) set(status int, outcome, answer string, level slog.Level, logMsg string, attrs ...slog.Attr) {
	in.status, in.outcome, in.answer, in.level, in.logMsg = status, outcome, answer, level, logMsg
	in.attrs = append(in.attrs, attrs...)
}

func (b *Bot) serveWebhook(w http.ResponseWriter, r *http.Request) {
	start := b.now()
	delivery := r.Header.Get(github.HeaderDelivery)
	in := intake{event: r.Header.Get(github.HeaderEvent)}
	in.attrs = append(make([]slog.Attr, 0, 10), slog.String(LogDelivery, delivery))
	b.receive(w, r, delivery, &in)

	event, action := in.event, in.action
	if event != github.EventPATRequest && event != github.EventPing {
		event = labelOtherEventOrAct // GitHub has many events; keep the metric small
	}
	if !slices.Contains(knownActions, action) {
		action = labelOtherEventOrAct
	}
	b.metrics.webhooks.WithLabelValues(event, action, in.outcome).Inc()
	b.metrics.intake.WithLabelValues(in.outcome).Observe(b.now().Sub(start).Seconds())
	b.log.LogAttrs(r.Context(), in.level, in.logMsg, in.attrs...)
	http.Error(w, in.answer, in.status)
}

// receive verifies, parses and records one delivery.
func (b *Bot) receive(w http.ResponseWriter, r *http.Request, delivery string, in *intake) {
	if r.ContentLength > github.MaxPayloadBytes {
		in.set(http.StatusRequestEntityTooLarge, outcomeTooLarge, "payload too large", slog.LevelWarn, "webhook rejected: body over GitHub's 25 MiB cap")
		return
	}
	signature := r.Header.Get(github.HeaderSignature)
	var body []byte
	if in.event == github.EventPATRequest {
		// Its content is needed: read it whole, within the budget for
		// bodies nobody has authenticated yet.
		limit, release, err := b.bodies.acquire(r.Context(), r.ContentLength, github.MaxPayloadBytes)
		if err != nil {
			in.set(http.StatusServiceUnavailable, outcomeOverBudget, "too many large requests at once, try again", slog.LevelWarn,
				"webhook refused: unauthenticated bodies over budget", slog.Any("err", err), slog.String("remote", r.RemoteAddr), slog.Int64("bytes", r.ContentLength))
			return
		}
		defer release()
		if body, err = readBody(w, r, limit); err != nil {
			b.readFailed(in, err)
			return
		}
		err = github.VerifySignature(b.secret, body, signature)
		if err != nil {
			b.badSignature(in, r, err, int64(len(body)))
			return
		}
	} else {
		// Only the signature matters: check it as the body streams past,
		// holding none of it.
		n, err := github.VerifySignatureReader(b.secret, http.MaxBytesReader(w, r.Body, github.MaxPayloadBytes), signature)
		switch {
		case errors.Is(err, github.ErrBadSignature) || errors.Is(err, github.ErrNoSignature):
			b.badSignature(in, r, err, n)
			return
		case err != nil:
			b.readFailed(in, err)
			return
		}
	}
	in.attrs = append(in.attrs, slog.String(LogEvent, in.event))
	// Signed deliveries hold jobs back while they are handled; unsigned
	// requests, which anyone can send, do not.
	b.intake.enter()
	defer b.intake.leave()

	switch {
	case in.event == github.EventPing:
		in.set(http.StatusOK, outcomePing, "pong", slog.LevelInfo, "ping from GitHub")
		return
	case in.event == "":
		in.set(http.StatusBadRequest, outcomeMalformed, "missing "+github.HeaderEvent+" header", slog.LevelWarn, "webhook rejected: no event header")
		return
	case in.event != github.EventPATRequest:
		in.set(http.StatusAccepted, outcomeIgnored, "event ignored", slog.LevelDebug, "webhook ignored: event not handled")
		return
	case delivery == "":
		in.set(http.StatusBadRequest, outcomeMalformed, "missing "+github.HeaderDelivery+" header", slog.LevelWarn, "webhook rejected: no delivery header")
		return
	}

	payload, err := github.Payload(r.Header.Get("Content-Type"), body)
	var ev *github.RequestEvent
	if err == nil {
		ev, err = github.ParseRequestEvent(payload)
	}
	if err != nil {
		in.set(http.StatusBadRequest, outcomeMalformed, err.Error(), slog.LevelWarn, "webhook rejected: malformed payload", slog.Any("err", err))
		return
	}
	in.action = ev.Action
	in.attrs = append(in.attrs, slog.String(LogAction, ev.Action), slog.String(LogOrg, ev.Org), slog.Int64(LogRequest, ev.Request.ID))
	if !slices.Contains(knownActions, ev.Action) {
		in.set(http.StatusAccepted, outcomeIgnored, "action ignored", slog.LevelInfo, "webhook ignored: action not handled")
		return
	}

	marker := store.Delivery{ID: delivery, Event: in.event, Action: ev.Action, Org: ev.Org, RequestID: ev.Request.ID, ReceivedAt: b.now()}
	if _, ok := b.config().Org(ev.Org); !ok {
		marker.Outcome = outcomeUnknownOrg
		if _, _, err := b.store.AcceptDelivery(marker, nil); err != nil {
			in.set(http.StatusInternalServerError, outcomeStoreError, "cannot record delivery", slog.LevelError, "cannot record delivery", slog.Any("err", err))
			return
		}
		in.set(http.StatusAccepted, outcomeUnknownOrg, "org not configured", slog.LevelWarn,
			"webhook for an org that is not configured; add it to the policy file to handle its requests")
		return
	}

	if !b.reserve() {
		in.set(http.StatusServiceUnavailable, outcomeQueueFull, "work queue full", slog.LevelError, "webhook refused: work queue full", slog.Int64("capacity", b.capacity))
		return
	}
	marker.Outcome = outcomeQueued
	compact, err := github.EncodeEvent(ev)
	if err != nil {
		b.release()
		in.set(http.StatusInternalServerError, outcomeStoreError, "cannot record delivery", slog.LevelError, "cannot encode job", slog.Any("err", err))
		return
	}
	job := &store.Job{Event: in.event, Action: ev.Action, Org: ev.Org, RequestID: ev.Request.ID, Payload: compact}
	accepted, jobID, err := b.store.AcceptDelivery(marker, job)
	switch {
	case err != nil:
		b.release()
		in.set(http.StatusInternalServerError, outcomeStoreError, "cannot record delivery", slog.LevelError, "cannot record delivery", slog.Any("err", err))
	case !accepted:
		b.release()
		in.set(http.StatusOK, outcomeDuplicate, "duplicate delivery", slog.LevelInfo, "duplicate delivery ignored")
	default:
		b.dbJobs.Add(1)
		b.queueJob(jobID)
		in.set(http.StatusAccepted, outcomeQueued, "queued", slog.LevelInfo, "webhook accepted", slog.Uint64(LogJob, jobID), slog.String(LogActor, ev.Sender.Login))
	}
}

// readFailed answers a body that could not be read.
func (b *Bot) readFailed(in *intake, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		in.set(http.StatusRequestEntityTooLarge, outcomeTooLarge, "payload too large", slog.LevelWarn, "webhook rejected: body over GitHub's 25 MiB cap")
		return
	}
	in.set(http.StatusBadRequest, outcomeMalformed, "cannot read body", slog.LevelWarn, "webhook rejected: cannot read body", slog.Any("err", err))
}

// badSignature answers a delivery whose signature does not hold. Nothing
// else about it is looked at.
func (b *Bot) badSignature(in *intake, r *http.Request, err error, n int64) {
	in.set(http.StatusUnauthorized, outcomeBadSignature, "invalid signature", slog.LevelWarn, "webhook rejected",
		slog.Any("err", err), slog.String(LogEvent, in.event), slog.String("remote", r.RemoteAddr), slog.Int64("bytes", n))
}

// readBody reads a webhook body of up to limit bytes, which the budget
// has reserved, in one allocation when the sender says how long it is: a
// buffer grown by doubling would allocate twice the body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	size := 0
	if r.ContentLength > 0 {
		size = int(min(r.ContentLength, limit))
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead)) // ReadFrom wants MinRead spare to see EOF
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return buf.Bytes(), err
}
