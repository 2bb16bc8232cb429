package bolt

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
)

// writeV1 builds a file in schema 1's layout, as patbot wrote it before the
// delivery index: markers by GUID with a time index, payloads apart.
func writeV1(t *testing.T, path string, received time.Time) {
	t.Helper()
	b, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bbolt.Tx) error {
		buckets := map[string]*bbolt.Bucket{}
		for _, name := range []string{"meta", "deliveries", "delivery_times", "jobs", "payloads", "requests", "audit"} {
			bk, err := tx.CreateBucket([]byte(name))
			if err != nil {
				return err
			}
			buckets[name] = bk
		}
		buckets["meta"].Put(keySchema, []byte("1"))
		marker, _ := json.Marshal(store.Delivery{ID: "guid-v1", Event: "personal_access_token_request", Action: "created", Org: "acme",
			RequestID: 7, ReceivedAt: received, Outcome: "queued", JobID: 3})
		buckets["deliveries"].Put([]byte("guid-v1"), marker)
		buckets["delivery_times"].Put(append(itob(uint64(received.UnixNano())), "guid-v1"...), nil)
		job, _ := json.Marshal(store.Job{ID: 3, DeliveryID: "guid-v1", Event: "personal_access_token_request", Action: "created",
			Org: "acme", RequestID: 7, EnqueuedAt: received, Attempts: 2, LastError: "slack down"})
		buckets["jobs"].SetSequence(3)
		buckets["jobs"].Put(itob(3), job)
		buckets["payloads"].Put(itob(3), []byte(`{"action":"created"}`))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenMigratesSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	received := testEpoch.Add(-30 * 24 * time.Hour)
	writeV1(t, path, received)

	db := mustOpen(t, path)
	marker, err := db.Delivery("guid-v1")
	if err != nil || marker.JobID != 3 || marker.Org != "acme" || !marker.ReceivedAt.Equal(received) {
		t.Fatalf("migrated marker = %+v, %v", marker, err)
	}
	if ok, _, err := db.AcceptDelivery(store.Delivery{ID: "guid-v1"}, &store.Job{Payload: []byte(`{}`)}); ok || err != nil {
		t.Errorf("redelivery of a migrated delivery accepted: %v %v", ok, err)
	}
	j, err := db.Job(3)
	if err != nil || string(j.Payload) != `{"action":"created"}` || j.Attempts != 2 || j.LastError != "slack down" || j.DeliveryID != "guid-v1" {
		t.Fatalf("migrated job = %+v, %v", j, err)
	}
	_, id, err := db.AcceptDelivery(store.Delivery{ID: "guid-new"}, &store.Job{Payload: []byte(`{}`)})
	if err != nil || id <= 3 {
		t.Errorf("next job id = %d, %v; want more than 3 (numbering goes on)", id, err)
	}
	if n, err := db.PruneDeliveries(received.Add(time.Second), 10); n != 1 || err != nil {
		t.Errorf("pruned %d, %v; want the migrated marker", n, err)
	}
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		for _, gone := range [][]byte{v1DeliveryTimes, v1Payloads} {
			if tx.Bucket(gone) != nil {
				t.Errorf("bucket %s kept", gone)
			}
		}
		if v := string(tx.Bucket(bucketMeta).Get(keySchema)); v != "2" {
			t.Errorf("schema version %q, want 2", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadOnlyRefusesUnmigratedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	writeV1(t, path, testEpoch)
	if db, err := Open(path, Options{ReadOnly: true, Now: fixedNow}); err == nil {
		db.Close()
		t.Fatal("read-only open of a schema 1 file succeeded")
	}
}
