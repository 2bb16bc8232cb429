package bolt

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patbot/patbot/store"
)

// A file patbot cannot read is refused with a message that names it and
// says what to do, and is left exactly as it was.
func TestDamagedFileRefused(t *testing.T) {
	const pageSize = 4096
	populated := func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "patbot.db")
		db, err := Open(path, Options{Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			if _, _, err := db.AcceptDelivery(store.Delivery{ID: strings.Repeat("g", 30) + string(rune('a'+i%26)) + string(rune('a'+i/26))}, &store.Job{Payload: bytes.Repeat([]byte("p"), 500)}); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		return path
	}
	zero := func(from, to int) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			end := min(to*pageSize, len(raw))
			clear(raw[from*pageSize : end])
			if err := os.WriteFile(path, raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, damage := range map[string]func(t *testing.T, path string){
		"empty file":        func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) },
		"zeroed data pages": zero(2, 1<<20),
		"zeroed meta pages": zero(0, 2),
		"garbage":           func(t *testing.T, path string) { os.WriteFile(path, bytes.Repeat([]byte("not bbolt "), 2000), 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			path := populated(t)
			damage(t, path)
			before, _ := os.ReadFile(path)
			for _, readOnly := range []bool{false, true} {
				db, err := Open(path, Options{Now: fixedNow, ReadOnly: readOnly, LockTimeout: 100e6})
				if err == nil {
					db.Close()
					t.Fatalf("read-only %v: damaged file opened", readOnly)
				}
				if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "restore it from a backup") {
					t.Errorf("read-only %v: error does not name the file and what to do: %v", readOnly, err)
				}
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Error("the damaged file was changed")
			}
		})
	}
}
