package bot_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/clocktest"
	"github.com/patbot/patbot/github"
)

// heldClock is the bot's clock. Once armed, it stops the first delivery
// that asks it the time from inside the handler's receive (which it does
// after the signature check, to stamp the delivery) until released.
type heldClock struct {
	*clocktest.Clock
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
}

func newHeldClock() *heldClock {
	return &heldClock{Clock: clocktest.New(clocktest.Epoch), reached: make(chan struct{}), release: make(chan struct{})}
}

func (c *heldClock) Now() time.Time {
	if c.armed.Load() && calledFrom("bot.(*Bot).receive") && c.armed.CompareAndSwap(true, false) {
		close(c.reached)
		<-c.release
	}
	return c.Clock.Now()
}

func calledFrom(function string) bool {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, function) {
			return true
		}
		if !more {
			return false
		}
	}
}

// holdSignedWebhook sends a signed created webhook and holds it after its
// signature check, until the returned function lets it finish.
func holdSignedWebhook(t *testing.T, h *harness, clock *heldClock) (finish func()) {
	t.Helper()
	clock.armed.Store(true)
	body := fixture(t, "personal_access_token_request.created.json")
	answered := make(chan int, 1)
	go func() { answered <- h.deliver(github.EventPATRequest, "guid-held", body).Code }()
	<-clock.reached
	finished := false
	finish = func() {
		if finished {
			return
		}
		finished = true
		close(clock.release)
		if code := <-answered; code != http.StatusAccepted {
			t.Errorf("held webhook answered %d", code)
		}
	}
	t.Cleanup(finish)
	return finish
}

func newClockedHarness(t *testing.T, maxYield time.Duration) (*harness, *heldClock) {
	clock := newHeldClock()
	h := newHarness(t, "", func(d *bot.Deps) {
		d.Clock = clock
		d.MaxYieldToIntake = maxYield
	})
	h.start()
	return h, clock
}

func deliverCreated(t *testing.T, h *harness) {
	t.Helper()
	if rec := h.deliver(github.EventPATRequest, "guid-created", fixture(t, "personal_access_token_request.created.json")); rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

func TestJobsYieldToWebhookIntake(t *testing.T) {
	h, clock := newClockedHarness(t, time.Minute)
	finish := holdSignedWebhook(t, h, clock)
	deliverCreated(t, h)
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
	h, clock := newClockedHarness(t, 50*time.Millisecond)
	holdSignedWebhook(t, h, clock) // in flight until the test ends
	deliverCreated(t, h)
	h.posted()
}

func TestUnsignedRequestsDoNotHoldJobs(t *testing.T) {
	h, _ := newClockedHarness(t, time.Minute)
	// A request whose body trickles in, as a slow client's would: it is
	// not known to be GitHub's until its signature is checked.
	pr, pw := io.Pipe()
	req := httptest.NewRequest(http.MethodPost, "/github/webhook", pr)
	req.Header.Set(github.HeaderEvent, github.EventPATRequest)
	req.Header.Set(github.HeaderDelivery, "guid-slow")
	req.Header.Set(github.HeaderSignature, "sha256="+strings.Repeat("0", 64))
	answered := make(chan int, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.bot.WebhookHandler().ServeHTTP(rec, req)
		answered <- rec.Code
	}()
	deliverCreated(t, h)
	h.posted() // within seconds, not after the one-minute bound
	io.Copy(pw, bytes.NewReader([]byte(`{"action":"created"}`)))
	pw.Close()
	if code := <-answered; code != http.StatusUnauthorized {
		t.Errorf("unsigned request answered %d", code)
	}
}

func TestStopDoesNotWaitForIntakeToPause(t *testing.T) {
	h, clock := newClockedHarness(t, time.Hour)
	holdSignedWebhook(t, h, clock)
	deliverCreated(t, h)
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
