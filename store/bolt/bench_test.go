package bolt

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
)

func benchDB(b *testing.B) *DB {
	b.Helper()
	db, err := Open(filepath.Join(b.TempDir(), "patbot.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkAcceptDelivery measures durable intake: marker and job in one
// fsynced commit, shared by concurrent deliveries (run with -cpu to vary
// the concurrency).
func BenchmarkAcceptDelivery(b *testing.B) {
	db := benchDB(b)
	payload := make([]byte, 4096)
	var seq atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("d-%d", seq.Add(1))
			if _, _, err := db.AcceptDelivery(store.Delivery{ID: id, Outcome: "queued"}, &store.Job{Payload: payload}); err != nil {
				b.Error(err)
			}
		}
	})
}

// BenchmarkUpdateRequest measures one read-modify-write of a request
// record (one fsynced transaction).
func BenchmarkUpdateRequest(b *testing.B) {
	db := benchDB(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_, err := db.UpdateRequest("acme", int64(i%100), func(r *store.Request, _ bool) error {
			r.SetState(store.StatePending, time.Now(), store.SourceWebhook, "octocat", "")
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequest measures reading one record.
func BenchmarkRequest(b *testing.B) {
	db := benchDB(b)
	db.UpdateRequest("acme", 1, func(r *store.Request, _ bool) error { r.State = store.StatePending; return nil })
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Request("acme", 1); err != nil {
			b.Fatal(err)
		}
	}
}
