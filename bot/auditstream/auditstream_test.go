package auditstream_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/auditstream"
	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
)

// failingCursor loses the cursor's update once: patbot stopped between
// writing a batch and recording it.
type failingCursor struct {
	*bolt.DB
	fail bool
}

func (f *failingCursor) SetCursor(name string, v uint64) error {
	if f.fail {
		f.fail = false
		return errors.New("stopped")
	}
	return f.DB.SetCursor(name, v)
}

func never(time.Duration) <-chan time.Time { return nil }

// seqs reads the stream file's seqs.
func seqs(t *testing.T, path string) []uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e store.AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e.Seq)
	}
	return out
}

// open opens the stream file as patbot does, made whole.
func open(t *testing.T, path string) (*os.File, uint64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	floor, err := auditstream.Recover(f)
	if err != nil {
		t.Fatal(err)
	}
	return f, floor
}

// Across stops at any moment, every event reaches the file exactly once.
func TestStreamNeitherRepeatsNorSkips(t *testing.T) {
	now := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	db, err := bolt.Open(filepath.Join(t.TempDir(), "patbot.db"), bolt.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	log := slog.New(slog.DiscardHandler)
	appendEvents := func(n int) {
		for range n {
			if err := db.AppendAudit(store.AuditEvent{Kind: "decision", Org: "acme", Actor: "alice"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	flush := func(st auditstream.Store) {
		t.Helper()
		f, floor := open(t, path)
		auditstream.Flush(auditstream.New(st, f, floor, log, never))
	}

	appendEvents(3)
	flush(db)
	// Stopped after writing 4 and 5, before the cursor moved.
	appendEvents(2)
	flush(&failingCursor{DB: db, fail: true})
	if c, _ := db.Cursor(auditstream.CursorName); c != 3 {
		t.Fatalf("cursor = %d, want 3 (its update was lost)", c)
	}
	// Stopped in the middle of writing a line.
	appendEvents(1)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	io.WriteString(f, `{"seq":6,"at":"2026-06-01T09:`)
	f.Close()
	flush(db)
	appendEvents(1)
	flush(db)

	got := seqs(t, path)
	want := []uint64{1, 2, 3, 4, 5, 6, 7}
	if len(got) != len(want) {
		t.Fatalf("file holds seqs %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("file holds seqs %v, want %v", got, want)
		}
	}
}
