package bolt

import (
	"bytes"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
)

var _ store.Exporter = (*DB)(nil)

// ExportAll implements store.Exporter.
func (db *DB) ExportAll() (store.Export, error) {
	e := store.Export{Cursors: map[string]uint64{}}
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		each := func(bucket []byte, f func(k, v []byte) error) error {
			if b := tx.Bucket(bucket); b != nil { // a file from before timers lacks them
				return b.ForEach(f)
			}
			return nil
		}
		err := each(bucketDeliveries, func(_, v []byte) error {
			var d store.Delivery
			err := decode(v, &d)
			e.Deliveries = append(e.Deliveries, d)
			return err
		})
		if err == nil {
			err = each(bucketJobs, func(_, v []byte) error {
				j, err := decodeJob(v)
				e.Jobs = append(e.Jobs, j)
				return err
			})
		}
		if err == nil {
			err = each(bucketTimers, func(_, v []byte) error {
				var t store.Timer
				err := decode(v, &t)
				e.Timers = append(e.Timers, t)
				return err
			})
		}
		if err == nil {
			err = each(bucketRequests, func(_, v []byte) error {
				var r store.Request
				err := decode(v, &r)
				e.Requests = append(e.Requests, r)
				return err
			})
		}
		if err == nil {
			err = each(bucketAudit, func(_, v []byte) error {
				var a store.AuditEvent
				err := decode(v, &a)
				e.Audit = append(e.Audit, a)
				return err
			})
		}
		if err == nil {
			err = each(bucketLinks, func(_, v []byte) error {
				var l store.Link
				err := decode(v, &l)
				e.Links = append(e.Links, l)
				return err
			})
		}
		if err == nil {
			err = each(bucketMeta, func(k, v []byte) error {
				if name, ok := bytes.CutPrefix(k, []byte("cursor:")); ok && len(v) == 8 {
					e.Cursors[string(name)] = btoi(v)
				}
				return nil
			})
		}
		return err
	})
	if err != nil {
		return store.Export{}, fmt.Errorf("store: export: %w", err)
	}
	return e, nil
}
