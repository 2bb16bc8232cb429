package bot_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/slacktest"
)

// command sends a signed /pat command whose answer goes to responseURL.
func (h *harness) command(user, text, responseURL string) int {
	h.t.Helper()
	form := slacktest.SlashCommandForm(user, "/pat", text, cardChannel, responseURL)
	rec := httptest.NewRecorder()
	h.bot.CommandsHandler().ServeHTTP(rec, slacktest.SignedRequest(signingSecret, "/slack/commands", h.clock.Now(), form))
	return rec.Code
}

// A response_url comes in the request body: patbot posts only under the
// allowed prefixes, and follows no redirect out of them.
func TestResponseURLOnlyUnderAllowedPrefixes(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	// A URL under the allowed prefix that redirects out of it.
	redirector := httptest.NewServer(http.RedirectHandler(other.URL+"/stolen", http.StatusTemporaryRedirect))
	defer redirector.Close()

	h := newHarness(t, "", func(d *bot.Deps) {
		withApprovers(d)
		d.ResponseURLPrefixes = append(d.ResponseURLPrefixes, redirector.URL+"/hooks/")
	})
	h.start()
	for _, u := range []string{other.URL + "/actions/x", redirector.URL + "/hooks/x", h.slack.ResponseURL("ok")} {
		if code := h.command("U0ALICE", "grants", u); code != http.StatusOK {
			t.Fatalf("command answered %d", code)
		}
	}
	h.eventually("the allowed answer posted", func() bool { return len(h.slack.Responses()) == 1 })
	h.eventually("the other two handled", func() bool {
		return metricValue(t, h.reg, "patbot_slack_requests_total", "route", "response_url", "outcome", "refused") == 1 &&
			strings.Contains(h.logs.String(), "cannot answer through the response URL")
	})
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("%d posts reached a host outside the allowed prefixes", n)
	}
	if strings.Contains(h.logs.String(), "/actions/x") {
		t.Error("a response URL's path reached the logs")
	}
}
