package bolt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
)

func requestKey(org string, id int64) []byte {
	return append(append([]byte(strings.ToLower(org)), 0), itob(uint64(id))...)
}

// Request returns the record of one request.
func (db *DB) Request(org string, id int64) (store.Request, error) {
	var r store.Request
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return get(tx.Bucket(bucketRequests), requestKey(org, id), &r)
	})
	if err != nil {
		return store.Request{}, fmt.Errorf("store: request %s/%d: %w", org, id, err)
	}
	return r, nil
}

// UpdateRequest reads the record of a request (a zero Request with Org and
// ID set when there is none), lets change modify it, and writes it back,
// atomically, in a commit concurrent writers share. An error from change
// aborts without writing. change must not do I/O, and may run more than
// once, so it may only modify r and assign to variables of its caller.
//
// The record is changed and encoded before the commit, which then only
// checks that nobody wrote it meanwhile (and changes it again if someone
// did): the committer, which every writer waits for, does little.
func (db *DB) UpdateRequest(org string, id int64, change func(r *store.Request, exists bool) error) (store.Request, error) {
	return db.updateRequest(org, id, change, nil)
}

// UpdateRequestWithTimers implements store.Requests.
func (db *DB) UpdateRequestWithTimers(org string, id int64, timers []store.Timer, change func(r *store.Request, exists bool) error) (store.Request, []uint64, error) {
	if err := store.ValidTimers(timers); err != nil {
		return store.Request{}, nil, fmt.Errorf("store: update request %s/%d: %w", org, id, err)
	}
	var ids []uint64
	r, err := db.updateRequest(org, id, change, func(tx *bbolt.Tx) error {
		ids = ids[:0]
		for _, t := range timers {
			id, err := setTimer(tx, t)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return store.Request{}, nil, err
	}
	return r, ids, nil
}

func (db *DB) updateRequest(org string, id int64, change func(r *store.Request, exists bool) error, also func(*bbolt.Tx) error) (store.Request, error) {
	key := requestKey(org, id)
	var r store.Request
	var read, record []byte // the record as read and as it will be written
	prepared := false       // record is change applied to read
	prepare := func(raw []byte) error {
		prepared, r = false, store.Request{Org: strings.ToLower(org), ID: id}
		if raw != nil {
			if err := decode(raw, &r); err != nil {
				return err
			}
		}
		if err := change(&r, raw != nil); err != nil {
			return err
		}
		r.Updated = db.now()
		var err error
		if record, err = json.Marshal(r); err != nil {
			return err
		}
		read, prepared = raw, true
		return nil
	}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return prepare(bytes.Clone(tx.Bucket(bucketRequests).Get(key)))
	})
	if err == nil {
		err = db.group(func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucketRequests)
			if now := b.Get(key); !prepared || !bytes.Equal(now, read) || (now == nil) != (read == nil) {
				if err := prepare(bytes.Clone(now)); err != nil {
					return err
				}
			}
			if also != nil {
				if err := also(tx); err != nil {
					return err
				}
			}
			return b.Put(key, record)
		})
	}
	if err != nil {
		return store.Request{}, fmt.Errorf("store: update request %s/%d: %w", org, id, err)
	}
	return r, nil
}

// Requests lists the records of one org ("" for every org) whose state is
// one of states (any state when none are given).
func (db *DB) Requests(org string, states ...store.State) ([]store.Request, error) {
	var out []store.Request
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRequests).Cursor()
		prefix := []byte(nil)
		if org != "" {
			prefix = append([]byte(strings.ToLower(org)), 0)
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r store.Request
			if err := decode(v, &r); err != nil {
				return fmt.Errorf("decode %q: %w", k, err)
			}
			if len(states) == 0 || slices.Contains(states, r.State) {
				out = append(out, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	return out, nil
}

// PendingStats counts the requests awaiting a decision (pending or
// deciding) and returns when the oldest of them was made.
func (db *DB) PendingStats() (n int, oldest time.Time, err error) {
	err = db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRequests).ForEach(func(_, v []byte) error {
			var r struct {
				State     store.State `json:"state"`
				CreatedAt time.Time   `json:"created_at"`
			}
			if err := decode(v, &r); err != nil {
				return err
			}
			if r.State == store.StatePending || r.State == store.StateDeciding {
				n++
				if oldest.IsZero() || r.CreatedAt.Before(oldest) {
					oldest = r.CreatedAt
				}
			}
			return nil
		})
	})
	return n, oldest, err
}

// PruneRequests deletes up to max records of requests that reached a final
// state before cutoff, and reports how many it deleted. The audit trail
// keeps what was decided.
func (db *DB) PruneRequests(cutoff time.Time, max int) (int, error) {
	n, err := db.pruneBucket(bucketRequests, max, func(v []byte) (bool, bool, error) {
		var r struct {
			State   store.State `json:"state"`
			Updated time.Time   `json:"updated"`
		}
		err := decode(v, &r)
		return r.State.Final() && r.Updated.Before(cutoff), false, err
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune requests: %w", err)
	}
	return n, nil
}
