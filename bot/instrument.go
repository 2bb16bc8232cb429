package bot

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// APIMetrics counts and times patbot's calls to Slack and GitHub, by
// operation and status, at the HTTP transport, where every call and every
// retry passes.
type APIMetrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
}

// NewAPIMetrics registers the API call metrics.
func NewAPIMetrics(reg prometheus.Registerer) (*APIMetrics, error) {
	m := &APIMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_api_requests_total",
			Help: "Calls to Slack and GitHub by service, operation and HTTP status (error: no answer).",
		}, []string{"service", "operation", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "patbot_api_request_seconds",
			Help:    "Latency of calls to Slack and GitHub.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "operation"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "patbot_rate_limited_total",
			Help: "Answers that asked patbot to wait (HTTP 429, or GitHub's 403 with no rate limit left).",
		}, []string{"service"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.rateLimited} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, service := range []string{"slack", "github"} {
		m.rateLimited.WithLabelValues(service)
	}
	return m, nil
}

// Transport wraps base so that every call through it is measured. service
// is "slack" or "github".
func (m *APIMetrics) Transport(service string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := base.RoundTrip(r)
		op := operation(service, r)
		m.latency.WithLabelValues(service, op).Observe(time.Since(start).Seconds())
		status := "error" // no answer: refused, timed out, cut off
		if resp != nil {
			status = strconv.Itoa(resp.StatusCode)
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusForbidden && resp.Header.Get("X-Ratelimit-Remaining") == "0" {
				m.rateLimited.WithLabelValues(service).Inc()
			}
		}
		m.requests.WithLabelValues(service, op, status).Inc()
		return resp, err
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var (
	numberSegment = regexp.MustCompile(`/\d+(/|$)`)
	orgSegment    = regexp.MustCompile(`/(orgs|organizations|users|teams|memberships|installations)/[^/]+`)
)

// operation names a call with few enough values for a metric label: the
// Slack method, or GitHub's path with names and numbers taken out.
func operation(service string, r *http.Request) string {
	path := r.URL.Path
	if service == "slack" {
		// Web API methods are named in the path; a response URL's path is
		// a credential, and one label for them all.
		if i := strings.LastIndex(path, "/api/"); i >= 0 {
			return path[i+len("/api/"):]
		}
		return "response_url"
	}
	if i := strings.Index(path, "/orgs/"); i >= 0 {
		path = path[i:]
	} else if i := strings.Index(path, "/organizations/"); i >= 0 {
		path = path[i:]
	} else if i := strings.Index(path, "/app"); i >= 0 {
		path = path[i:]
	}
	path = orgSegment.ReplaceAllString(path, "/$1/*")
	for numberSegment.MatchString(path) {
		path = numberSegment.ReplaceAllString(path, "/*$1")
	}
	return r.Method + " " + path
}
