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
// was already recorded. Concurrent deliveries share commits: see commitLoop.
func (db *DB) AcceptDelivery(d Delivery, job *Job) (accepted bool, jobID uint64, err error) {
	if d.ID == "" {
		return false, 0, fmt.Errorf("store: accept delivery: empty delivery id")
	}
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = db.now()
	}
	r := &acceptRequest{d: d, job: job}
	err = db.group(func(tx *bolt.Tx) error {
		r.accepted, r.jobID = false, 0 // a re-run starts afresh
		return acceptIn(tx, r)
	})
	if err != nil {
		return false, 0, fmt.Errorf("store: accept delivery %s: %w", d.ID, err)
	}
	return r.accepted, r.jobID, nil
}

// acceptRequest is one delivery and what became of it.
type acceptRequest struct {
	d        Delivery
	job      *Job
	accepted bool
	jobID    uint64
}

// acceptIn records one delivery (and its job) in tx, unless it is there.
func acceptIn(tx *bolt.Tx, r *acceptRequest) error {
	d := r.d
	deliveries := tx.Bucket(bucketDeliveries)
	if deliveries.Get([]byte(d.ID)) != nil {
		return nil
	}
	if r.job != nil {
		jobs := tx.Bucket(bucketJobs)
		seq, err := jobs.NextSequence()
		if err != nil {
			return err
		}
		j := *r.job
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
		d.JobID = seq
	}
	if err := put(deliveries, []byte(d.ID), d); err != nil {
		return err
	}
	timeKey := append(itob(uint64(d.ReceivedAt.UnixNano())), d.ID...)
	if err := tx.Bucket(bucketDeliveryTimes).Put(timeKey, nil); err != nil {
		return err
	}
	r.accepted, r.jobID = true, d.JobID
	return nil
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
		guids := make([][]byte, len(keys))
		for i, k := range keys {
			guids[i] = k[8:]
		}
		n = len(keys)
		if err := deleteKeys(times, keys); err != nil {
			return err
		}
		return deleteKeys(deliveries, guids)
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
	err := db.group(func(tx *bolt.Tx) error {
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

// EnqueueJob records a job that no delivery brought (a card to bring up to
// date, say), for the workers to run.
func (db *DB) EnqueueJob(j Job) (uint64, error) {
	if j.EnqueuedAt.IsZero() {
		j.EnqueuedAt = db.now()
	}
	err := db.group(func(tx *bolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		seq, err := jobs.NextSequence()
		if err != nil {
			return err
		}
		j.ID = seq
		if err := put(jobs, itob(seq), j); err != nil {
			return err
		}
		return tx.Bucket(bucketPayloads).Put(itob(seq), j.Payload)
	})
	if err != nil {
		return 0, fmt.Errorf("store: enqueue job: %w", err)
	}
	return j.ID, nil
}
