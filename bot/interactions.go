package bot

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
)

// maxSlackBody caps what patbot reads of a Slack request; interaction
// payloads are a few kilobytes.
const maxSlackBody = 1 << 20

// viewsOpenTimeout keeps views.open inside the 3 seconds a trigger_id lives.
const viewsOpenTimeout = 2500 * time.Millisecond

// errBusy means the interaction queue is full.
var errBusy = errors.New("patbot is busy")

// denyMetadata travels in the deny modal's private_metadata: a
// view_submission has no channel of its own.
type denyMetadata struct {
	Org     string `json:"org"`
	ID      int64  `json:"id"`
	Channel string `json:"channel"`
}

// verifySlack reads a Slack request's body and checks its v0 signature and
// its timestamp (at most 5 minutes away). It answers the request itself and
// returns false when the request is refused.
func (b *Bot) verifySlack(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSlackBody))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	if err := checkSlackSignature(b.signingSecret, r.Header, body, b.now()); err != nil {
		b.log.Warn("Slack request rejected", "path", r.URL.Path, "err", err, "remote", r.RemoteAddr)
		b.metrics.slackRequests.WithLabelValues(r.URL.Path, "bad_signature").Inc()
		http.Error(w, "invalid signature", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

// slackSignatureWindow is how far a request's timestamp may be from now:
// Slack's advice, and what bounds a replay.
const slackSignatureWindow = 5 * time.Minute

// checkSlackSignature checks Slack's v0 signature over the body and the
// timestamp, against patbot's clock.
func checkSlackSignature(secret string, h http.Header, body []byte, now time.Time) error {
	rawTS, sig := h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature")
	if rawTS == "" || sig == "" {
		return errors.New("missing signature headers")
	}
	ts, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil {
		return errors.New("malformed timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > slackSignatureWindow || d < -slackSignatureWindow {
		return fmt.Errorf("timestamp %s away from now, outside the %s window", d.Round(time.Second), slackSignatureWindow)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + rawTS + ":"))
	mac.Write(body)
	want := "v0=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// errMalformed marks a Slack request patbot cannot read.
var errMalformed = errors.New("malformed")

// slackRoute serves one kind of signed Slack request: it checks the
// signature, reads the form from the signed body only (never the query
// string), and answers with what handle returns: errMalformed is 400,
// errBusy 503, a nil acknowledgement an empty 200 (which closes a modal).
func (b *Bot) slackRoute(handle func(ctx context.Context, form url.Values) (ack any, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := b.verifySlack(w, r)
		if !ok {
			return
		}
		form, err := url.ParseQuery(string(body))
		var ack any
		if err == nil {
			ack, err = handle(r.Context(), form)
		} else {
			err = errMalformed
		}
		switch {
		case errors.Is(err, errBusy):
			b.metrics.slackRequests.WithLabelValues(r.URL.Path, "busy").Inc()
			http.Error(w, "busy, try again", http.StatusServiceUnavailable)
			return
		case err != nil:
			b.metrics.slackRequests.WithLabelValues(r.URL.Path, "malformed").Inc()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.metrics.slackRequests.WithLabelValues(r.URL.Path, "ok").Inc()
		if ack == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ack)
	})
}

// InteractionsHandler receives Slack's interactivity requests (button
// clicks and modal submissions) over HTTP.
func (b *Bot) InteractionsHandler() http.Handler {
	return b.slackRoute(func(ctx context.Context, form url.Values) (any, error) {
		var ic slack.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &ic); err != nil {
			return nil, fmt.Errorf("%w interaction payload", errMalformed)
		}
		return b.HandleInteraction(ctx, ic)
	})
}

// HandleInteraction handles one interaction and returns what to acknowledge
// it with (nil for an empty acknowledgement). Slow work is queued and runs
// after the acknowledgement; only views.open, which must use the trigger_id
// within 3 seconds, runs before.
func (b *Bot) HandleInteraction(ctx context.Context, ic slack.InteractionCallback) (any, error) {
	switch ic.Type {
	case slack.InteractionTypeBlockActions:
		for _, a := range ic.ActionCallback.BlockActions {
			if err := b.handleAction(ctx, ic, a); err != nil {
				return nil, err
			}
		}
	case slack.InteractionTypeViewSubmission:
		switch ic.View.CallbackID {
		case CallbackDeny:
			return b.handleDenySubmission(ic)
		case view.CallbackApproveFor:
			return b.handleApproveForSubmission(ic)
		case view.CallbackBulk:
			return b.handleBulkSubmission(ic)
		}
	}
	return nil, nil
}

func (b *Bot) handleAction(ctx context.Context, ic slack.InteractionCallback, a *slack.BlockAction) error {
	switch {
	case a.ActionID == ActionRevoke:
		var rv view.RevokeValue
		if err := json.Unmarshal([]byte(a.Value), &rv); err != nil || rv.ID == 0 {
			b.log.Warn("revoke button with a malformed value")
			return nil
		}
		return b.submit(func(ctx context.Context) { b.revoke(ctx, ic.User.ID, ic.ResponseURL, rv) })
	case strings.HasPrefix(a.ActionID, view.ActionHomePage):
		return b.homePage(ic, a)
	case a.ActionID == view.ActionDigestReview:
		return b.openBulkModal(ctx, ic, a.Value)
	case strings.HasPrefix(a.ActionID, view.ActionBulkPage):
		return b.bulkPage(ctx, ic, a)
	case strings.HasPrefix(a.ActionID, view.ActionHygieneRevoke):
		var hv view.HygieneValue
		if err := json.Unmarshal([]byte(a.Value), &hv); err != nil || hv.Org == "" {
			b.log.Warn("hygiene button with a malformed value")
			return nil
		}
		return b.submit(func(ctx context.Context) { b.hygieneRevoke(ctx, ic.User.ID, ic.ResponseURL, hv) })
	case strings.HasPrefix(a.ActionID, ActionGrantsPage):
		var q view.GrantsQuery
		if err := json.Unmarshal([]byte(a.Value), &q); err != nil {
			return nil
		}
		return b.submit(func(ctx context.Context) { b.respond(ctx, ic.ResponseURL, b.grantsMessage(ctx, ic.User.ID, q, nil)) })
	case a.ActionID != ActionApprove && a.ActionID != ActionDeny:
		return nil
	}
	org, id, ok := view.ParseRequestKey(a.Value)
	if !ok {
		b.log.Warn("button with a malformed value", "action_id", a.ActionID)
		return nil
	}
	channel := ic.Container.ChannelID
	if channel == "" {
		channel = ic.Channel.ID
	}
	d := decisionRequest{org: org, id: id, slackUser: ic.User.ID, channel: channel}
	if a.ActionID == ActionApprove {
		d.action = github.ActionApprove
		if o, ok := b.config().Org(org); ok && o.Policy != nil && len(o.Policy.GrantForChoices) > 0 {
			return b.openApproveForModal(ctx, ic.TriggerID, o, d)
		}
		return b.submit(func(ctx context.Context) { b.decide(ctx, d) })
	}
	return b.openDenyModal(ctx, ic.TriggerID, d)
}

// openDenyModal opens the reason dialog at once, then checks in the
// background whether the user may decide, and if not turns the dialog into
// the explanation.
func (b *Bot) openDenyModal(ctx context.Context, triggerID string, d decisionRequest) error {
	meta, _ := json.Marshal(denyMetadata{Org: d.org, ID: d.id, Channel: d.channel})
	modal := view.DenyModal(d.org, d.id, string(meta))
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), viewsOpenTimeout)
	resp, err := b.slack.OpenViewContext(octx, triggerID, modal)
	cancel()
	if err != nil {
		b.log.Warn("cannot open the deny dialog", LogOrg, d.org, LogRequest, d.id, "err", err)
		return b.submit(func(ctx context.Context) {
			b.tell(ctx, d.channel, d.slackUser, "patbot could not open the deny dialog; click Deny again.")
		})
	}
	viewID, hash := resp.ID, resp.Hash
	return b.submit(func(ctx context.Context) {
		// Only shapes the dialog: submitting it verifies afresh.
		_, refusal := b.checkApprover(ctx, decisionRequest{org: d.org, id: d.id, action: github.ActionDeny, slackUser: d.slackUser}, b.authz.check)
		if refusal.text == "" {
			return
		}
		text := refusal.text
		if refusal.signIn {
			b.tellToLink(ctx, d.channel, d.slackUser, refusal.text)
			text += " patbot has sent you a sign-in button beside the request."
		}
		refused := view.RefusedModal("Cannot deny", text)
		err := retrySlack(ctx, func() error {
			_, err := b.slack.UpdateViewContext(ctx, refused, "", hash, viewID)
			return err
		})
		if err != nil {
			// Submitting the dialog is refused the same way.
			b.log.Info("cannot update the deny dialog", "err", err)
		}
	})
}

func (b *Bot) handleDenySubmission(ic slack.InteractionCallback) (any, error) {
	var meta denyMetadata
	if err := json.Unmarshal([]byte(ic.View.PrivateMetadata), &meta); err != nil || meta.ID == 0 {
		b.log.Warn("deny dialog without request metadata")
		return nil, nil
	}
	reason := ""
	if ic.View.State != nil {
		reason = ic.View.State.Values[view.DenyReasonBlock][view.DenyReasonInput].Value
	}
	if n := utf8.RuneCountInString(reason); n > github.MaxReasonLength {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{
			view.DenyReasonBlock: fmt.Sprintf("At most %d characters (GitHub's limit); this is %d.", github.MaxReasonLength, n),
		}), nil
	}
	d := decisionRequest{org: meta.Org, id: meta.ID, action: github.ActionDeny, reason: reason, slackUser: ic.User.ID, channel: meta.Channel}
	return nil, b.submit(func(ctx context.Context) { b.decide(ctx, d) })
}

// submit queues work to run after Slack is acknowledged, or reports that
// the queue is full.
func (b *Bot) submit(task func(context.Context)) error {
	if err := b.interactions.Submit(task); err != nil {
		return errBusy
	}
	return nil
}
