package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patbot/patbot/store"
)

// AcceptDelivery implements store.Deliveries: the marker, and the job only
// when the marker is new, in a commit deliveries arriving together share
// (see accept.go).
func (db *DB) AcceptDelivery(d store.Delivery, job *store.Job) (accepted bool, jobID uint64, err error) {
	if d.ID == "" {
		return false, 0, errors.New("store: accept delivery: empty delivery id")
	}
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = db.now()
	}
	d.JobID = 0
	marker, err := json.Marshal(d)
	if err != nil {
		return false, 0, fmt.Errorf("store: accept delivery %s: %w", d.ID, err)
	}
	var jobRecord, payload []byte
	if job != nil {
		j := *job
		j.DeliveryID = d.ID
		if j.EnqueuedAt.IsZero() {
			j.EnqueuedAt = d.ReceivedAt
		}
		payload = j.Payload                               // stored as it is, beside the record
		if jobRecord, err = json.Marshal(j); err != nil { // Payload is not in the JSON
			return false, 0, fmt.Errorf("store: accept delivery %s: %w", d.ID, err)
		}
	}
	res := db.accept(d.ID, d.ReceivedAt, marker, jobRecord, payload)
	if res.err != nil {
		return false, 0, fmt.Errorf("store: accept delivery %s: %w", d.ID, res.err)
	}
	if res.inserted == 0 {
		return false, 0, nil // a redelivery: nothing changed
	}
	if res.jobID != nil {
		jobID = uint64(*res.jobID)
	}
	return true, jobID, nil
}

// Delivery implements store.Deliveries.
func (db *DB) Delivery(id string) (store.Delivery, error) {
	ctx, cancel := op()
	defer cancel()
	var d store.Delivery
	var jobID *int64
	err := db.pool.QueryRow(ctx, `SELECT record, job_id FROM deliveries WHERE id = $1`, id).Scan(&d, &jobID)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("store: delivery %s: %w", id, notFound(err))
	}
	if jobID != nil {
		d.JobID = uint64(*jobID)
	}
	return d, nil
}

// PruneDeliveries implements store.Deliveries.
func (db *DB) PruneDeliveries(cutoff time.Time, max int) (int, error) {
	return db.prune("deliveries", `DELETE FROM deliveries WHERE id IN
		(SELECT id FROM deliveries WHERE received_at < $1 ORDER BY received_at LIMIT $2)`, cutoff, max)
}

// prune runs a bounded delete and reports how many rows went.
func (db *DB) prune(what, sql string, cutoff time.Time, max int) (int, error) {
	ctx, cancel := op()
	defer cancel()
	tag, err := db.pool.Exec(ctx, sql, cutoff, max)
	if err != nil {
		return 0, fmt.Errorf("store: prune %s: %w", what, err)
	}
	return int(tag.RowsAffected()), nil
}

// CountDeliveries implements store.Deliveries.
func (db *DB) CountDeliveries() (int, error) {
	ctx, cancel := op()
	defer cancel()
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM deliveries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count deliveries: %w", err)
	}
	return n, nil
}

// insertJob records a job: its JSON record, and its payload apart.
func insertJob(ctx context.Context, tx pgx.Tx, j store.Job) (uint64, error) {
	record, err := json.Marshal(j)
	if err != nil {
		return 0, err
	}
	var id uint64
	err = tx.QueryRow(ctx, `INSERT INTO jobs (record, payload, enqueued_at) VALUES ($1, $2, $3) RETURNING id`, record, j.Payload, j.EnqueuedAt).Scan(&id)
	return id, err
}

// EnqueueJob implements store.Jobs.
func (db *DB) EnqueueJob(j store.Job) (uint64, error) {
	if j.EnqueuedAt.IsZero() {
		j.EnqueuedAt = db.now()
	}
	var id uint64
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) (err error) {
		id, err = insertJob(ctx, tx, j)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: enqueue job: %w", err)
	}
	return id, nil
}

func scanJob(row pgx.Row) (store.Job, error) {
	var j store.Job
	var id uint64
	var payload []byte
	if err := row.Scan(&id, &j, &payload); err != nil {
		return store.Job{}, err
	}
	j.ID, j.Payload = id, payload
	return j, nil
}

// Job implements store.Jobs.
func (db *DB) Job(id uint64) (store.Job, error) {
	ctx, cancel := op()
	defer cancel()
	j, err := scanJob(db.pool.QueryRow(ctx, `SELECT id, record, payload FROM jobs WHERE id = $1`, id))
	if err != nil {
		return store.Job{}, fmt.Errorf("store: job %d: %w", id, notFound(err))
	}
	return j, nil
}

// JobIDs implements store.Jobs.
func (db *DB) JobIDs() ([]uint64, error) {
	ctx, cancel := op()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT id FROM jobs ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: job ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uint64])
	if err != nil {
		return nil, fmt.Errorf("store: job ids: %w", err)
	}
	return ids, nil
}

// FinishJob implements store.Jobs.
func (db *DB) FinishJob(id uint64) error {
	ctx, cancel := op()
	defer cancel()
	if _, err := db.pool.Exec(ctx, `DELETE FROM jobs WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: finish job %d: %w", id, err)
	}
	return nil
}

// RecordJobFailure implements store.Jobs.
func (db *DB) RecordJobFailure(id uint64, cause error) (store.Job, error) {
	var j store.Job
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		var err error
		if j, err = scanJob(tx.QueryRow(ctx, `SELECT id, record, payload FROM jobs WHERE id = $1 FOR UPDATE`, id)); err != nil {
			return notFound(err)
		}
		j.Attempts++
		j.LastError = cause.Error()
		record, err := json.Marshal(j) // Payload is not in the JSON
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE jobs SET record = $2 WHERE id = $1`, id, record)
		return err
	})
	if err != nil {
		return store.Job{}, fmt.Errorf("store: record failure of job %d: %w", id, err)
	}
	return j, nil
}

// ClaimJob implements store.Jobs. The lease is measured by PostgreSQL's
// clock (a test's injected clock instead), so that replicas whose clocks
// differ agree.
func (db *DB) ClaimJob(id uint64, holder string, lease time.Duration) (store.Job, error) {
	ctx, cancel := op()
	defer cancel()
	var j store.Job
	var jid uint64
	var payload []byte
	err := db.pool.QueryRow(ctx, `UPDATE jobs SET holder = $2, lease_until = coalesce($4::timestamptz, now()) + $3 * interval '1 microsecond'
		WHERE id = $1 AND (holder IS NULL OR holder = $2 OR lease_until <= coalesce($4::timestamptz, now()))
		RETURNING id, record, payload, holder, lease_until`, id, holder, lease.Microseconds(), db.clock()).Scan(&jid, &j, &payload, &j.Holder, &j.LeaseUntil)
	if errors.Is(err, pgx.ErrNoRows) {
		var exists bool
		if err = db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)`, id).Scan(&exists); err == nil {
			err = store.ErrNotFound
			if exists {
				err = store.ErrHeld
			}
		}
	}
	if err != nil {
		return store.Job{}, fmt.Errorf("store: claim job %d: %w", id, err)
	}
	j.ID, j.Payload = jid, payload
	return j, nil
}

// OrphanJobs implements store.Jobs.
func (db *DB) OrphanJobs(lease time.Duration, max int) ([]uint64, error) {
	ctx, cancel := op()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT id FROM jobs WHERE
		holder IS NULL AND enqueued_at <= coalesce($1::timestamptz, now()) - $2 * interval '1 microsecond'
		OR holder IS NOT NULL AND lease_until <= coalesce($1::timestamptz, now())
		ORDER BY id LIMIT $3`, db.clock(), lease.Microseconds(), max)
	if err != nil {
		return nil, fmt.Errorf("store: orphan jobs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uint64])
	if err != nil {
		return nil, fmt.Errorf("store: orphan jobs: %w", err)
	}
	return ids, nil
}

// CountJobs implements store.Jobs.
func (db *DB) CountJobs() (int, error) {
	ctx, cancel := op()
	defer cancel()
	var n int
	if err := db.pool.QueryRow(ctx, `SELECT count(*) FROM jobs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count jobs: %w", err)
	}
	return n, nil
}

// Request implements store.Requests.
func (db *DB) Request(org string, id int64) (store.Request, error) {
	ctx, cancel := op()
	defer cancel()
	var r store.Request
	err := db.pool.QueryRow(ctx, `SELECT record FROM requests WHERE org = $1 AND id = $2`, strings.ToLower(org), id).Scan(&r)
	if err != nil {
		return store.Request{}, fmt.Errorf("store: request %s/%d: %w", org, id, notFound(err))
	}
	return r, nil
}

// UpdateRequest implements store.Requests.
func (db *DB) UpdateRequest(org string, id int64, change func(r *store.Request, exists bool) error) (store.Request, error) {
	return db.updateRequest(org, id, change, nil)
}

// UpdateRequestWithTimers implements store.Requests.
func (db *DB) UpdateRequestWithTimers(org string, id int64, timers []store.Timer, change func(r *store.Request, exists bool) error) (store.Request, []uint64, error) {
	if err := store.ValidTimers(timers); err != nil {
		return store.Request{}, nil, fmt.Errorf("store: update request %s/%d: %w", org, id, err)
	}
	var ids []uint64
	r, err := db.updateRequest(org, id, change, func(ctx context.Context, tx pgx.Tx) error {
		ids = ids[:0]
		for _, t := range timers {
			id, err := setTimer(ctx, tx, t)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return r, ids, err
}

// updateRequest reads the record under a row lock, so that concurrent
// changes of one request are serialized, and writes it back; a record
// another transaction created meanwhile makes it start again.
func (db *DB) updateRequest(org string, id int64, change func(r *store.Request, exists bool) error, also func(context.Context, pgx.Tx) error) (store.Request, error) {
	org = strings.ToLower(org)
	var r store.Request
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		r = store.Request{Org: org, ID: id}
		err := tx.QueryRow(ctx, `SELECT record FROM requests WHERE org = $1 AND id = $2 FOR UPDATE`, org, id).Scan(&r)
		exists := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := change(&r, exists); err != nil {
			return err
		}
		r.Org, r.ID, r.Updated = org, id, db.now()
		record, err := json.Marshal(r)
		if err != nil {
			return err
		}
		var createdAt *time.Time
		if !r.CreatedAt.IsZero() {
			createdAt = &r.CreatedAt
		}
		if exists {
			_, err = tx.Exec(ctx, `UPDATE requests SET state = $3, created_at = $4, updated = $5, record = $6 WHERE org = $1 AND id = $2`,
				org, id, string(r.State), createdAt, r.Updated, record)
		} else {
			var tag interface{ RowsAffected() int64 }
			tag, err = tx.Exec(ctx, `INSERT INTO requests (org, id, state, created_at, updated, record) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
				org, id, string(r.State), createdAt, r.Updated, record)
			if err == nil && tag.RowsAffected() == 0 {
				return errRetry // created meanwhile: change it as it now is
			}
		}
		if err != nil {
			return err
		}
		if also != nil {
			return also(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return store.Request{}, fmt.Errorf("store: update request %s/%d: %w", org, id, err)
	}
	return r, nil
}

// Requests implements store.Requests.
func (db *DB) Requests(org string, states ...store.State) ([]store.Request, error) {
	ctx, cancel := op()
	defer cancel()
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = string(s)
	}
	rows, err := db.pool.Query(ctx, `SELECT record FROM requests WHERE ($1 = '' OR org = $1) AND (cardinality($2::text[]) = 0 OR state = ANY($2)) ORDER BY org, id`,
		strings.ToLower(org), names)
	if err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[store.Request])
	if err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	return out, nil
}

// PendingStats implements store.Requests.
func (db *DB) PendingStats() (n int, oldest time.Time, err error) {
	ctx, cancel := op()
	defer cancel()
	var min *time.Time
	err = db.pool.QueryRow(ctx, `SELECT count(*), min(created_at) FROM requests WHERE state IN ('pending', 'deciding')`).Scan(&n, &min)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: pending stats: %w", err)
	}
	if min != nil {
		oldest = *min
	}
	return n, oldest, nil
}

// PruneRequests implements store.Requests.
func (db *DB) PruneRequests(cutoff time.Time, max int) (int, error) {
	return db.prune("requests", `DELETE FROM requests WHERE (org, id) IN
		(SELECT org, id FROM requests WHERE state IN ('approved', 'denied', 'cancelled', 'closed') AND updated < $1 LIMIT $2)`, cutoff, max)
}

// AppendAudit implements store.Audit.
func (db *DB) AppendAudit(e store.AuditEvent) error {
	if e.At.IsZero() {
		e.At = db.now()
	}
	e.Org = strings.ToLower(e.Org)
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		var seq uint64
		if err := tx.QueryRow(ctx, `INSERT INTO audit (at, org, kind, record) VALUES ($1, $2, $3, '{}') RETURNING seq`, e.At, e.Org, e.Kind).Scan(&seq); err != nil {
			return err
		}
		e.Seq = seq
		record, err := json.Marshal(e)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE audit SET record = $2 WHERE seq = $1`, seq, record)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: append audit event: %w", err)
	}
	return nil
}

// AuditEvents implements store.Audit.
func (db *DB) AuditEvents(f store.AuditFilter) ([]store.AuditEvent, error) {
	ctx, cancel := op()
	defer cancel()
	var since, until *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	if !f.Until.IsZero() {
		until = &f.Until
	}
	var limit *int // none
	if f.Limit > 0 {
		limit = &f.Limit
	}
	rows, err := db.pool.Query(ctx, `SELECT record FROM audit
		WHERE seq > $1 AND ($2 = '' OR org = $2) AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
		  AND (coalesce(cardinality($5::text[]), 0) = 0 OR kind = ANY($5))
		ORDER BY seq LIMIT $6`,
		int64(f.After), strings.ToLower(f.Org), since, until, f.Kinds, limit)
	if err != nil {
		return nil, fmt.Errorf("store: audit events: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[store.AuditEvent])
	if err != nil {
		return nil, fmt.Errorf("store: audit events: %w", err)
	}
	return out, nil
}

// PruneAudit implements store.Audit.
func (db *DB) PruneAudit(cutoff time.Time, max int) (int, error) {
	return db.prune("audit", `DELETE FROM audit WHERE seq IN (SELECT seq FROM audit WHERE at < $1 ORDER BY seq LIMIT $2)`, cutoff, max)
}

// Cursor implements store.Audit.
func (db *DB) Cursor(name string) (uint64, error) {
	ctx, cancel := op()
	defer cancel()
	var v uint64
	err := db.pool.QueryRow(ctx, `SELECT value FROM cursors WHERE name = $1`, name).Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("store: cursor %s: %w", name, err)
	}
	return v, nil
}

// SetCursor implements store.Audit.
func (db *DB) SetCursor(name string, v uint64) error {
	ctx, cancel := op()
	defer cancel()
	_, err := db.pool.Exec(ctx, `INSERT INTO cursors (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, v)
	if err != nil {
		return fmt.Errorf("store: set cursor %s: %w", name, err)
	}
	return nil
}
