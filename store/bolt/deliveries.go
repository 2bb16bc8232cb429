package bolt

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
)

// AcceptDelivery records d and, when job is not nil, the job it implies, in
// one fsynced transaction. It reports false, and changes nothing, when d.ID
// was already recorded. Concurrent deliveries share commits: see commitLoop.
func (db *DB) AcceptDelivery(d store.Delivery, job *store.Job) (accepted bool, jobID uint64, err error) {
	if d.ID == "" {
		return false, 0, fmt.Errorf("store: accept delivery: empty delivery id")
	}
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = db.now()
	}
	// Everything is encoded here, in the caller's goroutine, so that the
	// committer, which every write waits for, only checks and puts.
	var jobRecord []byte
	if job != nil {
		j := *job
		j.ID, j.DeliveryID = db.nextJobID(), d.ID
		if j.EnqueuedAt.IsZero() {
			j.EnqueuedAt = d.ReceivedAt
		}
		if jobRecord, err = encodeJob(j); err != nil {
			return false, 0, fmt.Errorf("store: accept delivery %s: %w", d.ID, err)
		}
		d.JobID = j.ID
	}
	marker, err := json.Marshal(d)
	if err != nil {
		return false, 0, fmt.Errorf("store: accept delivery %s: %w", d.ID, err)
	}
	at := d.ReceivedAt.UnixNano()
	key := deliveryKey(at, d.ID)

	err = db.group(func(tx *bbolt.Tx) error {
		accepted = false // a re-run starts afresh
		if _, dup := db.uncommitted[d.ID]; dup || db.seen.has(d.ID) {
			return nil
		}
		if jobRecord != nil {
			if err := putJob(tx, d.JobID, jobRecord); err != nil {
				return err
			}
		}
		deliveries := tx.Bucket(bucketDeliveries)
		deliveries.FillPercent = appendFillPercent
		if err := deliveries.Put(key, marker); err != nil {
			return err
		}
		db.uncommitted[d.ID] = at // group runs fn on the committer goroutine
		accepted = true
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("store: accept delivery %s: %w", d.ID, err)
	}
	if !accepted {
		return false, 0, nil
	}
	return true, d.JobID, nil
}

// deliveryKey orders markers by the time they were received.
func deliveryKey(receivedAt int64, guid string) []byte {
	return append(itob(uint64(receivedAt)), guid...)
}

// deliveryIndex maps each kept delivery GUID to the time in its key.
type deliveryIndex struct {
	mu    sync.RWMutex
	guids map[string]int64
}

// load indexes every marker of the deliveries bucket (b may be nil).
func (x *deliveryIndex) load(b *bbolt.Bucket) error {
	if b == nil {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return b.ForEach(func(k, _ []byte) error {
		if len(k) < 8 {
			return fmt.Errorf("malformed delivery key %q", k)
		}
		x.guids[string(k[8:])] = int64(btoi(k[:8]))
		return nil
	})
}

func (x *deliveryIndex) has(guid string) bool {
	_, ok := x.lookup(guid)
	return ok
}

func (x *deliveryIndex) lookup(guid string) (receivedAt int64, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	receivedAt, ok = x.guids[guid]
	return receivedAt, ok
}

func (x *deliveryIndex) add(guids map[string]int64) {
	if len(guids) == 0 {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	maps.Copy(x.guids, guids)
}

func (x *deliveryIndex) remove(guids []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, g := range guids {
		delete(x.guids, g)
	}
}

func (x *deliveryIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.guids)
}

// Delivery returns the marker of one delivery.
func (db *DB) Delivery(id string) (store.Delivery, error) {
	var d store.Delivery
	at, ok := db.seen.lookup(id)
	if !ok {
		return store.Delivery{}, fmt.Errorf("store: delivery %s: %w", id, store.ErrNotFound)
	}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return get(tx.Bucket(bucketDeliveries), deliveryKey(at, id), &d)
	})
	if err != nil {
		return store.Delivery{}, fmt.Errorf("store: delivery %s: %w", id, err)
	}
	return d, nil
}

// PruneDeliveries deletes up to max delivery markers received before cutoff,
// oldest first, and reports how many it deleted. Callers loop until it
// returns fewer than max, so that no single transaction grows large.
func (db *DB) PruneDeliveries(cutoff time.Time, max int) (int, error) {
	var guids []string
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		guids = guids[:0]
		deliveries := tx.Bucket(bucketDeliveries)
		limit := itob(uint64(cutoff.UnixNano()))
		var keys [][]byte
		c := deliveries.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < max && bytes.Compare(k[:8], limit) < 0; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
			guids = append(guids, string(k[8:]))
		}
		return deleteKeys(deliveries, keys)
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune deliveries: %w", err)
	}
	db.seen.remove(guids)
	return len(guids), nil
}

// CountDeliveries is the number of delivery markers kept.
func (db *DB) CountDeliveries() (int, error) {
	return db.seen.len(), nil
}

// Job returns one unfinished job.
func (db *DB) Job(id uint64) (store.Job, error) {
	var j store.Job
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketJobs).Get(itob(id))
		if raw == nil {
			return store.ErrNotFound
		}
		var err error
		j, err = decodeJob(raw)
		return err
	})
	if err != nil {
		return store.Job{}, fmt.Errorf("store: job %d: %w", id, err)
	}
	return j, nil
}

// JobIDs lists every unfinished job, oldest first.
func (db *DB) JobIDs() ([]uint64, error) {
	var ids []uint64
	err := db.bolt.View(func(tx *bbolt.Tx) error {
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
	err := db.group(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketJobs).Delete(itob(id))
	})
	if err != nil {
		return fmt.Errorf("store: finish job %d: %w", id, err)
	}
	db.leasesMu.Lock()
	delete(db.leases, id)
	db.leasesMu.Unlock()
	return nil
}

// RecordJobFailure counts a failed attempt at a job and keeps its error.
func (db *DB) RecordJobFailure(id uint64, cause error) (store.Job, error) {
	var j store.Job
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		jobs := tx.Bucket(bucketJobs)
		raw := jobs.Get(itob(id))
		if raw == nil {
			return store.ErrNotFound
		}
		var err error
		if j, err = decodeJob(raw); err != nil {
			return err
		}
		j.Attempts++
		j.LastError = cause.Error()
		enc, err := encodeJob(j)
		if err != nil {
			return err
		}
		return jobs.Put(itob(id), enc)
	})
	if err != nil {
		return store.Job{}, fmt.Errorf("store: record failure of job %d: %w", id, err)
	}
	return j, nil
}

// EnqueueJob records a job that no delivery brought (a card to bring up to
// date, say), for the workers to run.
func (db *DB) EnqueueJob(j store.Job) (uint64, error) {
	if j.EnqueuedAt.IsZero() {
		j.EnqueuedAt = db.now()
	}
	j.ID = db.nextJobID()
	record, err := encodeJob(j)
	if err == nil {
		err = db.group(func(tx *bbolt.Tx) error { return putJob(tx, j.ID, record) })
	}
	if err != nil {
		return 0, fmt.Errorf("store: enqueue job: %w", err)
	}
	return j.ID, nil
}

// nextJobID numbers jobs in the order they come. Numbers are handed out
// before the commit, so that records are encoded outside it (a duplicate
// delivery leaves a gap); the bucket's sequence keeps the highest number
// stored, for the next start.
func (db *DB) nextJobID() uint64 { return db.jobSeq.Add(1) }

// putJob stores an encoded job.
func putJob(tx *bbolt.Tx, id uint64, record []byte) error {
	jobs := tx.Bucket(bucketJobs)
	jobs.FillPercent = appendFillPercent
	if id > jobs.Sequence() {
		if err := jobs.SetSequence(id); err != nil {
			return err
		}
	}
	return jobs.Put(itob(id), record)
}

// encodeJob lays a job out as the length of its JSON header (uvarint), the
// header, then the payload as it is: a payload is stored without being
// encoded again.
func encodeJob(j store.Job) ([]byte, error) {
	header, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, binary.MaxVarintLen64+len(header)+len(j.Payload))
	out = binary.AppendUvarint(out, uint64(len(header)))
	out = append(out, header...)
	return append(out, j.Payload...), nil
}

// decodeJob reads what encodeJob wrote, copying it out of bbolt's memory.
func decodeJob(raw []byte) (store.Job, error) {
	n, k := binary.Uvarint(raw)
	if k <= 0 || n > uint64(len(raw)-k) {
		return store.Job{}, errors.New("malformed job record")
	}
	var j store.Job
	if err := decode(raw[k:k+int(n)], &j); err != nil {
		return store.Job{}, err
	}
	j.Payload = bytes.Clone(raw[k+int(n):])
	return j, nil
}

// ClaimJob implements store.Jobs. A bbolt file has one process, so leases
// are kept in memory: claiming costs no write (nor fsync), and a restart
// frees them all, as it should.
func (db *DB) ClaimJob(id uint64, holder string, lease time.Duration) (store.Job, error) {
	j, err := db.Job(id)
	if err != nil {
		return store.Job{}, fmt.Errorf("store: claim job %d: %w", id, store.ErrNotFound)
	}
	db.leasesMu.Lock()
	defer db.leasesMu.Unlock()
	now := db.now()
	if l, ok := db.leases[id]; ok && l.holder != holder && l.until.After(now) {
		return store.Job{}, fmt.Errorf("store: claim job %d: %w", id, store.ErrHeld)
	}
	l := jobLease{holder: holder, until: now.Add(lease)}
	db.leases[id] = l
	j.Holder, j.LeaseUntil = l.holder, l.until
	return j, nil
}

// jobLease is a runner's claim of a job.
type jobLease struct {
	holder string
	until  time.Time
}

// OrphanJobs implements store.Jobs. Unfinished jobs are few: a scan finds
// them.
func (db *DB) OrphanJobs(lease time.Duration, max int) ([]uint64, error) {
	var ids []uint64
	now := db.now()
	db.leasesMu.Lock()
	defer db.leasesMu.Unlock()
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		live := map[uint64]bool{}
		err := tx.Bucket(bucketJobs).ForEach(func(k, v []byte) error {
			id := btoi(k)
			live[id] = true
			l, held := db.leases[id]
			var free bool
			if held {
				free = !l.until.After(now)
			} else {
				j, err := decodeJob(v)
				if err != nil {
					return err
				}
				free = !j.EnqueuedAt.Add(lease).After(now)
			}
			if free && len(ids) < max {
				ids = append(ids, id)
			}
			return nil
		})
		for id := range db.leases { // finished jobs' leases go
			if !live[id] {
				delete(db.leases, id)
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: orphan jobs: %w", err)
	}
	return ids, nil
}

// CountJobs implements store.Jobs.
func (db *DB) CountJobs() (int, error) {
	n := 0
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketJobs).Stats().KeyN
		return nil
	})
	return n, err
}
