package bot_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/github/githubtest"
)

// GitHub refusing the App's JWT makes patbot unready; GitHub not
// answering does not, and shows in the gauge until it answers.
func TestReadinessFollowsTheAppsCredentials(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		h := newHarness(t, "", nil)
		h.gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: "/app", Status: http.StatusUnauthorized, Message: "A JSON web token could not be decoded"})
		h.start()
		h.eventually("unready", func() bool {
			err := h.bot.Ready()
			return err != nil && strings.Contains(err.Error(), "refuses the App's credentials")
		})
		if v := metricValue(t, h.reg, "patbot_github_auth_ok"); v != 0 {
			t.Errorf("patbot_github_auth_ok = %v", v)
		}
	})
	t.Run("no answer, then yes", func(t *testing.T) {
		h := newHarness(t, "", nil)
		h.gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: "/app", Status: http.StatusBadGateway})
		h.start()
		h.eventually("the first check failed", func() bool { return strings.Contains(h.logs.String(), "cannot check the App's credentials") })
		if err := h.bot.Ready(); err != nil {
			t.Errorf("unready while GitHub cannot be asked: %v", err)
		}
		if v := metricValue(t, h.reg, "patbot_github_auth_ok"); v != 0 {
			t.Errorf("patbot_github_auth_ok = %v before GitHub accepted", v)
		}
		h.gh.Heal()
		h.eventually("retry waiting", func() bool { return h.clock.Timers() > 0 })
		h.clock.Advance(2 * time.Second)
		h.eventually("accepted", func() bool { return metricValue(t, h.reg, "patbot_github_auth_ok") == 1 })
		if err := h.bot.Ready(); err != nil {
			t.Errorf("unready: %v", err)
		}
	})
}
