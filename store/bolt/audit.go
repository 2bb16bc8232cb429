package bolt

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
)

// AppendAudit adds an event to the audit trail.
func (db *DB) AppendAudit(e store.AuditEvent) error {
	if e.At.IsZero() {
		e.At = db.now()
	}
	e.Org = strings.ToLower(e.Org)
	// A re-run takes the same sequence number in the fresh transaction.
	err := db.group(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		b.FillPercent = appendFillPercent
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		return put(b, itob(seq), e)
	})
	if err != nil {
		return fmt.Errorf("store: append audit event: %w", err)
	}
	return nil
}

// AuditEvents returns audit events in the order they happened.
func (db *DB) AuditEvents(f store.AuditFilter) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Seek(itob(f.After + 1)); k != nil; k, v = c.Next() {
			var e store.AuditEvent
			if err := decode(v, &e); err != nil {
				return err
			}
			if (f.Org != "" && !strings.EqualFold(f.Org, e.Org)) || (!f.Since.IsZero() && e.At.Before(f.Since)) ||
				(!f.Until.IsZero() && !e.At.Before(f.Until)) || (len(f.Kinds) > 0 && !slices.Contains(f.Kinds, e.Kind)) {
				continue
			}
			out = append(out, e)
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: audit events: %w", err)
	}
	return out, nil
}

// PruneAudit deletes up to max audit events older than cutoff, oldest
// first, and reports how many it deleted.
func (db *DB) PruneAudit(cutoff time.Time, max int) (int, error) {
	n, err := db.pruneBucket(bucketAudit, max, func(v []byte) (bool, bool, error) {
		var e struct {
			At time.Time `json:"at"`
		}
		err := decode(v, &e)
		old := e.At.Before(cutoff)
		return old, !old, err // events are appended in time order
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune audit: %w", err)
	}
	return n, nil
}

// pruneBucket deletes, in key order, up to max records that old says are
// to go, until it says to stop, in one transaction; it reports how many.
func (db *DB) pruneBucket(bucket []byte, max int, old func(v []byte) (prune, stop bool, err error)) (int, error) {
	var n int
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		var keys [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(keys) < max; k, v = c.Next() {
			prune, stop, err := old(v)
			if err != nil {
				return err
			}
			if stop {
				break
			}
			if prune {
				keys = append(keys, bytes.Clone(k))
			}
		}
		n = len(keys)
		return deleteKeys(b, keys)
	})
	return n, err
}

// Cursor returns how far the reader called name has read (0 before it
// starts): the audit stream keeps its place in the store, so that a restart
// neither repeats nor skips.
func (db *DB) Cursor(name string) (uint64, error) {
	var v uint64
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		if raw := tx.Bucket(bucketMeta).Get(cursorKey(name)); len(raw) == 8 {
			v = btoi(raw)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: cursor %s: %w", name, err)
	}
	return v, nil
}

// SetCursor records how far the reader called name has read.
func (db *DB) SetCursor(name string, v uint64) error {
	err := db.group(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(cursorKey(name), itob(v)) })
	if err != nil {
		return fmt.Errorf("store: set cursor %s: %w", name, err)
	}
	return nil
}

func cursorKey(name string) []byte { return []byte("cursor:" + name) }
