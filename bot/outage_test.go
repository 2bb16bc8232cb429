package bot_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/clocktest"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
)

// After a long Slack outage, the cards wait for nothing more than Slack's
// first good answer: every job waiting to retry resumes at once, and none
// is given up while its request is pending.
func TestWorkResumesWhenSlackAnswersAgain(t *testing.T) {
	clock := clocktest.Frozen(clocktest.Epoch)
	h := newHarness(t, "", func(d *bot.Deps) {
		withApprovers(d)
		d.Clock = clock
		d.RetryBackoff = time.Second
		d.MaxAttempts = 3
	})
	h.clock = clock
	ids := []int64{415441, 415442, 415440}
	for _, id := range ids[:2] {
		h.gh.AddRequest("github-ssh-authority", github.PendingRequest{ID: id, Owner: github.User{Login: "halain987", ID: 18029382}, TokenID: id})
	}
	created := func(id int64) []byte {
		return []byte(strings.Replace(string(fixture(t, "personal_access_token_request.created.json")), `"id": 415440`, fmt.Sprintf(`"id": %d`, id), 1))
	}
	h.slack.Fail(slacktest.Fault{Status: http.StatusInternalServerError}) // Slack is down
	h.start()

	// Two cards fail for long enough to wait minutes between attempts,
	// well past MaxAttempts.
	for _, id := range ids[:2] {
		h.deliver(github.EventPATRequest, fmt.Sprint("d", id), created(id))
	}
	attempts := func() (least int) {
		least = 1 << 30
		for _, id := range h.jobs() {
			j, _ := h.db.Job(id)
			least = min(least, j.Attempts)
		}
		return least
	}
	// A job waits for its retry once it has logged so (its timer is set).
	waits := func() int { return strings.Count(h.logs.String(), `"msg":"job waits"`) }
	h.eventually("both jobs waiting", func() bool { return waits() == 2 })
	for attempts() < 7 {
		before := waits()
		clock.Advance(10 * time.Minute)
		h.eventually("both jobs waiting again", func() bool { return waits() == before+2 })
	}

	// A third card fails once and waits a second; Slack comes back; its
	// retry is Slack's first good answer.
	before := waits()
	h.deliver(github.EventPATRequest, "d415440", created(415440))
	h.eventually("the third job waiting", func() bool { return waits() == before+1 })
	h.slack.Heal()
	clock.Advance(time.Second)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.logs.String()[max(0, len(h.logs.String())-6000):])
		}
	})
	h.eventually("every card posted, with no more time passing", func() bool { return len(h.slack.Messages(cardChannel)) == 3 })
	h.eventually("every job done", func() bool { return len(h.jobs()) == 0 })
}
