package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patbot/patbot/store"
)

// SetTimer implements store.Timers.
func (db *DB) SetTimer(t store.Timer) (uint64, error) {
	if err := t.Valid(); err != nil {
		return 0, fmt.Errorf("store: set timer: %w", err)
	}
	var id uint64
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) (err error) {
		id, err = setTimer(ctx, tx, t)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: set timer %s %s: %w", t.Kind, t.Key, err)
	}
	return id, nil
}

// setTimer replaces the timer of t's kind and key with t, under a new ID.
func setTimer(ctx context.Context, tx pgx.Tx, t store.Timer) (uint64, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM timers WHERE kind = $1 AND key = $2`, t.Kind, t.Key); err != nil {
		return 0, err
	}
	var id uint64
	err := tx.QueryRow(ctx, `INSERT INTO timers (kind, key, due, payload) VALUES ($1, $2, $3, $4) RETURNING id`, t.Kind, t.Key, t.Due, t.Payload).Scan(&id)
	return id, err
}

// CancelTimer implements store.Timers.
func (db *DB) CancelTimer(kind, key string) error {
	ctx, cancel := op()
	defer cancel()
	if _, err := db.pool.Exec(ctx, `DELETE FROM timers WHERE kind = $1 AND key = $2`, kind, key); err != nil {
		return fmt.Errorf("store: cancel timer %s %s: %w", kind, key, err)
	}
	return nil
}

// Timer implements store.Timers.
func (db *DB) Timer(kind, key string) (store.Timer, error) {
	ctx, cancel := op()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT id, kind, key, due, payload, attempts, last_error, lease_until FROM timers WHERE kind = $1 AND key = $2`, kind, key)
	if err == nil {
		var t store.Timer
		t, err = pgx.CollectExactlyOneRow(rows, scanTimer)
		if err == nil {
			return t, nil
		}
	}
	return store.Timer{}, fmt.Errorf("store: timer %s %s: %w", kind, key, notFound(err))
}

// ClaimDueTimers implements store.Timers. Rows another runner is claiming
// at the same moment are skipped, not waited for.
func (db *DB) ClaimDueTimers(now time.Time, lease time.Duration, max int) ([]store.Timer, error) {
	ctx, cancel := op()
	defer cancel()
	rows, err := db.pool.Query(ctx, `UPDATE timers SET lease_until = $2, attempts = attempts + 1
		WHERE id IN (SELECT id FROM timers WHERE due <= $1 AND (lease_until IS NULL OR lease_until <= $1)
		             ORDER BY due, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING id, kind, key, due, payload, attempts, last_error, lease_until`, now, now.Add(lease), max)
	if err != nil {
		return nil, fmt.Errorf("store: claim due timers: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanTimer)
	if err != nil {
		return nil, fmt.Errorf("store: claim due timers: %w", err)
	}
	// Earliest first, as claimed.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].Due.Before(out[j-1].Due) || out[j].Due.Equal(out[j-1].Due) && out[j].ID < out[j-1].ID); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// NextTimerDue implements store.Timers.
func (db *DB) NextTimerDue() (time.Time, error) {
	ctx, cancel := op()
	defer cancel()
	var next *time.Time
	err := db.pool.QueryRow(ctx, `SELECT min(CASE WHEN lease_until > $1 THEN lease_until ELSE due END) FROM timers`, db.now()).Scan(&next)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: next timer: %w", err)
	}
	if next == nil {
		return time.Time{}, nil
	}
	return *next, nil
}

// FinishTimer implements store.Timers.
func (db *DB) FinishTimer(id uint64) error {
	ctx, cancel := op()
	defer cancel()
	tag, err := db.pool.Exec(ctx, `DELETE FROM timers WHERE id = $1`, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: finish timer %d: %w", id, err)
	}
	return nil
}

// RetryTimer implements store.Timers.
func (db *DB) RetryTimer(id uint64, due time.Time, cause error) error {
	ctx, cancel := op()
	defer cancel()
	msg := ""
	if cause != nil {
		msg = cause.Error()
	}
	tag, err := db.pool.Exec(ctx, `UPDATE timers SET due = $2, lease_until = NULL, last_error = $3 WHERE id = $1`, id, due, msg)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("store: retry timer %d: %w", id, err)
	}
	return nil
}

// scanTimer reads a timer row (id, kind, key, due, payload, attempts,
// last_error, lease_until).
func scanTimer(row pgx.CollectableRow) (store.Timer, error) {
	var t store.Timer
	var lease *time.Time
	err := row.Scan(&t.ID, &t.Kind, &t.Key, &t.Due, &t.Payload, &t.Attempts, &t.LastError, &lease)
	if lease != nil {
		t.LeaseUntil = *lease
	}
	return t, err
}
