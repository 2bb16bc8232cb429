package bolt

import (
	"bytes"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
)

// Timers live in three buckets: the records by ID, an index by due time
// (due, 8 bytes big-endian nanoseconds, then the ID) to find what is due
// without reading the rest, and an index by kind and key.
var (
	bucketTimers     = []byte("timers")      // id (8 bytes) -> store.Timer
	bucketTimersDue  = []byte("timers_due")  // due (8 bytes) + id (8 bytes) -> nothing
	bucketTimersKeys = []byte("timers_keys") // kind + 0x00 + key -> id (8 bytes)
)

func timerDueKey(t store.Timer) []byte {
	return append(itob(uint64(t.Due.UnixNano())), itob(t.ID)...)
}

func timerNameKey(kind, key string) []byte {
	return append(append([]byte(kind), 0), key...)
}

// SetTimer implements store.Timers.
func (db *DB) SetTimer(t store.Timer) (uint64, error) {
	if err := t.Valid(); err != nil {
		return 0, fmt.Errorf("store: set timer: %w", err)
	}
	var id uint64
	err := db.group(func(tx *bbolt.Tx) error {
		var err error
		id, err = setTimer(tx, t)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: set timer %s %s: %w", t.Kind, t.Key, err)
	}
	return id, nil
}

// setTimer writes t, replacing the timer of its kind and key, and returns
// its new ID.
func setTimer(tx *bbolt.Tx, t store.Timer) (uint64, error) {
	t.LeaseUntil, t.Attempts, t.LastError = time.Time{}, 0, ""
	if err := deleteTimer(tx, t.Kind, t.Key); err != nil {
		return 0, err
	}
	id, err := tx.Bucket(bucketTimers).NextSequence()
	if err != nil {
		return 0, err
	}
	t.ID = id
	return id, putTimer(tx, t, nil)
}

// putTimer writes t and its index entries; old is the record it replaces
// (nil for a new one), whose due entry goes.
func putTimer(tx *bbolt.Tx, t store.Timer, old *store.Timer) error {
	if old != nil {
		if err := tx.Bucket(bucketTimersDue).Delete(timerDueKey(*old)); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketTimersDue).Put(timerDueKey(t), nil); err != nil {
		return err
	}
	if err := tx.Bucket(bucketTimersKeys).Put(timerNameKey(t.Kind, t.Key), itob(t.ID)); err != nil {
		return err
	}
	return put(tx.Bucket(bucketTimers), itob(t.ID), t)
}

// deleteTimer removes the timer of kind and key, if any.
func deleteTimer(tx *bbolt.Tx, kind, key string) error {
	raw := tx.Bucket(bucketTimersKeys).Get(timerNameKey(kind, key))
	if raw == nil {
		return nil
	}
	return deleteTimerByID(tx, btoi(raw))
}

func deleteTimerByID(tx *bbolt.Tx, id uint64) error {
	var t store.Timer
	if err := get(tx.Bucket(bucketTimers), itob(id), &t); err != nil {
		return err
	}
	if err := tx.Bucket(bucketTimersDue).Delete(timerDueKey(t)); err != nil {
		return err
	}
	if err := tx.Bucket(bucketTimersKeys).Delete(timerNameKey(t.Kind, t.Key)); err != nil {
		return err
	}
	return tx.Bucket(bucketTimers).Delete(itob(id))
}

// CancelTimer implements store.Timers.
func (db *DB) CancelTimer(kind, key string) error {
	if err := db.group(func(tx *bbolt.Tx) error { return deleteTimer(tx, kind, key) }); err != nil {
		return fmt.Errorf("store: cancel timer %s %s: %w", kind, key, err)
	}
	return nil
}

// Timer implements store.Timers.
func (db *DB) Timer(kind, key string) (store.Timer, error) {
	var t store.Timer
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		raw := tx.Bucket(bucketTimersKeys).Get(timerNameKey(kind, key))
		if raw == nil {
			return store.ErrNotFound
		}
		return get(tx.Bucket(bucketTimers), raw, &t)
	})
	if err != nil {
		return store.Timer{}, fmt.Errorf("store: timer %s %s: %w", kind, key, err)
	}
	return t, nil
}

// ClaimDueTimers implements store.Timers.
func (db *DB) ClaimDueTimers(now time.Time, lease time.Duration, max int) ([]store.Timer, error) {
	var claimed []store.Timer
	err := db.group(func(tx *bbolt.Tx) error {
		claimed = claimed[:0]
		c := tx.Bucket(bucketTimersDue).Cursor()
		limit := itob(uint64(now.UnixNano()))
		var ids []uint64
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], limit) <= 0; k, _ = c.Next() {
			ids = append(ids, btoi(k[8:]))
		}
		for _, id := range ids {
			if len(claimed) == max {
				break
			}
			var t store.Timer
			if err := get(tx.Bucket(bucketTimers), itob(id), &t); err != nil {
				return err
			}
			if t.LeaseUntil.After(now) {
				continue // another runner holds it
			}
			t.LeaseUntil = now.Add(lease)
			t.Attempts++
			if err := put(tx.Bucket(bucketTimers), itob(id), t); err != nil {
				return err
			}
			claimed = append(claimed, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: claim due timers: %w", err)
	}
	return claimed, nil
}

// NextTimerDue implements store.Timers.
func (db *DB) NextTimerDue() (time.Time, error) {
	var next time.Time
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		now := db.now()
		c := tx.Bucket(bucketTimersDue).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			var t store.Timer
			if err := get(tx.Bucket(bucketTimers), k[8:], &t); err != nil {
				return err
			}
			free := t.Due
			if t.LeaseUntil.After(now) {
				free = t.LeaseUntil // held: free again when its lease lapses
			}
			if next.IsZero() || free.Before(next) {
				next = free
			}
			if free.Equal(t.Due) {
				return nil // later ones are due later still
			}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("store: next timer: %w", err)
	}
	return next, nil
}

// FinishTimer implements store.Timers.
func (db *DB) FinishTimer(id uint64) error {
	if err := db.group(func(tx *bbolt.Tx) error { return deleteTimerByID(tx, id) }); err != nil {
		return fmt.Errorf("store: finish timer %d: %w", id, err)
	}
	return nil
}

// RetryTimer implements store.Timers.
func (db *DB) RetryTimer(id uint64, due time.Time, cause error) error {
	err := db.group(func(tx *bbolt.Tx) error {
		var t store.Timer
		if err := get(tx.Bucket(bucketTimers), itob(id), &t); err != nil {
			return err
		}
		old := t
		t.Due, t.LeaseUntil = due, time.Time{}
		if cause != nil {
			t.LastError = cause.Error()
		}
		return putTimer(tx, t, &old)
	})
	if err != nil {
		return fmt.Errorf("store: retry timer %d: %w", id, err)
	}
	return nil
}
