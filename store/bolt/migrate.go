package bolt

import (
	"bytes"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
)

// Schema 1 kept delivery markers by GUID with a separate time index, and
// job payloads in a bucket of their own.
var (
	v1DeliveryTimes = []byte("delivery_times") // received time (8 bytes) + GUID -> nil
	v1Payloads      = []byte("payloads")       // job sequence -> payload
)

// migrateV1 rewrites a schema 1 file's deliveries and jobs in the current
// layout, in the caller's transaction: a failure leaves the file as it was.
func migrateV1(tx *bbolt.Tx) error {
	type entry struct{ k, v []byte }
	var markers []entry
	if times := tx.Bucket(v1DeliveryTimes); times != nil {
		old := tx.Bucket(bucketDeliveries)
		err := times.ForEach(func(k, _ []byte) error {
			if len(k) < 8 {
				return fmt.Errorf("malformed delivery time key %q", k)
			}
			if v := old.Get(k[8:]); v != nil {
				markers = append(markers, entry{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket(v1DeliveryTimes); err != nil {
			return err
		}
	}
	if tx.Bucket(bucketDeliveries) != nil {
		if err := tx.DeleteBucket(bucketDeliveries); err != nil {
			return err
		}
	}
	deliveries, err := tx.CreateBucket(bucketDeliveries)
	if err != nil {
		return err
	}
	deliveries.FillPercent = appendFillPercent
	for _, m := range markers { // the time index's keys are the new keys
		if err := deliveries.Put(m.k, m.v); err != nil {
			return err
		}
	}

	jobs, payloads := tx.Bucket(bucketJobs), tx.Bucket(v1Payloads)
	if jobs == nil {
		return nil
	}
	var rewritten []entry
	err = jobs.ForEach(func(k, v []byte) error {
		var j store.Job
		if err := decode(v, &j); err != nil {
			return fmt.Errorf("job %d: %w", btoi(k), err)
		}
		if payloads != nil {
			j.Payload = payloads.Get(k)
		}
		enc, err := encodeJob(j)
		if err != nil {
			return err
		}
		rewritten = append(rewritten, entry{bytes.Clone(k), enc})
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range rewritten {
		if err := jobs.Put(e.k, e.v); err != nil {
			return err
		}
	}
	if payloads != nil {
		return tx.DeleteBucket(v1Payloads)
	}
	return nil
}
