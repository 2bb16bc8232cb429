package bot

import (
	"github.com/prometheus/client_golang/prometheus"
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
	for _, c := range []prometheus.Collector{pendingRequests, oldestPending, m.webhooks, m.intake, m.jobs, m.decisions, m.refusals, m.slackRequests, m.reconcileRuns, m.reconcileRepairs, queueDepth} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
