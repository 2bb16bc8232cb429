package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
)

// One runner holds a job at a time, for its lease; a job whose runner
// stopped, or that nobody began, is an orphan once its lease has passed.
func testJobLeases(t *testing.T, b Backend) {
	var now atomic.Int64
	now.Store(Epoch.UnixNano())
	db := b.Open(t, func() time.Time { return time.Unix(0, now.Load()).UTC() })
	advance := func(d time.Duration) { now.Add(int64(d)) }
	id, err := db.EnqueueJob(store.Job{Event: "card", Org: "acme", RequestID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if orphans, err := db.OrphanJobs(time.Minute, 10); err != nil || len(orphans) != 0 {
		t.Fatalf("a job just enqueued is an orphan: %v, %v", orphans, err)
	}
	advance(2 * time.Minute)
	if orphans, _ := db.OrphanJobs(time.Minute, 10); len(orphans) != 1 || orphans[0] != id {
		t.Fatalf("a job nobody began is not an orphan: %v", orphans)
	}
	j, err := db.ClaimJob(id, "a", time.Minute)
	if err != nil || j.ID != id || j.Holder != "a" || j.Org != "acme" {
		t.Fatalf("claim = %+v, %v", j, err)
	}
	if _, err := db.ClaimJob(id, "b", time.Minute); !errors.Is(err, store.ErrHeld) {
		t.Errorf("a claim of a held job = %v, want ErrHeld", err)
	}
	if orphans, _ := db.OrphanJobs(time.Minute, 10); len(orphans) != 0 {
		t.Errorf("a held job is an orphan: %v", orphans)
	}
	advance(50 * time.Second)
	if _, err := db.ClaimJob(id, "a", time.Minute); err != nil {
		t.Errorf("renewal = %v", err)
	}
	advance(50 * time.Second) // within the renewed lease
	if _, err := db.ClaimJob(id, "b", time.Minute); !errors.Is(err, store.ErrHeld) {
		t.Errorf("a claim within the renewed lease = %v, want ErrHeld", err)
	}
	advance(time.Minute) // a's runner stopped: its lease ran out
	if orphans, _ := db.OrphanJobs(time.Minute, 10); len(orphans) != 1 {
		t.Errorf("a job whose lease ran out is not an orphan: %v", orphans)
	}
	if j, err := db.ClaimJob(id, "b", time.Minute); err != nil || j.Holder != "b" {
		t.Errorf("take-over = %+v, %v", j, err)
	}
	db.RecordJobFailure(id, errors.New("boom"))
	if j, err := db.Job(id); err != nil || j.Attempts != 1 {
		t.Errorf("after a failure = %+v, %v", j, err)
	}
	if n, err := db.CountJobs(); err != nil || n != 1 {
		t.Errorf("count = %d, %v; want 1", n, err)
	}
	if err := db.FinishJob(id); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.CountJobs(); n != 0 {
		t.Errorf("count after finishing = %d", n)
	}
	if _, err := db.ClaimJob(id, "b", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a claim of a finished job = %v, want ErrNotFound", err)
	}

	// Of runners claiming one job at once, one gets it.
	id2, _ := db.EnqueueJob(store.Job{Event: "card"})
	var wg sync.WaitGroup
	var won atomic.Int32
	for i := range 10 {
		wg.Go(func() {
			if _, err := db.ClaimJob(id2, fmt.Sprint("runner-", i), time.Minute); err == nil {
				won.Add(1)
			} else if !errors.Is(err, store.ErrHeld) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Errorf("%d runners claimed one job", won.Load())
	}
}
