package bot

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	webhooks *prometheus.CounterVec
	intake   *prometheus.HistogramVec
	jobs     *prometheus.CounterVec
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
	}
	queueDepth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patbot_queue_depth",
		Help: "Unfinished webhook jobs: queued, running, waiting to retry or parked.",
	}, func() float64 { return float64(b.reserved.Load()) })
	for _, c := range []prometheus.Collector{m.webhooks, m.intake, m.jobs, queueDepth} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
