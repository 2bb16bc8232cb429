package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patbot/patbot/store"
)

var (
	_ store.Importer = (*DB)(nil)
	_ store.Exporter = (*DB)(nil)
)

// ImportAll implements store.Importer: it copies an Export into an empty
// database in one transaction (COPY for each table), numbers and sequence
// kept, and moves the sequences past them.
func (db *DB) ImportAll(e store.Export) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM deliveries) + (SELECT count(*) FROM jobs) + (SELECT count(*) FROM timers)
			+ (SELECT count(*) FROM requests) + (SELECT count(*) FROM audit) + (SELECT count(*) FROM cursors) + (SELECT count(*) FROM links)`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return store.ErrNotEmpty
		}
		var rows [][]any
		for _, d := range e.Deliveries {
			jobID := d.JobID
			d.JobID = 0
			record, err := json.Marshal(d)
			if err != nil {
				return err
			}
			var job *int64
			if jobID != 0 {
				v := int64(jobID)
				job = &v
			}
			rows = append(rows, []any{d.ID, d.ReceivedAt, job, record})
		}
		if err := copyRows(ctx, tx, "deliveries", []string{"id", "received_at", "job_id", "record"}, rows); err != nil {
			return err
		}
		rows = rows[:0]
		for _, j := range e.Jobs {
			payload := j.Payload
			j.Payload, j.Holder, j.LeaseUntil = nil, "", time.Time{} // a copy is claimed afresh
			record, err := json.Marshal(j)
			if err != nil {
				return err
			}
			rows = append(rows, []any{int64(j.ID), record, payload, j.EnqueuedAt})
		}
		if err := copyRows(ctx, tx, "jobs", []string{"id", "record", "payload", "enqueued_at"}, rows); err != nil {
			return err
		}
		rows = rows[:0]
		for _, t := range e.Timers {
			var lease *time.Time
			if !t.LeaseUntil.IsZero() {
				lease = &t.LeaseUntil
			}
			rows = append(rows, []any{int64(t.ID), t.Kind, t.Key, t.Due, t.Payload, t.Attempts, t.LastError, lease})
		}
		if err := copyRows(ctx, tx, "timers", []string{"id", "kind", "key", "due", "payload", "attempts", "last_error", "lease_until"}, rows); err != nil {
			return err
		}
		rows = rows[:0]
		for _, r := range e.Requests {
			record, err := json.Marshal(r)
			if err != nil {
				return err
			}
			var created *time.Time
			if !r.CreatedAt.IsZero() {
				created = &r.CreatedAt
			}
			rows = append(rows, []any{strings.ToLower(r.Org), r.ID, string(r.State), created, r.Updated, record})
		}
		if err := copyRows(ctx, tx, "requests", []string{"org", "id", "state", "created_at", "updated", "record"}, rows); err != nil {
			return err
		}
		rows = rows[:0]
		for _, a := range e.Audit {
			record, err := json.Marshal(a)
			if err != nil {
				return err
			}
			rows = append(rows, []any{int64(a.Seq), a.At, a.Org, a.Kind, record})
		}
		if err := copyRows(ctx, tx, "audit", []string{"seq", "at", "org", "kind", "record"}, rows); err != nil {
			return err
		}
		rows = rows[:0]
		for name, v := range e.Cursors {
			rows = append(rows, []any{name, int64(v)})
		}
		if err := copyRows(ctx, tx, "cursors", []string{"name", "value"}, rows); err != nil {
			return err
		}
		rows = rows[:0]
		for _, l := range e.Links {
			record, err := json.Marshal(l)
			if err != nil {
				return err
			}
			rows = append(rows, []any{l.SlackUser, l.GitHubID, record})
		}
		if err := copyRows(ctx, tx, "links", []string{"slack_user", "github_id", "record"}, rows); err != nil {
			return err
		}
		// The next numbers follow the copied ones.
		for _, seq := range []struct{ sequence, table, column string }{
			{"jobs_id_seq", "jobs", "id"}, {"timers_id_seq", "timers", "id"}, {"audit_seq_seq", "audit", "seq"},
		} {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`SELECT setval('%s', coalesce((SELECT max(%s) FROM %s), 0) + 1, false)`, seq.sequence, seq.column, seq.table)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: import: %w", err)
	}
	return nil
}

func copyRows(ctx context.Context, tx pgx.Tx, table string, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	return nil
}

// ExportAll implements store.Exporter, to check a copy.
func (db *DB) ExportAll() (store.Export, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := store.Export{Cursors: map[string]uint64{}}
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT record, job_id FROM deliveries ORDER BY received_at, id`)
		if err != nil {
			return err
		}
		e.Deliveries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Delivery, error) {
			var d store.Delivery
			var job *int64
			err := row.Scan(&d, &job)
			if job != nil {
				d.JobID = uint64(*job)
			}
			return d, err
		})
		if err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT id, record, payload FROM jobs ORDER BY id`); err != nil {
			return err
		}
		if e.Jobs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Job, error) { return scanJob(row) }); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT id, kind, key, due, payload, attempts, last_error, lease_until FROM timers ORDER BY id`); err != nil {
			return err
		}
		if e.Timers, err = pgx.CollectRows(rows, scanTimer); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT record FROM requests ORDER BY org, id`); err != nil {
			return err
		}
		if e.Requests, err = pgx.CollectRows(rows, pgx.RowTo[store.Request]); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT record FROM audit ORDER BY seq`); err != nil {
			return err
		}
		if e.Audit, err = pgx.CollectRows(rows, pgx.RowTo[store.AuditEvent]); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT record FROM links ORDER BY slack_user`); err != nil {
			return err
		}
		if e.Links, err = pgx.CollectRows(rows, pgx.RowTo[store.Link]); err != nil {
			return err
		}
		if rows, err = tx.Query(ctx, `SELECT name, value FROM cursors`); err != nil {
			return err
		}
		for rows.Next() {
			var name string
			var v int64
			if err := rows.Scan(&name, &v); err != nil {
				return err
			}
			e.Cursors[name] = uint64(v)
		}
		return rows.Err()
	})
	if err != nil {
		return store.Export{}, fmt.Errorf("store: export: %w", err)
	}
	return e, nil
}
