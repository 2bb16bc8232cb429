package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/patbot/patbot/store"
)

// Link implements store.Links.
func (db *DB) Link(slackUser string) (store.Link, error) {
	ctx, cancel := op()
	defer cancel()
	var l store.Link
	err := db.pool.QueryRow(ctx, `SELECT record FROM links WHERE slack_user = $1`, slackUser).Scan(&l)
	if err != nil {
		return store.Link{}, fmt.Errorf("store: link of %s: %w", slackUser, notFound(err))
	}
	return l, nil
}

// Links implements store.Links.
func (db *DB) Links() ([]store.Link, error) {
	ctx, cancel := op()
	defer cancel()
	rows, err := db.pool.Query(ctx, `SELECT record FROM links ORDER BY slack_user`)
	if err != nil {
		return nil, fmt.Errorf("store: links: %w", err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[store.Link])
	if err != nil {
		return nil, fmt.Errorf("store: links: %w", err)
	}
	return all, nil
}

// PutLink implements store.Links. The unique account column keeps an
// account to one Slack user; the update's condition keeps a Slack user to
// one account.
func (db *DB) PutLink(l store.Link) error {
	if l.SlackUser == "" || l.GitHubID == 0 {
		return errors.New("store: put link: a link needs a Slack user and a GitHub account")
	}
	record, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("store: put link of %s: %w", l.SlackUser, err)
	}
	ctx, cancel := op()
	defer cancel()
	tag, err := db.pool.Exec(ctx, `INSERT INTO links (slack_user, github_id, record) VALUES ($1, $2, $3)
		ON CONFLICT (slack_user) DO UPDATE SET record = excluded.record WHERE links.github_id = excluded.github_id`,
		l.SlackUser, l.GitHubID, record)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == "23505": // unique_violation: the account
		return fmt.Errorf("store: put link of %s: GitHub account %d is linked to another Slack user: %w", l.SlackUser, l.GitHubID, store.ErrConflict)
	case err != nil:
		return fmt.Errorf("store: put link of %s: %w", l.SlackUser, err)
	case tag.RowsAffected() == 0:
		return fmt.Errorf("store: put link of %s: linked to another GitHub account: %w", l.SlackUser, store.ErrConflict)
	}
	return nil
}

// UpdateLink implements store.Links, holding the row while change runs.
func (db *DB) UpdateLink(slackUser string, change func(l *store.Link) error) (store.Link, error) {
	var l store.Link
	err := db.inTx(func(ctx context.Context, tx pgx.Tx) error {
		l = store.Link{}
		if err := tx.QueryRow(ctx, `SELECT record FROM links WHERE slack_user = $1 FOR UPDATE`, slackUser).Scan(&l); err != nil {
			return notFound(err)
		}
		account := l.GitHubID
		if err := change(&l); err != nil {
			return err
		}
		if l.GitHubID != account || l.SlackUser != slackUser {
			return errors.New("an update cannot move a link")
		}
		record, err := json.Marshal(l)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE links SET record = $2 WHERE slack_user = $1`, slackUser, record)
		return err
	})
	if err != nil {
		return store.Link{}, fmt.Errorf("store: update link of %s: %w", slackUser, err)
	}
	return l, nil
}

// DeleteLink implements store.Links.
func (db *DB) DeleteLink(slackUser string) (store.Link, error) {
	ctx, cancel := op()
	defer cancel()
	var l store.Link
	err := db.pool.QueryRow(ctx, `DELETE FROM links WHERE slack_user = $1 RETURNING record`, slackUser).Scan(&l)
	if err != nil {
		return store.Link{}, fmt.Errorf("store: delete link of %s: %w", slackUser, notFound(err))
	}
	return l, nil
}

// PutSignIn implements store.Links.
func (db *DB) PutSignIn(s store.SignIn) error {
	if s.Key == "" || s.Expires.IsZero() {
		return errors.New("store: put sign-in: a sign-in needs a key and an expiry")
	}
	record, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("store: put sign-in: %w", err)
	}
	ctx, cancel := op()
	defer cancel()
	if _, err := db.pool.Exec(ctx, `INSERT INTO sign_ins (key, expires, record) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET expires = excluded.expires, record = excluded.record`, s.Key, s.Expires, record); err != nil {
		return fmt.Errorf("store: put sign-in: %w", err)
	}
	return nil
}

// TakeSignIn implements store.Links: the DELETE returns the row to one
// taker only.
func (db *DB) TakeSignIn(key string) (store.SignIn, error) {
	ctx, cancel := op()
	defer cancel()
	var s store.SignIn
	if err := db.pool.QueryRow(ctx, `DELETE FROM sign_ins WHERE key = $1 RETURNING record`, key).Scan(&s); err != nil {
		return store.SignIn{}, fmt.Errorf("store: take sign-in: %w", notFound(err))
	}
	return s, nil
}

// PruneSignIns implements store.Links.
func (db *DB) PruneSignIns(cutoff time.Time, max int) (int, error) {
	ctx, cancel := op()
	defer cancel()
	tag, err := db.pool.Exec(ctx, `DELETE FROM sign_ins WHERE key IN (SELECT key FROM sign_ins WHERE expires < $1 LIMIT $2)`, cutoff, max)
	if err != nil {
		return 0, fmt.Errorf("store: prune sign-ins: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
