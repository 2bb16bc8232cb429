package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	berrors "go.etcd.io/bbolt/errors"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/storetest"
)

// testEpoch is the stores' time in tests: a fixed day, so that no test
// depends on the date it runs.
var testEpoch = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testEpoch }

// The bbolt backend passes the store's behavioural suite.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			db, err := Open(filepath.Join(t.TempDir(), "patbot.db"), Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { checkAndClose(t, db) })
			return db
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			db := s.(*DB)
			path, now := db.Path(), db.now
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := Open(path, Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { checkAndClose(t, db) })
			return db
		},
	})
}

// checkAndClose runs bbolt's consistency check, then closes the file.
func checkAndClose(t *testing.T, db *DB) {
	if err := db.Check(); err != nil && !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Error(err)
	}
	db.Close()
}

func mustOpen(t *testing.T, path string) *DB {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "patbot.db")
	}
	db, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkAndClose(t, db) })
	return db
}

func TestOpenLockedFileFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	mustOpen(t, path)
	// Without the lock timeout this would wait for ever.
	_, err := Open(path, Options{LockTimeout: 100 * time.Millisecond, Now: fixedNow})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: got %v, want store.ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "is another patbot running?") {
		t.Errorf("error %q does not say what to check", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bbolt.Tx) error {
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
	first := &write{fn: func(*bbolt.Tx) error { return nil }, done: make(chan struct{})}
	db.writes <- first
	// Taken by the committer, which waits for the writer (it must not
	// take the writes below with it).
	waitFor(t, func() bool {
		stacks := make([]byte, 1<<20)
		return len(db.writes) == 0 && bytes.Contains(stacks[:runtime.Stack(stacks, true)], []byte("bbolt.(*DB).beginRWTx"))
	})

	results := make(chan string, 3)
	go func() {
		ok, _, err := db.AcceptDelivery(store.Delivery{ID: "b"}, &store.Job{Payload: []byte(`{}`)})
		results <- fmt.Sprintf("b %v %v", ok, err)
	}()
	waitFor(t, func() bool { return len(db.writes) == 1 })
	go func() {
		err := db.group(func(*bbolt.Tx) error { return errors.New("refused") })
		results <- fmt.Sprintf("failing %v", err)
	}()
	waitFor(t, func() bool { return len(db.writes) == 2 })
	go func() {
		ok, _, err := db.AcceptDelivery(store.Delivery{ID: "d"}, nil)
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
		if ok, _, _ := db.AcceptDelivery(store.Delivery{ID: id}, nil); ok {
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
