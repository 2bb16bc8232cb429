package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
)

// A timer fires once: claimed when due, held for its lease, gone when
// finished; replaced, not doubled, by another of its kind and key.
func testTimers(t *testing.T, b Backend) {
	db := b.open(t)
	if _, err := db.SetTimer(store.Timer{Kind: "remind"}); err == nil {
		t.Error("a timer without a due time was accepted")
	}
	if next, err := db.NextTimerDue(); err != nil || !next.IsZero() {
		t.Fatalf("next with no timers = %v, %v", next, err)
	}
	due := Epoch.Add(time.Hour)
	id, err := db.SetTimer(store.Timer{Kind: "remind", Key: "acme/1", Due: due, Payload: []byte(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	db.SetTimer(store.Timer{Kind: "digest", Key: "acme", Due: due.Add(time.Hour)})
	if got, err := db.Timer("remind", "acme/1"); err != nil || got.ID != id || !got.Due.Equal(due) || string(got.Payload) != `{"n":1}` {
		t.Fatalf("timer by kind and key = %+v, %v", got, err)
	}
	if _, err := db.Timer("remind", "acme/2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a timer that does not exist: %v", err)
	}
	if next, _ := db.NextTimerDue(); !next.Equal(due) {
		t.Errorf("next = %v, want %v", next, due)
	}
	if got, _ := db.ClaimDueTimers(due.Add(-time.Second), time.Minute, 10); len(got) != 0 {
		t.Fatalf("claimed before due: %+v", got)
	}
	got, err := db.ClaimDueTimers(due, time.Minute, 10)
	if err != nil || len(got) != 1 || got[0].ID != id || got[0].Attempts != 1 || string(got[0].Payload) != `{"n":1}` || got[0].Key != "acme/1" {
		t.Fatalf("claim at due = %+v, %v", got, err)
	}
	if again, _ := db.ClaimDueTimers(due.Add(30*time.Second), time.Minute, 10); len(again) != 0 {
		t.Fatalf("claimed twice within the lease: %+v", again)
	}
	// The runner died: after its lease another claims it.
	again, _ := db.ClaimDueTimers(due.Add(2*time.Minute), time.Minute, 10)
	if len(again) != 1 || again[0].ID != id || again[0].Attempts != 2 {
		t.Fatalf("claim after the lease lapsed = %+v", again)
	}
	if err := db.RetryTimer(id, due.Add(10*time.Minute), errors.New("slack down")); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.ClaimDueTimers(due.Add(5*time.Minute), time.Minute, 10); len(got) != 0 {
		t.Fatalf("claimed before its new due time: %+v", got)
	}
	got, _ = db.ClaimDueTimers(due.Add(10*time.Minute), time.Minute, 1)
	if len(got) != 1 || got[0].LastError != "slack down" || got[0].Attempts != 3 {
		t.Fatalf("claim after retry = %+v", got)
	}
	if err := db.FinishTimer(id); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishTimer(id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finishing twice: %v, want ErrNotFound", err)
	}

	// Same kind and key: replaced, even while claimed.
	first, _ := db.SetTimer(store.Timer{Kind: "remind", Key: "acme/2", Due: due})
	db.ClaimDueTimers(due, time.Minute, 10)
	second, _ := db.SetTimer(store.Timer{Kind: "remind", Key: "acme/2", Due: due.Add(time.Minute)})
	if err := db.FinishTimer(first); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finishing a replaced timer: %v, want ErrNotFound", err)
	}
	got, _ = db.ClaimDueTimers(due.Add(time.Hour), time.Minute, 10)
	var remind []uint64
	for _, tm := range got {
		if tm.Kind == "remind" {
			remind = append(remind, tm.ID)
		}
	}
	if len(remind) != 1 || remind[0] != second {
		t.Fatalf("remind timers due = %v, want only %d", remind, second)
	}
	if err := db.CancelTimer("digest", "acme"); err != nil {
		t.Fatal(err)
	}
	if err := db.CancelTimer("digest", "acme"); err != nil {
		t.Errorf("cancelling nothing: %v", err)
	}
}

// What is next is the earliest time a timer is free to fire: its due time,
// or the end of its runner's lease.
func testNextTimerDue(t *testing.T, b Backend) {
	db := b.open(t) // its clock reads Epoch
	db.SetTimer(store.Timer{Kind: "k", Key: "held", Due: Epoch.Add(-time.Hour)})
	db.SetTimer(store.Timer{Kind: "k", Key: "later", Due: Epoch.Add(time.Hour)})
	if next, _ := db.NextTimerDue(); !next.Equal(Epoch.Add(-time.Hour)) {
		t.Fatalf("next = %v, want the overdue timer's due time", next)
	}
	if got, _ := db.ClaimDueTimers(Epoch, 10*time.Minute, 10); len(got) != 1 {
		t.Fatalf("claimed %d, want the overdue one", len(got))
	}
	if next, _ := db.NextTimerDue(); !next.Equal(Epoch.Add(10 * time.Minute)) {
		t.Errorf("next = %v, want the held timer's lease end, before the later timer", next)
	}
	db.ClaimDueTimers(Epoch, 2*time.Hour, 10) // nothing new is due; the lease stays
	db.SetTimer(store.Timer{Kind: "k", Key: "soon", Due: Epoch.Add(time.Minute)})
	if next, _ := db.NextTimerDue(); !next.Equal(Epoch.Add(time.Minute)) {
		t.Errorf("next = %v, want the new timer's due time", next)
	}
}

// Timers survive a restart, claims included.
func testTimersSurviveReopen(t *testing.T, b Backend) {
	db := b.open(t)
	due := Epoch.Add(time.Minute)
	id, _ := db.SetTimer(store.Timer{Kind: "revoke", Key: "acme/7", Due: due})
	db.SetTimer(store.Timer{Kind: "revoke", Key: "acme/8", Due: due})
	db.ClaimDueTimers(due, time.Hour, 1)
	db = b.Reopen(t, db)
	got, err := db.ClaimDueTimers(due, time.Hour, 10)
	if err != nil || len(got) != 1 || got[0].Key != "acme/8" {
		t.Fatalf("after reopen, claimable = %+v, %v; want acme/8 (acme/7 is held)", got, err)
	}
	got, _ = db.ClaimDueTimers(due.Add(2*time.Hour), time.Hour, 10)
	if len(got) != 2 || got[0].ID != id {
		t.Fatalf("after the leases = %+v", got)
	}
}

// However many runners claim at once, each due timer goes to one.
func testTimersClaimedOnce(t *testing.T, b Backend) {
	db := b.open(t)
	const n = 50
	for i := range n {
		db.SetTimer(store.Timer{Kind: "k", Key: string(rune('a' + i)), Due: Epoch})
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := db.ClaimDueTimers(Epoch, time.Hour, 10)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			for _, tm := range got {
				seen[tm.ID]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	total := 0
	for id, c := range seen {
		if c != 1 {
			t.Errorf("timer %d claimed %d times", id, c)
		}
		total += c
	}
	if total != min(n, 8*10) {
		t.Errorf("%d claimed, want %d", total, min(n, 8*10))
	}
}
