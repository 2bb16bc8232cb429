package bot_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/github"
)

// slowWebhook starts a ping whose body has not arrived yet: the webhook
// stays in flight until the returned function sends the body.
func slowWebhook(t *testing.T, h *harness) (finish func()) {
	t.Helper()
	body := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	pr, pw := io.Pipe()
	req := httptest.NewRequest(http.MethodPost, "/github/webhook", pr)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(github.HeaderEvent, github.EventPing)
	req.Header.Set(github.HeaderDelivery, "guid-slow-ping")
	req.Header.Set(github.HeaderSignature, github.Sign([]byte(secret), body))
	answered := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.bot.WebhookHandler().ServeHTTP(rec, req)
		answered <- rec.Code
	}()
	finished := false
	finish = func() {
		if finished {
			return
		}
		finished = true
		pw.Write(body)
		pw.Close()
		if code := <-answered; code != http.StatusOK {
			t.Errorf("slow ping answered %d", code)
		}
	}
	t.Cleanup(finish)
	return finish
}

func TestJobsYieldToWebhookIntake(t *testing.T) {
	h := newHarness(t, "", func(d *bot.Deps) { d.MaxYieldToIntake = time.Minute })
	h.start()
	finish := slowWebhook(t, h)
	if rec := h.deliver(github.EventPATRequest, "guid-created", fixture(t, "personal_access_token_request.created.json")); rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	// Without the gate the card would be posted within milliseconds.
	time.Sleep(200 * time.Millisecond)
	if n := len(h.slack.Messages(cardChannel)); n != 0 {
		t.Fatalf("%d cards posted while a webhook was in flight", n)
	}
	if n := len(h.gh.CallsTo(http.MethodGet, "/orgs/github-ssh-authority/personal-access-token-requests")); n != 0 {
		t.Fatalf("GitHub called %d times while a webhook was in flight", n)
	}
	finish()
	h.posted() // long before the one-minute bound
}

func TestJobsRunDespiteEndlessIntake(t *testing.T) {
	h := newHarness(t, "", func(d *bot.Deps) { d.MaxYieldToIntake = 50 * time.Millisecond })
	h.start()
	slowWebhook(t, h) // in flight until the test ends
	if rec := h.deliver(github.EventPATRequest, "guid-created", fixture(t, "personal_access_token_request.created.json")); rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	h.posted()
}

func TestStopDoesNotWaitForIntakeToPause(t *testing.T) {
	h := newHarness(t, "", func(d *bot.Deps) { d.MaxYieldToIntake = time.Hour })
	h.start()
	slowWebhook(t, h)
	if rec := h.deliver(github.EventPATRequest, "guid-created", fixture(t, "personal_access_token_request.created.json")); rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	time.Sleep(100 * time.Millisecond) // a worker takes the job and waits for intake to pause
	stopped := make(chan struct{})
	go func() {
		h.stop()
		h.stop = nil
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waiting for intake to pause 10s after it was stopped")
	}
	if n := len(h.jobs()); n != 1 {
		t.Errorf("%d jobs in the store after stopping; the unstarted job must stay", n)
	}
}
