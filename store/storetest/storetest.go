// Package storetest is the behavioural suite every store backend must
// pass: Run it from the backend's tests with a way to open and reopen it.
// It asserts what the store.Store contract promises, black-box.
package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
)

// Epoch is the backends' clock in the suite: a fixed day, so that nothing
// depends on the date it runs.
var Epoch = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// Backend opens one backend for the suite.
type Backend struct {
	// Open returns a new, empty store whose clock is now. It closes the
	// store when the test ends.
	Open func(t *testing.T, now func() time.Time) store.Store
	// Reopen closes s and opens the same data again, as a restart does.
	Reopen func(t *testing.T, s store.Store) store.Store
}

func (b Backend) open(t *testing.T) store.Store {
	t.Helper()
	return b.Open(t, func() time.Time { return Epoch })
}

// Run runs the suite against a backend.
func Run(t *testing.T, b Backend) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, Backend)
	}{
		{"AcceptDeliveryDeduplicates", testAcceptDeliveryDeduplicates},
		{"AcceptDeliveryConcurrentSameGUIDOneWins", testAcceptDeliveryConcurrentSameGUIDOneWins},
		{"AcceptDeliveryWithoutJob", testAcceptDeliveryWithoutJob},
		{"JobsSurviveReopen", testJobsSurviveReopen},
		{"PruneDeliveries", testPruneDeliveries},
		{"UpdateRequest", testUpdateRequest},
		{"AuditTrail", testAuditTrail},
		{"PruneRequestsAndAudit", testPruneRequestsAndAudit},
		{"JobNumbersGoOnAfterReopen", testJobNumbersGoOnAfterReopen},
		{"ConcurrentUpdatesOfOneRequest", testConcurrentUpdatesOfOneRequest},
		{"ConcurrentClaimsOneWins", testConcurrentClaimsOneWins},
		{"UpdateRequestWithTimers", testUpdateRequestWithTimers},
		{"AuditAfterAndCursor", testAuditAfterAndCursor},
		{"Timers", testTimers},
		{"NextTimerDue", testNextTimerDue},
		{"TimersSurviveReopen", testTimersSurviveReopen},
		{"TimersClaimedOnce", testTimersClaimedOnce},
		{"JobLeases", testJobLeases},
		{"LinksOneToOne", testLinksOneToOne},
		{"UpdateLinkSerializes", testUpdateLinkSerializes},
		{"SignInsTakenOnce", testSignInsTakenOnce},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, b) })
	}
}

func testAcceptDeliveryDeduplicates(t *testing.T, b Backend) {
	db := b.open(t)
	d := store.Delivery{ID: "guid-1", Event: "personal_access_token_request", Action: "created", Org: "acme", RequestID: 7, Outcome: "queued"}
	job := &store.Job{Event: d.Event, Action: d.Action, Org: "acme", RequestID: 7, Payload: []byte(`{"a":1}`)}

	ok, id, err := db.AcceptDelivery(d, job)
	if err != nil || !ok || id == 0 {
		t.Fatalf("first accept: ok=%v id=%d err=%v", ok, id, err)
	}
	ok, id2, err := db.AcceptDelivery(d, job)
	if err != nil || ok || id2 != 0 {
		t.Fatalf("redelivery: ok=%v id=%d err=%v, want not accepted", ok, id2, err)
	}
	ids, err := db.JobIDs()
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("jobs = %v, %v; want exactly [%d]", ids, err, id)
	}
	got, err := db.Job(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeliveryID != "guid-1" || string(got.Payload) != `{"a":1}` || got.EnqueuedAt.IsZero() {
		t.Errorf("job = %+v", got)
	}
	marker, err := db.Delivery("guid-1")
	if err != nil || marker.JobID != id || marker.Outcome != "queued" {
		t.Errorf("marker = %+v, %v", marker, err)
	}
}

func testAcceptDeliveryConcurrentSameGUIDOneWins(t *testing.T, b Backend) {
	db := b.open(t)
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Go(func() {
			ok, _, err := db.AcceptDelivery(store.Delivery{ID: "same"}, &store.Job{Payload: []byte(`{}`)})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	ids, _ := db.JobIDs()
	if wins != 1 || len(ids) != 1 {
		t.Fatalf("wins=%d jobs=%d, want 1 and 1", wins, len(ids))
	}
}

func testAcceptDeliveryWithoutJob(t *testing.T, b Backend) {
	db := b.open(t)
	ok, id, err := db.AcceptDelivery(store.Delivery{ID: "g", Outcome: "ignored: org not configured"}, nil)
	if err != nil || !ok || id != 0 {
		t.Fatalf("ok=%v id=%d err=%v", ok, id, err)
	}
	if ids, _ := db.JobIDs(); len(ids) != 0 {
		t.Errorf("jobs = %v, want none", ids)
	}
	if _, _, err := db.AcceptDelivery(store.Delivery{}, nil); err == nil {
		t.Error("empty delivery id accepted")
	}
}

// acceptJob records a new delivery with a job and returns the job's number.
func acceptJob(t *testing.T, db store.Store, guid string) uint64 {
	t.Helper()
	ok, id, err := db.AcceptDelivery(store.Delivery{ID: guid}, &store.Job{Payload: []byte(`{}`)})
	if err != nil || !ok {
		t.Fatalf("accept %s: %v, %v", guid, ok, err)
	}
	return id
}

func testJobsSurviveReopen(t *testing.T, b Backend) {
	db := b.open(t)
	id := acceptJob(t, db, "g")
	if _, err := db.RecordJobFailure(id, errors.New("slack down")); err != nil {
		t.Fatal(err)
	}
	db = b.Reopen(t, db)
	if ok, _, err := db.AcceptDelivery(store.Delivery{ID: "g"}, &store.Job{Payload: []byte(`{}`)}); ok || err != nil {
		t.Errorf("redelivery after reopen accepted: %v, %v", ok, err)
	}
	ids, err := db.JobIDs()
	if err != nil || len(ids) != 1 {
		t.Fatalf("jobs after reopen = %v, %v", ids, err)
	}
	j, _ := db.Job(ids[0])
	if j.Attempts != 1 || j.LastError != "slack down" || string(j.Payload) != `{}` {
		t.Errorf("job = %+v, want one recorded failure", j)
	}
	if err := db.FinishJob(id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Job(id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("finished job still there: %v", err)
	}
}

func testPruneDeliveries(t *testing.T, b Backend) {
	db := b.open(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		d := store.Delivery{ID: string(rune('a' + i)), ReceivedAt: base.Add(time.Duration(i) * time.Hour)}
		if _, _, err := db.AcceptDelivery(d, nil); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := base.Add(5 * time.Hour) // a..e are older
	n, err := db.PruneDeliveries(cutoff, 3)
	if err != nil || n != 3 {
		t.Fatalf("first prune = %d, %v; want 3", n, err)
	}
	n, err = db.PruneDeliveries(cutoff, 3)
	if err != nil || n != 2 {
		t.Fatalf("second prune = %d, %v; want 2", n, err)
	}
	if c, _ := db.CountDeliveries(); c != 5 {
		t.Errorf("kept %d markers, want 5", c)
	}
	if _, err := db.Delivery("a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("oldest marker kept: %v", err)
	}
	if _, err := db.Delivery("f"); err != nil {
		t.Errorf("newer marker pruned: %v", err)
	}
	// A pruned delivery can be accepted again: the retention period must
	// outlast GitHub's redelivery window.
	if ok, _, _ := db.AcceptDelivery(store.Delivery{ID: "a"}, nil); !ok {
		t.Error("pruned delivery not accepted again")
	}
}

func testUpdateRequest(t *testing.T, b Backend) {
	db := b.open(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, err := db.UpdateRequest("ACME", 42, func(r *store.Request, exists bool) error {
		if exists {
			t.Error("new request reported as existing")
		}
		r.Owner = "octocat"
		r.SetState(store.StatePending, at, store.SourceWebhook, "octocat", "")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Org != "acme" || r.ID != 42 || r.State != store.StatePending {
		t.Fatalf("record = %+v", r)
	}

	boom := errors.New("boom")
	_, err = db.UpdateRequest("acme", 42, func(r *store.Request, exists bool) error {
		r.State = store.StateApproved
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	got, err := db.Request("Acme", 42)
	if err != nil || got.State != store.StatePending {
		t.Fatalf("aborted change was written: %+v, %v", got, err)
	}

	if _, err := db.UpdateRequest("acme", 43, func(r *store.Request, _ bool) error { r.State = store.StateApproved; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateRequest("other", 1, func(r *store.Request, _ bool) error { r.State = store.StatePending; return nil }); err != nil {
		t.Fatal(err)
	}
	pending, err := db.Requests("acme", store.StatePending)
	if err != nil || len(pending) != 1 || pending[0].ID != 42 {
		t.Errorf("pending in acme = %+v, %v", pending, err)
	}
	all, _ := db.Requests("")
	if len(all) != 3 {
		t.Errorf("all requests = %d, want 3", len(all))
	}
	if _, err := db.Request("acme", 99); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing request: %v", err)
	}
}

func testAuditTrail(t *testing.T, b Backend) {
	db := b.open(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []store.AuditEvent{
		{At: base, Kind: "decision", Org: "Acme", RequestID: 1, Action: "approve", Actor: "alice"},
		{At: base.Add(time.Hour), Kind: "refused", Org: "acme", RequestID: 2, Actor: "mallory", Detail: "not an owner"},
		{At: base.Add(2 * time.Hour), Kind: "decision", Org: "other", RequestID: 3, Action: "deny"},
	}
	for _, e := range events {
		if err := db.AppendAudit(e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.AuditEvents(store.AuditFilter{})
	if err != nil || len(all) != 3 || all[0].Seq != 1 || all[2].Seq != 3 || all[0].Org != "acme" {
		t.Fatalf("all = %+v, %v", all, err)
	}
	acme, _ := db.AuditEvents(store.AuditFilter{Org: "ACME"})
	if len(acme) != 2 {
		t.Errorf("acme events = %d", len(acme))
	}
	window, _ := db.AuditEvents(store.AuditFilter{Since: base.Add(30 * time.Minute), Until: base.Add(2 * time.Hour)})
	if len(window) != 1 || window[0].RequestID != 2 {
		t.Errorf("window = %+v", window)
	}
}

func testPruneRequestsAndAudit(t *testing.T, b Backend) {
	db := b.open(t)
	now := Epoch
	for id, state := range map[int64]store.State{1: store.StateApproved, 2: store.StatePending, 3: store.StateCancelled} {
		if _, err := db.UpdateRequest("acme", id, func(r *store.Request, _ bool) error { r.State = state; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n, oldest, err := db.PendingStats(); err != nil || n != 1 || !oldest.IsZero() {
		t.Errorf("pending = %d, %v, %v", n, oldest, err)
	}
	// Nothing is old enough yet.
	if n, _ := db.PruneRequests(now.Add(-time.Hour), 10); n != 0 {
		t.Errorf("pruned %d fresh records", n)
	}
	n, err := db.PruneRequests(now.Add(time.Hour), 10)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want the 2 final records", n, err)
	}
	if _, err := db.Request("acme", 2); err != nil {
		t.Error("a pending request was pruned")
	}

	for i := range 5 {
		db.AppendAudit(store.AuditEvent{At: now.Add(time.Duration(i-5) * 24 * time.Hour), Kind: "decision", Org: "acme"})
	}
	if n, err := db.PruneAudit(now.Add(-48*time.Hour), 100); err != nil || n != 3 {
		t.Fatalf("pruned %d audit events, %v; want the 3 older than 2 days", n, err)
	}
	if left, _ := db.AuditEvents(store.AuditFilter{}); len(left) != 2 {
		t.Errorf("%d audit events left", len(left))
	}
}

// Job numbers are never reused, even for jobs finished before a restart.
func testJobNumbersGoOnAfterReopen(t *testing.T, b Backend) {
	db := b.open(t)
	first := acceptJob(t, db, "g1")
	if err := db.FinishJob(first); err != nil {
		t.Fatal(err)
	}
	db = b.Reopen(t, db)
	second, err := db.EnqueueJob(store.Job{Event: "card"})
	if err != nil || second <= first {
		t.Fatalf("job after reopen = %d, %v; want more than %d", second, err, first)
	}
}

// Concurrent changes of one record are never lost: a change prepared from a
// record someone wrote meanwhile is made again from the new one.
func testConcurrentUpdatesOfOneRequest(t *testing.T, b Backend) {
	db := b.open(t)
	const n = 64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := db.UpdateRequest("acme", 1, func(r *store.Request, _ bool) error {
				r.RepositoryCount++
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r, err := db.Request("acme", 1)
	if err != nil || r.RepositoryCount != n {
		t.Fatalf("count = %d, %v; want %d", r.RepositoryCount, err, n)
	}
}

// A change that refuses (a request someone already claimed) keeps refusing
// however the commits fall: exactly one of many concurrent claims wins.
func testConcurrentClaimsOneWins(t *testing.T, b Backend) {
	for range 20 {
		db := b.open(t)
		if _, err := db.UpdateRequest("acme", 1, func(r *store.Request, _ bool) error { r.State = store.StatePending; return nil }); err != nil {
			t.Fatal(err)
		}
		taken := errors.New("taken")
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				_, err := db.UpdateRequest("acme", 1, func(r *store.Request, _ bool) error {
					if r.State != store.StatePending {
						return taken
					}
					r.State = store.StateDeciding
					return nil
				})
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, taken):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d claims won, want exactly 1", n)
		}
	}
}

// A change and the timer that must follow it are written together, or
// neither is.
func testUpdateRequestWithTimers(t *testing.T, b Backend) {
	db := b.open(t)
	at := Epoch.Add(30 * time.Second)
	boom := errors.New("boom")
	if _, _, err := db.UpdateRequestWithTimers("acme", 1, []store.Timer{{Kind: "settle", Key: "acme/1", Due: at}}, func(r *store.Request, _ bool) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if next, _ := db.NextTimerDue(); !next.IsZero() {
		t.Fatalf("timer set for an aborted change, due %v", next)
	}
	// A timer without a due time is refused, and nothing is written.
	changed := func(r *store.Request, _ bool) error { r.State = store.StateApproved; return nil }
	if _, _, err := db.UpdateRequestWithTimers("acme", 1, []store.Timer{{Kind: "settle", Key: "acme/1", Due: at}, {Kind: "grant_end", Key: "acme/1"}}, changed); err == nil {
		t.Fatal("a timer without a due time was accepted")
	}
	if _, err := db.Request("acme", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("request written with a refused timer: %v", err)
	}
	if next, _ := db.NextTimerDue(); !next.IsZero() {
		t.Fatalf("timer set with a refused one, due %v", next)
	}
	r, ids, err := db.UpdateRequestWithTimers("acme", 1, []store.Timer{
		{Kind: "settle", Key: "acme/1", Due: at, Payload: []byte(`{"x":1}`)},
		{Kind: "grant_end", Key: "acme/1", Due: at.Add(time.Hour)},
	}, func(r *store.Request, _ bool) error { r.State = store.StateDeciding; r.Unconfirmed = true; return nil })
	if err != nil || r.State != store.StateDeciding || len(ids) != 2 {
		t.Fatal(r, ids, err)
	}
	due, err := db.ClaimDueTimers(at, time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].ID != ids[0] || due[0].Kind != "settle" || string(due[0].Payload) != `{"x":1}` {
		t.Fatalf("timers due = %+v, %v", due, err)
	}
	if g, err := db.Timer("grant_end", "acme/1"); err != nil || g.ID != ids[1] {
		t.Fatalf("second timer = %+v, %v", g, err)
	}
	if got, _ := db.Request("acme", 1); !got.Unconfirmed {
		t.Error("Unconfirmed not kept")
	}
}

func testAuditAfterAndCursor(t *testing.T, b Backend) {
	db := b.open(t)
	for i := range 5 {
		db.AppendAudit(store.AuditEvent{Kind: "decision", Org: "acme", RequestID: int64(i + 1)})
	}
	after, err := db.AuditEvents(store.AuditFilter{After: 3})
	if err != nil || len(after) != 2 || after[0].Seq != 4 {
		t.Fatalf("after 3: %+v, %v", after, err)
	}
	if c, err := db.Cursor("siem"); c != 0 || err != nil {
		t.Fatalf("new cursor = %d, %v", c, err)
	}
	if err := db.SetCursor("siem", 3); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.Cursor("siem"); c != 3 {
		t.Errorf("cursor = %d, want 3", c)
	}
	if c, _ := db.Cursor("other"); c != 0 {
		t.Errorf("another reader's cursor = %d", c)
	}
}
