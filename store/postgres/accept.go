package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Webhook deliveries are accepted in groups: every delivery waiting when
// the committer is free goes into one transaction, sent as one pipelined
// batch, so that a burst shares commits (and their WAL flushes) as it
// does on bbolt. A lone delivery waits for nobody.

// acceptSQL records one delivery and, only when the marker is new, its
// job. The job's number is drawn first, so that the marker names it; a
// duplicate leaves a gap in the numbers, which the contract allows.
const acceptSQL = `
	WITH n AS (SELECT nextval('jobs_id_seq') AS id),
	d AS (
		INSERT INTO deliveries (id, received_at, job_id, record)
		SELECT $1, $2, CASE WHEN $4::jsonb IS NULL THEN NULL ELSE n.id END, $3 FROM n
		ON CONFLICT (id) DO NOTHING RETURNING job_id
	), j AS (
		INSERT INTO jobs (id, record, payload, enqueued_at) SELECT d.job_id, $4::jsonb, $5::bytea, $2 FROM d WHERE d.job_id IS NOT NULL
		RETURNING id
	)
	SELECT (SELECT count(*) FROM d), (SELECT id FROM j)`

// maxAcceptGroup bounds the deliveries one transaction takes.
const maxAcceptGroup = 500

type acceptRequest struct {
	args []any
	done chan acceptResult
}

type acceptResult struct {
	inserted int
	jobID    *int64
	err      error
}

var errClosed = errors.New("store closed")

// accept queues one delivery for the committer and waits for its result.
func (db *DB) accept(id string, at time.Time, marker, jobRecord, payload []byte) acceptResult {
	req := &acceptRequest{args: []any{id, at, marker, jobRecord, payload}, done: make(chan acceptResult, 1)}
	select {
	case db.accepts <- req:
	case <-db.closing:
		return acceptResult{err: errClosed}
	}
	select {
	case res := <-req.done:
		return res
	case <-db.committerDone:
		select {
		case res := <-req.done: // answered just before the committer stopped
			return res
		default:
			return acceptResult{err: errClosed}
		}
	}
}

// commitAccepts is the committer: it runs until Close, and fails what is
// still queued then.
func (db *DB) commitAccepts() {
	defer close(db.committerDone)
	for {
		var first *acceptRequest
		select {
		case first = <-db.accepts:
		case <-db.closing:
			for {
				select {
				case req := <-db.accepts:
					req.done <- acceptResult{err: errClosed}
				default:
					return
				}
			}
		}
		group := []*acceptRequest{first}
	gather:
		for len(group) < maxAcceptGroup {
			select {
			case req := <-db.accepts:
				group = append(group, req)
			default:
				break gather
			}
		}
		results, err := db.acceptGroup(group)
		if err != nil && len(group) > 1 {
			// One failing delivery must not fail the others: each alone.
			for i, req := range group {
				r, err := db.acceptGroup([]*acceptRequest{req})
				if err != nil {
					results[i] = acceptResult{err: err}
				} else {
					results[i] = r[0]
				}
			}
		} else if err != nil {
			results[0] = acceptResult{err: err}
		}
		for i, req := range group {
			req.done <- results[i]
		}
	}
}

// acceptGroup accepts deliveries in one transaction, again after a lost
// connection (a marker already committed then reads as a duplicate, and
// its job, unclaimed, is taken up as an orphan).
func (db *DB) acceptGroup(group []*acceptRequest) ([]acceptResult, error) {
	var results []acceptResult
	var err error
	for range 3 {
		if results, err = db.acceptOnce(group); !connectionLost(err) {
			break
		}
	}
	return results, err
}

func (db *DB) acceptOnce(group []*acceptRequest) ([]acceptResult, error) {
	results := make([]acceptResult, len(group))
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		for _, req := range group {
			batch.Queue(acceptSQL, req.args...)
		}
		br := tx.SendBatch(ctx, batch)
		for i := range group {
			if err := br.QueryRow().Scan(&results[i].inserted, &results[i].jobID); err != nil {
				br.Close()
				return err
			}
		}
		return br.Close()
	})
	return results, err
}
