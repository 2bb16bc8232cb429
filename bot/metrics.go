package bot

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

type metrics struct {
	webhooks      *prometheus.CounterVec
	intake        *prometheus.HistogramVec
	jobs          *prometheus.CounterVec
	decisions     *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	slackRequests *prometheus.CounterVec

	reconcileRuns    *prometheus.CounterVec
	reconcileRepairs *prometheus.CounterVec
	followUps        *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, b *Bot) (*metrics, error) {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_webhooks_total",
			Help: "GitHub webhook deliveries by event, action and outcome.",
		}, []string{"event", "action", "outcome"}),
		intake: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "patbot_webhook_intake_seconds",
			Help:    "Time from receiving a webhook to answering it, including the fsynced commit.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_jobs_total",
			Help: "Attempts at webhook work by result: done, retried, parked.",
		}, []string{"result"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_decisions_total",
			Help: "Decisions on PAT requests by outcome (approved, denied, cancelled, failed) and source (slack, webhook).",
		}, []string{"outcome", "source"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_refusals_total",
			Help: "Decision attempts refused, by reason.",
		}, []string{"reason"}),
		slackRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_slack_requests_total",
			Help: "Requests from Slack by route and outcome.",
		}, []string{"route", "outcome"}),
		reconcileRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_reconcile_runs_total",
			Help: "Reconciliations of an org's records with GitHub, by result.",
		}, []string{"result"}),
		reconcileRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_reconcile_repairs_total",
			Help: "Requests reconciliation repaired: card_posted, card_closed, decision_settled.",
		}, []string{"kind"}),
		followUps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_followups_total",
			Help: "Follow-through work done, by kind: reminder, escalation, digest, hygiene_report, bulk_review.",
		}, []string{"kind"}),
	}
	queueDepth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patbot_queue_depth",
		Help: "Unfinished webhook jobs: queued, running, waiting to retry or parked.",
	}, func() float64 { return float64(b.reserved.Load()) })
	pendingRequests := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patbot_pending_requests",
		Help: "PAT requests awaiting a decision.",
	}, func() float64 { n, _, _ := b.store.PendingStats(); return float64(n) })
	oldestPending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patbot_oldest_pending_request_seconds",
		Help: "Age of the oldest PAT request awaiting a decision (0 when none).",
	}, func() float64 {
		_, oldest, _ := b.store.PendingStats()
		if oldest.IsZero() {
			return 0
		}
		return b.now().Sub(oldest).Seconds()
	})
	authOK := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patbot_github_auth_ok",
		Help: "1 once GitHub has accepted the App's credentials; 0 while it could not be asked or refused them (see the logs).",
	}, func() float64 {
		if b.appAuth.Load() == appAuthOK {
			return 1
		}
		return 0
	})
	for _, c := range []prometheus.Collector{authOK, pendingRequests, oldestPending, m.webhooks, m.intake, m.jobs, m.decisions, m.refusals, m.slackRequests, m.reconcileRuns, m.reconcileRepairs, m.followUps, queueDepth} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.initSeries()
	return m, nil
}

// initSeries creates every series whose labels are known in advance, at
// zero: a rate or an alert on a counter that has not moved yet needs the
// series to exist.
func (m *metrics) initSeries() {
	for _, action := range knownActions {
		for _, outcome := range []string{outcomeQueued, outcomeDuplicate, outcomeUnknownOrg} {
			m.webhooks.WithLabelValues(github.EventPATRequest, action, outcome)
		}
	}
	for _, event := range []string{github.EventPATRequest, labelOtherEventOrAct} {
		for _, outcome := range []string{outcomeIgnored, outcomeBadSignature, outcomeMalformed, outcomeTooLarge, outcomeOverBudget, outcomeQueueFull, outcomeStoreError} {
			m.webhooks.WithLabelValues(event, labelOtherEventOrAct, outcome)
		}
	}
	m.webhooks.WithLabelValues(github.EventPing, labelOtherEventOrAct, outcomePing)
	for _, outcome := range []string{outcomeQueued, outcomeDuplicate, outcomeIgnored, outcomeBadSignature, outcomeMalformed, outcomeTooLarge, outcomeOverBudget, outcomeQueueFull, outcomeStoreError} {
		m.intake.WithLabelValues(outcome)
	}
	for _, result := range []string{"done", "retried", "parked"} {
		m.jobs.WithLabelValues(result)
	}
	for _, outcome := range []store.State{store.StateApproved, store.StateDenied, store.StateCancelled, store.StateClosed, "failed"} {
		for _, source := range []store.Source{store.SourceSlack, store.SourceWebhook, store.SourceReconcile} {
			m.decisions.WithLabelValues(string(outcome), string(source))
		}
	}
	for _, reason := range refusalReasons {
		m.refusals.WithLabelValues(reason)
	}
	for _, route := range []string{"/slack/interactions", "/slack/commands"} {
		for _, outcome := range []string{"ok", "malformed", "bad_signature", "busy"} {
			m.slackRequests.WithLabelValues(route, outcome)
		}
	}
	m.slackRequests.WithLabelValues("response_url", "refused")
	for _, result := range []string{"ok", "error"} {
		m.reconcileRuns.WithLabelValues(result)
	}
	for _, kind := range []string{"card_posted", "card_closed", "card_updated", "decision_settled"} {
		m.reconcileRepairs.WithLabelValues(kind)
	}
	for _, kind := range []string{"reminder", "escalation", "digest", "hygiene_report", "bulk_review"} {
		m.followUps.WithLabelValues(kind)
	}
}

// refusalReasons are the reasons a decision or a revocation is refused, as
// patbot_refusals_total labels them.
var refusalReasons = []string{"org not configured", "slack user not mapped", "no record", "own request", "authorization check failed", "not authorized"}
