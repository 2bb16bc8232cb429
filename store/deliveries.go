package store

import (
	"bytes"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Delivery marks one webhook delivery as received, so that a redelivery
// (which keeps its X-GitHub-Delivery GUID) has no effect.
type Delivery struct {
	ID         string    `json:"id"` // X-GitHub-Delivery
	Event      string    `json:"event"`
	Action     string    `json:"action,omitempty"`
	Org        string    `json:"org,omitempty"`
	RequestID  int64     `json:"request_id,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	// Outcome says what patbot did with it, for example "queued" or
	// "ignored: org not configured".
	Outcome string `json:"outcome"`
	JobID   uint64 `json:"job_id,omitempty"`
}

// Job is work implied by an accepted delivery, kept until it is finished so
// that a crash never loses it.
type Job struct {
	ID         uint64    `json:"id"`
	DeliveryID string    `json:"delivery_id"`
	Event      string    `json:"event"`
	Action     string    `json:"action"`
	Org        string    `json:"org"`
	RequestID  int64     `json:"request_id"`
	Payload    []byte    `json:"-"` // the webhook JSON, byte for byte as received (stored apart, raw)
	EnqueuedAt time.Time `json:"enqueued_at"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error,omitempty"`
}

// AcceptDelivery records d and, when job is not nil, the job it implies, in
// one fsynced transaction. It reports false, and changes nothing, when d.ID
// was already recorded. Concurrent calls share commits (bbolt's Batch), which
// is what keeps a burst of deliveries fast without giving up fsync.
func (db *DB) AcceptDelivery(d Delivery, job *Job) (accepted bool, jobID uint64, err error) {
	if d.ID == "" {
		return false, 0, fmt.Errorf("store: accept delivery: empty delivery id")
	}
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = db.now()
	}
	// Batch may run this function more than once; it only assigns to the
	// outer variables, and a rolled-back run leaves nothing behind.
	err = db.bolt.Batch(func(tx *bolt.Tx) error {
		accepted, jobID = false, 0
		deliveries := tx.Bucket(bucketDeliveries)
		if deliveries.Get([]byte(d.ID)) != nil {
			return nil
		}
		rec := d
		if job != nil {
			jobs := tx.Bucket(bucketJobs)
			seq, err := jobs.NextSequence()
			if err != nil {
				return err
			}
			j := *job
			j.ID = seq
			j.DeliveryID = d.ID
			if j.EnqueuedAt.IsZero() {
				j.EnqueuedAt = d.ReceivedAt
			}
			if err := put(jobs, itob(seq), j); err != nil {
				return err
			}
			if err := tx.Bucket(bucketPayloads).Put(itob(seq), j.Payload); err != nil {
				return err
			}
			rec.JobID = seq
		}
		if err := put(deliveries, []byte(d.ID), rec); err != nil {
			return err
		}
		timeKey := append(itob(uint64(d.ReceivedAt.UnixNano())), d.ID...)
		if err := tx.Bucket(bucketDeliveryTimes).Put(timeKey, nil); err != nil {
			return err
		}
		accepted, jobID = true, rec.JobID
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("store: accept delivery %s: %w", d.ID, err)
	}
	return accepted, jobID, nil
}

// Delivery returns the marker of one delivery.
func (db *DB) Delivery(id string) (Delivery, error) {
	var d Delivery
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return get(tx.Bucket(bucketDeliveries), []byte(id), &d)
	})
	if err != nil {
		return Delivery{}, fmt.Errorf("store: delivery %s: %w", id, err)
	}
	return d, nil
}

// PruneDeliveries deletes up to max delivery markers received before cutoff,
// oldest first, and reports how many it deleted. Callers loop until it
// returns fewer than max, so that no single transaction grows large.
func (db *DB) PruneDeliveries(cutoff time.Time, max int) (int, error) {
	var n int
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		times := tx.Bucket(bucketDeliveryTimes)
		deliveries := tx.Bucket(bucketDeliveries)
		limit := itob(uint64(cutoff.UnixNano()))
		var keys [][]byte
		c := times.Cursor()
		// Collect first: deleting while advancing a cursor can skip keys.
		for k, _ := c.First(); k != nil && len(keys) < max && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := times.Delete(k); err != nil {
				return err
			}
			if err := deliveries.Delete(k[8:]); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune deliveries: %w", err)
	}
	return n, nil
}

// CountDeliveries is the number of delivery markers kept.
func (db *DB) CountDeliveries() (int, error) {
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketDeliveries).Stats().KeyN
		return nil
	})
	return n, err
}

// Job returns one unfinished job.
func (db *DB) Job(id uint64) (Job, error) {
	var j Job
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if err := get(tx.Bucket(bucketJobs), itob(id), &j); err != nil {
			return err
		}
		j.Payload = bytes.Clone(tx.Bucket(bucketPayloads).Get(itob(id)))
		return nil
	})
	if err != nil {
		return Job{}, fmt.Errorf("store: job %d: %w", id, err)
	}
	return j, nil
}

// JobIDs lists every unfinished job, oldest first.
func (db *DB) JobIDs() ([]uint64, error) {
	var ids []uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketJobs).ForEach(func(k, _ []byte) error {
			ids = append(ids, btoi(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: list jobs: %w", err)
	}
	return ids, nil
}

// FinishJob deletes a job whose work is done. Finishing an unknown job is
// not an error: the work is done either way.
func (db *DB) FinishJob(id uint64) error {
	err := db.bolt.Batch(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketPayloads).Delete(itob(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketJobs).Delete(itob(id))
	})
	if err != nil {
		return fmt.Errorf("store: finish job %d: %w", id, err)
	}
	return nil
}

// RecordJobFailure counts a failed attempt at a job and keeps its error.
func (db *DB) RecordJobFailure(id uint64, cause error) (Job, error) {
	var j Job
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		if err := get(jobs, itob(id), &j); err != nil {
			return err
		}
		j.Attempts++
		j.LastError = cause.Error()
		return put(jobs, itob(id), j)
	})
	if err != nil {
		return Job{}, fmt.Errorf("store: record failure of job %d: %w", id, err)
	}
	return j, nil
}
