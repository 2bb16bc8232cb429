package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/patbot/patbot/store"
)

// Links live in two buckets, the records by Slack user and an index by
// GitHub account that keeps an account to one Slack user; sign-ins in
// progress in a third.
var (
	bucketLinks         = []byte("links")           // Slack user -> store.Link
	bucketLinksByGitHub = []byte("links_by_github") // GitHub user id (8 bytes) -> Slack user
	bucketSignIns       = []byte("sign_ins")        // key -> store.SignIn
)

// Link implements store.Links.
func (db *DB) Link(slackUser string) (store.Link, error) {
	var l store.Link
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return get(tx.Bucket(bucketLinks), []byte(slackUser), &l)
	})
	if err != nil {
		return store.Link{}, fmt.Errorf("store: link of %s: %w", slackUser, err)
	}
	return l, nil
}

// Links implements store.Links.
func (db *DB) Links() ([]store.Link, error) {
	var all []store.Link
	err := db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketLinks).ForEach(func(_, v []byte) error {
			var l store.Link
			err := decode(v, &l)
			all = append(all, l)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: links: %w", err)
	}
	return all, nil
}

// PutLink implements store.Links.
func (db *DB) PutLink(l store.Link) error {
	if l.SlackUser == "" || l.GitHubID == 0 {
		return errors.New("store: put link: a link needs a Slack user and a GitHub account")
	}
	err := db.group(func(tx *bbolt.Tx) error {
		links, byGitHub := tx.Bucket(bucketLinks), tx.Bucket(bucketLinksByGitHub)
		if owner := byGitHub.Get(itob(uint64(l.GitHubID))); owner != nil && string(owner) != l.SlackUser {
			return fmt.Errorf("GitHub account %d is linked to another Slack user: %w", l.GitHubID, store.ErrConflict)
		}
		var old store.Link
		switch err := get(links, []byte(l.SlackUser), &old); {
		case err == nil && old.GitHubID != l.GitHubID:
			return fmt.Errorf("%s is linked to another GitHub account: %w", l.SlackUser, store.ErrConflict)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := byGitHub.Put(itob(uint64(l.GitHubID)), []byte(l.SlackUser)); err != nil {
			return err
		}
		return put(links, []byte(l.SlackUser), l)
	})
	if err != nil {
		return fmt.Errorf("store: put link of %s: %w", l.SlackUser, err)
	}
	return nil
}

// UpdateLink implements store.Links.
func (db *DB) UpdateLink(slackUser string, change func(l *store.Link) error) (store.Link, error) {
	var l store.Link
	err := db.group(func(tx *bbolt.Tx) error {
		links := tx.Bucket(bucketLinks)
		l = store.Link{}
		if err := get(links, []byte(slackUser), &l); err != nil {
			return err
		}
		account := l.GitHubID
		if err := change(&l); err != nil {
			return err
		}
		if l.GitHubID != account || l.SlackUser != slackUser {
			return errors.New("an update cannot move a link")
		}
		return put(links, []byte(slackUser), l)
	})
	if err != nil {
		return store.Link{}, fmt.Errorf("store: update link of %s: %w", slackUser, err)
	}
	return l, nil
}

// DeleteLink implements store.Links.
func (db *DB) DeleteLink(slackUser string) (store.Link, error) {
	var l store.Link
	err := db.group(func(tx *bbolt.Tx) error {
		l = store.Link{}
		if err := take(tx.Bucket(bucketLinks), []byte(slackUser), &l); err != nil {
			return err
		}
		return tx.Bucket(bucketLinksByGitHub).Delete(itob(uint64(l.GitHubID)))
	})
	if err != nil {
		return store.Link{}, fmt.Errorf("store: delete link of %s: %w", slackUser, err)
	}
	return l, nil
}

// PutSignIn implements store.Links.
func (db *DB) PutSignIn(s store.SignIn) error {
	if s.Key == "" || s.Expires.IsZero() {
		return errors.New("store: put sign-in: a sign-in needs a key and an expiry")
	}
	err := db.group(func(tx *bbolt.Tx) error {
		return put(tx.Bucket(bucketSignIns), []byte(s.Key), s)
	})
	if err != nil {
		return fmt.Errorf("store: put sign-in: %w", err)
	}
	return nil
}

// TakeSignIn implements store.Links.
func (db *DB) TakeSignIn(key string) (store.SignIn, error) {
	var s store.SignIn
	err := db.group(func(tx *bbolt.Tx) error {
		s = store.SignIn{}
		return take(tx.Bucket(bucketSignIns), []byte(key), &s)
	})
	if err != nil {
		return store.SignIn{}, fmt.Errorf("store: take sign-in: %w", err)
	}
	return s, nil
}

// PruneSignIns implements store.Links. Sign-ins are few and short-lived:
// a scan finds the expired ones.
func (db *DB) PruneSignIns(cutoff time.Time, max int) (int, error) {
	n := 0
	err := db.group(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSignIns)
		var expired [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var s store.SignIn
			if err := decode(v, &s); err != nil || s.Expires.Before(cutoff) {
				if len(expired) < max {
					expired = append(expired, bytes.Clone(k))
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		n = len(expired)
		return deleteKeys(b, expired)
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune sign-ins: %w", err)
	}
	return n, nil
}

// take reads the value under key into v, and deletes it.
func take(b *bbolt.Bucket, key []byte, v any) error {
	if err := get(b, key, v); err != nil {
		return err
	}
	return b.Delete(key)
}
