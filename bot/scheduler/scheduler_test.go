package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/logtest"

	"github.com/patbot/patbot/bot/clocktest"
	"github.com/patbot/patbot/bot/scheduler"
	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPool(t *testing.T) {
	logs := &logtest.Buffer{}
	p := scheduler.NewPool("test", 2, 3, time.Minute, slog.New(slog.NewTextHandler(logs, nil)))
	hold := make(chan struct{})
	var before, done atomic.Int32
	p.Before(func(context.Context) { before.Add(1) })
	// Nothing runs yet: three wait, the fourth is refused.
	for range 3 {
		if err := p.Submit(func(context.Context) { <-hold; done.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Submit(func(context.Context) {}); !errors.Is(err, scheduler.ErrCapacityExceeded) {
		t.Fatalf("fourth task: %v, want ErrCapacityExceeded", err)
	}
	stop, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { p.Run(stop, context.Background()); close(ran) }()
	// A panic is an error in the log, and the worker goes on.
	eventually(t, "room in the queue", func() bool { return p.Waiting() < 3 })
	if err := p.Submit(func(context.Context) { panic("boom") }); err != nil {
		t.Fatal(err)
	}
	close(hold)
	eventually(t, "every task run", func() bool { return done.Load() == 3 && strings.Contains(logs.String(), "panic: boom") })
	if before.Load() != 4 {
		t.Errorf("before ran %d times, want 4", before.Load())
	}
	cancel()
	<-ran
}

func TestEvery(t *testing.T) {
	clock := clocktest.Frozen(clocktest.Epoch)
	var runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		scheduler.Every(ctx, clock, time.Hour, slog.New(slog.DiscardHandler), func(context.Context) { runs.Add(1) })
		close(done)
	}()
	eventually(t, "the first run", func() bool { return runs.Load() == 1 && clock.Timers() == 1 })
	clock.Advance(time.Hour)
	eventually(t, "the second run", func() bool { return runs.Load() == 2 && clock.Timers() == 1 })
	cancel()
	<-done
}

// Due timers fire once, by their kind's handler; failures and unknown
// kinds are retried later; a timer set for sooner wakes the runner.
func TestTimers(t *testing.T) {
	clock := clocktest.Frozen(clocktest.Epoch)
	db, err := bolt.Open(filepath.Join(t.TempDir(), "patbot.db"), bolt.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logs := &logtest.Buffer{}
	s := scheduler.NewTimers(db, clock, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var mu sync.Mutex
	fired := map[string]int{}
	failures := 1
	s.Handle("remind", func(_ context.Context, tm store.Timer) error {
		mu.Lock()
		defer mu.Unlock()
		if tm.Key == "flaky" && failures > 0 {
			failures--
			return errors.New("slack down")
		}
		if tm.Key == "panics" && fired["panics"] == 0 {
			fired["panics"]++
			panic("boom")
		}
		fired[tm.Key]++
		return nil
	})
	count := func(key string) int { mu.Lock(); defer mu.Unlock(); return fired[key] }
	for _, key := range []string{"a", "flaky", "panics"} {
		s.Set(store.Timer{Kind: "remind", Key: key, Due: clocktest.Epoch.Add(time.Hour)})
	}
	s.Set(store.Timer{Kind: "unknown", Key: "x", Due: clocktest.Epoch.Add(time.Hour)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	eventually(t, "the runner waiting", func() bool { return clock.Timers() >= 1 })
	if count("a") != 0 {
		t.Fatal("fired before due")
	}
	// Set for sooner: it wakes the runner, which fires it at its time.
	s.Set(store.Timer{Kind: "remind", Key: "soon", Due: clocktest.Epoch.Add(time.Minute)})
	eventually(t, "the runner waiting for the new timer", func() bool { return clock.Timers() >= 1 })
	clock.Advance(time.Minute)
	eventually(t, "soon fired", func() bool { return count("soon") == 1 })

	clock.Advance(time.Hour)
	eventually(t, "a fired", func() bool { return count("a") == 1 })
	eventually(t, "failures logged", func() bool {
		l := logs.String()
		return strings.Contains(l, "slack down") && strings.Contains(l, "panic: boom") && strings.Contains(l, `no handler for timers of kind \"unknown\"`)
	})
	if count("flaky") != 0 {
		t.Fatal("a failed timer counted as fired")
	}
	clock.Advance(2 * time.Minute) // past the first backoff
	eventually(t, "the failed ones fired on retry", func() bool { return count("flaky") == 1 && count("panics") == 2 })
	// What fired is gone (once its handler has returned), and cannot fire
	// again; the unknown kind waits for a handler.
	eventually(t, "only the unknown kind's timer left", func() bool {
		e, err := db.ExportAll()
		return err == nil && len(e.Timers) == 1 && e.Timers[0].Kind == "unknown"
	})
}
