package bot

import (
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestOperationNames(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.github.com/orgs/acme/personal-access-token-requests/42": "POST /orgs/*/personal-access-token-requests/*",
		"http://h/api/v3/orgs/acme/memberships/alice":                        "POST /orgs/*/memberships/*",
		"http://h/api/v3/organizations/123/personal-access-tokens?page=2":    "POST /organizations/*/personal-access-tokens",
		"http://h/api/v3/app/installations/99/access_tokens":                 "POST /app/installations/*/access_tokens",
		"http://h/api/v3/orgs/acme/teams/sec/memberships/bob":                "POST /orgs/*/teams/*/memberships/*",
	} {
		r, _ := http.NewRequest("POST", in, nil)
		if got := operation("github", r); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
	r, _ := http.NewRequest("POST", "https://slack.com/api/chat.postMessage", nil)
	if got := operation("slack", r); got != "chat.postMessage" {
		t.Error(got)
	}
}

// A call that got no answer counts as status="error"; an answer through a
// response URL counts as one operation, its secret path left out.
func TestAPIMetricsLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewAPIMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	refused := m.Transport("slack", roundTripFunc(func(*http.Request) (*http.Response, error) {
		return nil, errors.New("connection refused")
	}))
	req, _ := http.NewRequest(http.MethodPost, "https://slack.com/api/chat.postMessage", nil)
	refused.RoundTrip(req)
	answered := m.Transport("slack", roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
	}))
	req, _ = http.NewRequest(http.MethodPost, "https://hooks.slack.com/actions/T1/123/s3cretpath", nil)
	answered.RoundTrip(req)
	for labels, want := range map[[2]string]float64{{"chat.postMessage", "error"}: 1, {"response_url", "200"}: 1} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues("slack", labels[0], labels[1])); got != want {
			t.Errorf("%v = %v, want %v", labels, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.requests); n != 2 {
		t.Errorf("%d series, want 2 (no series names a response URL's path)", n)
	}
}
