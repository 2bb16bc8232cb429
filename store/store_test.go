package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// testEpoch is the stores' time in tests: a fixed day, so that no test
// depends on the date it runs.
var testEpoch = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testEpoch }

func mustOpen(t *testing.T, path string) *DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "patbot.db")
	}
	db, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Check(); err != nil {
			t.Error(err)
		}
		db.Close()
	})
	return db
}

func TestOpenLockedFileFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	mustOpen(t, path)
	// Without the lock timeout this would wait for ever.
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, Now: fixedNow})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "is another patbot running?") {
		t.Errorf("error %q does not say what to check", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return meta.Put(keySchema, []byte("99"))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{Now: fixedNow})
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer") {
		t.Fatalf("got %v, want a schema version error", err)
	}
}

func TestAcceptDeliveryDeduplicates(t *testing.T) {
	db := mustOpen(t, "")
	d := Delivery{ID: "guid-1", Event: "personal_access_token_request", Action: "created", Org: "acme", RequestID: 7, Outcome: "queued"}
	job := &Job{Event: d.Event, Action: d.Action, Org: "acme", RequestID: 7, Payload: []byte(`{"a":1}`)}

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

func TestAcceptDeliveryConcurrentSameGUIDOneWins(t *testing.T) {
	db := mustOpen(t, "")
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Go(func() {
			ok, _, err := db.AcceptDelivery(Delivery{ID: "same"}, &Job{Payload: []byte(`{}`)})
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

func TestAcceptDeliveryWithoutJob(t *testing.T) {
	db := mustOpen(t, "")
	ok, id, err := db.AcceptDelivery(Delivery{ID: "g", Outcome: "ignored: org not configured"}, nil)
	if err != nil || !ok || id != 0 {
		t.Fatalf("ok=%v id=%d err=%v", ok, id, err)
	}
	if ids, _ := db.JobIDs(); len(ids) != 0 {
		t.Errorf("jobs = %v, want none", ids)
	}
	if _, _, err := db.AcceptDelivery(Delivery{}, nil); err == nil {
		t.Error("empty delivery id accepted")
	}
}

// acceptJob records a new delivery with a job and returns the job's number.
func acceptJob(t *testing.T, db *DB, guid string) uint64 {
	t.Helper()
	ok, id, err := db.AcceptDelivery(Delivery{ID: guid}, &Job{Payload: []byte(`{}`)})
	if err != nil || !ok {
		t.Fatalf("accept %s: %v, %v", guid, ok, err)
	}
	return id
}

func TestJobsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	db, err := Open(path, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	id := acceptJob(t, db, "g")
	if _, err := db.RecordJobFailure(id, errors.New("slack down")); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = mustOpen(t, path)
	if ok, _, err := db.AcceptDelivery(Delivery{ID: "g"}, &Job{Payload: []byte(`{}`)}); ok || err != nil {
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
	if _, err := db.Job(id); !errors.Is(err, ErrNotFound) {
		t.Errorf("finished job still there: %v", err)
	}
}

func TestPruneDeliveries(t *testing.T) {
	db := mustOpen(t, "")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10 {
		d := Delivery{ID: string(rune('a' + i)), ReceivedAt: base.Add(time.Duration(i) * time.Hour)}
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
	if _, err := db.Delivery("a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("oldest marker kept: %v", err)
	}
	if _, err := db.Delivery("f"); err != nil {
		t.Errorf("newer marker pruned: %v", err)
	}
	// A pruned delivery can be accepted again: the retention period must
	// outlast GitHub's redelivery window.
	if ok, _, _ := db.AcceptDelivery(Delivery{ID: "a"}, nil); !ok {
		t.Error("pruned delivery not accepted again")
	}
}

func TestUpdateRequest(t *testing.T) {
	db := mustOpen(t, "")
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r, err := db.UpdateRequest("ACME", 42, func(r *Request, exists bool) error {
		if exists {
			t.Error("new request reported as existing")
		}
		r.Owner = "octocat"
		r.SetState(StatePending, at, SourceWebhook, "octocat", "")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Org != "acme" || r.ID != 42 || r.State != StatePending {
		t.Fatalf("record = %+v", r)
	}

	boom := errors.New("boom")
	_, err = db.UpdateRequest("acme", 42, func(r *Request, exists bool) error {
		r.State = StateApproved
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	got, err := db.Request("Acme", 42)
	if err != nil || got.State != StatePending {
		t.Fatalf("aborted change was written: %+v, %v", got, err)
	}

	if _, err := db.UpdateRequest("acme", 43, func(r *Request, _ bool) error { r.State = StateApproved; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateRequest("other", 1, func(r *Request, _ bool) error { r.State = StatePending; return nil }); err != nil {
		t.Fatal(err)
	}
	pending, err := db.Requests("acme", StatePending)
	if err != nil || len(pending) != 1 || pending[0].ID != 42 {
		t.Errorf("pending in acme = %+v, %v", pending, err)
	}
	all, _ := db.Requests("")
	if len(all) != 3 {
		t.Errorf("all requests = %d, want 3", len(all))
	}
	if _, err := db.Request("acme", 99); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing request: %v", err)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	var r Request
	at := testEpoch
	r.SetState(StatePending, at, SourceWebhook, "", "created")
	for range 2 * maxHistory {
		r.SetState(StateDeciding, at, SourceSlack, "a", "")
		r.SetState(StatePending, at, SourceSlack, "a", "failed")
	}
	if len(r.History) != maxHistory {
		t.Fatalf("history has %d entries, want %d", len(r.History), maxHistory)
	}
	if r.History[0].Note != "created" {
		t.Errorf("first entry lost: %+v", r.History[0])
	}
}

func TestAuditTrail(t *testing.T) {
	db := mustOpen(t, "")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []AuditEvent{
		{At: base, Kind: "decision", Org: "Acme", RequestID: 1, Action: "approve", Actor: "alice"},
		{At: base.Add(time.Hour), Kind: "refused", Org: "acme", RequestID: 2, Actor: "mallory", Detail: "not an owner"},
		{At: base.Add(2 * time.Hour), Kind: "decision", Org: "other", RequestID: 3, Action: "deny"},
	}
	for _, e := range events {
		if err := db.AppendAudit(e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.AuditEvents(AuditFilter{})
	if err != nil || len(all) != 3 || all[0].Seq != 1 || all[2].Seq != 3 || all[0].Org != "acme" {
		t.Fatalf("all = %+v, %v", all, err)
	}
	acme, _ := db.AuditEvents(AuditFilter{Org: "ACME"})
	if len(acme) != 2 {
		t.Errorf("acme events = %d", len(acme))
	}
	window, _ := db.AuditEvents(AuditFilter{Since: base.Add(30 * time.Minute), Until: base.Add(2 * time.Hour)})
	if len(window) != 1 || window[0].RequestID != 2 {
		t.Errorf("window = %+v", window)
	}
}

func TestPruneRequestsAndAudit(t *testing.T) {
	db := mustOpen(t, "")
	now := testEpoch
	for id, state := range map[int64]State{1: StateApproved, 2: StatePending, 3: StateCancelled} {
		if _, err := db.UpdateRequest("acme", id, func(r *Request, _ bool) error { r.State = state; return nil }); err != nil {
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
		db.AppendAudit(AuditEvent{At: now.Add(time.Duration(i-5) * 24 * time.Hour), Kind: "decision", Org: "acme"})
	}
	if n, err := db.PruneAudit(now.Add(-48*time.Hour), 100); err != nil || n != 3 {
		t.Fatalf("pruned %d audit events, %v; want the 3 older than 2 days", n, err)
	}
	if left, _ := db.AuditEvents(AuditFilter{}); len(left) != 2 {
		t.Errorf("%d audit events left", len(left))
	}
}

// A write that fails must not take the writes it shares a commit with down
// with it, nor leave its deliveries half-recorded in the index.
func TestFailingWriteInAGroup(t *testing.T) {
	db := mustOpen(t, "")
	// Hold the writer so that the writes below queue up and commit as one
	// group when it is released.
	blocker, err := db.bolt.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blocker.Rollback() }) // runs before Close, even after a failure
	first := &write{fn: func(*bolt.Tx) error { return nil }, done: make(chan struct{})}
	db.writes <- first
	// Taken by the committer, which waits for the writer (it must not
	// take the writes below with it).
	waitFor(t, func() bool {
		stacks := make([]byte, 1<<20)
		return len(db.writes) == 0 && bytes.Contains(stacks[:runtime.Stack(stacks, true)], []byte("bbolt.(*DB).beginRWTx"))
	})

	results := make(chan string, 3)
	go func() {
		ok, _, err := db.AcceptDelivery(Delivery{ID: "b"}, &Job{Payload: []byte(`{}`)})
		results <- fmt.Sprintf("b %v %v", ok, err)
	}()
	waitFor(t, func() bool { return len(db.writes) == 1 })
	go func() {
		err := db.group(func(*bolt.Tx) error { return errors.New("refused") })
		results <- fmt.Sprintf("failing %v", err)
	}()
	waitFor(t, func() bool { return len(db.writes) == 2 })
	go func() {
		ok, _, err := db.AcceptDelivery(Delivery{ID: "d"}, nil)
		results <- fmt.Sprintf("d %v %v", ok, err)
	}()
	waitFor(t, func() bool { return len(db.writes) == 3 })
	blocker.Rollback()

	<-first.done
	got := map[string]bool{}
	for range 3 {
		got[<-results] = true
	}
	for _, want := range []string{"b true <nil>", "d true <nil>", "failing refused"} {
		if !got[want] {
			t.Errorf("results %v lack %q", got, want)
		}
	}
	for _, id := range []string{"b", "d"} {
		if ok, _, _ := db.AcceptDelivery(Delivery{ID: id}, nil); ok {
			t.Errorf("delivery %s accepted twice", id)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// Job numbers are never reused, even for jobs finished before a restart.
func TestJobNumbersGoOnAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	db, err := Open(path, Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	first := acceptJob(t, db, "g1")
	if err := db.FinishJob(first); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = mustOpen(t, path)
	second, err := db.EnqueueJob(Job{Event: "card"})
	if err != nil || second <= first {
		t.Fatalf("job after reopen = %d, %v; want more than %d", second, err, first)
	}
}

// Concurrent changes of one record are never lost: a change prepared from a
// record someone wrote meanwhile is made again from the new one.
func TestConcurrentUpdatesOfOneRequest(t *testing.T) {
	db := mustOpen(t, "")
	const n = 64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, err := db.UpdateRequest("acme", 1, func(r *Request, _ bool) error {
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
func TestConcurrentClaimsOneWins(t *testing.T) {
	for range 20 {
		db := mustOpen(t, "")
		if _, err := db.UpdateRequest("acme", 1, func(r *Request, _ bool) error { r.State = StatePending; return nil }); err != nil {
			t.Fatal(err)
		}
		taken := errors.New("taken")
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				_, err := db.UpdateRequest("acme", 1, func(r *Request, _ bool) error {
					if r.State != StatePending {
						return taken
					}
					r.State = StateDeciding
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

// A change and the job that must follow it are written together, or
// neither is.
func TestUpdateRequestWithJob(t *testing.T) {
	db := mustOpen(t, "")
	at := testEpoch.Add(30 * time.Second)
	boom := errors.New("boom")
	if _, _, err := db.UpdateRequestWithJob("acme", 1, Job{Event: "settle", NotBefore: at}, func(r *Request, _ bool) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if ids, _ := db.JobIDs(); len(ids) != 0 {
		t.Fatalf("job recorded for an aborted change: %v", ids)
	}
	r, id, err := db.UpdateRequestWithJob("acme", 1, Job{Event: "settle", Org: "acme", RequestID: 1, NotBefore: at, Payload: []byte(`{"x":1}`)},
		func(r *Request, _ bool) error { r.State = StateDeciding; r.Unconfirmed = true; return nil })
	if err != nil || r.State != StateDeciding {
		t.Fatal(r, err)
	}
	j, err := db.Job(id)
	if err != nil || j.Event != "settle" || !j.NotBefore.Equal(at) || string(j.Payload) != `{"x":1}` || !j.EnqueuedAt.Equal(testEpoch) {
		t.Fatalf("job = %+v, %v", j, err)
	}
	if got, _ := db.Request("acme", 1); !got.Unconfirmed {
		t.Error("Unconfirmed not kept")
	}
}

func TestAuditAfterAndCursor(t *testing.T) {
	db := mustOpen(t, "")
	for i := range 5 {
		db.AppendAudit(AuditEvent{Kind: "decision", Org: "acme", RequestID: int64(i + 1)})
	}
	after, err := db.AuditEvents(AuditFilter{After: 3})
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
