package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// State is where a PAT request stands.
type State string

const (
	StatePending   State = "pending"   // awaiting a decision
	StateDeciding  State = "deciding"  // a decision is being sent to GitHub
	StateApproved  State = "approved"  // GitHub approved it
	StateDenied    State = "denied"    // GitHub denied it
	StateCancelled State = "cancelled" // the requester withdrew it
	StateClosed    State = "closed"    // no longer pending on GitHub, outcome unknown
	StateFailed    State = "failed"    // patbot could not complete its work
)

// Final reports whether no further decision can change the request.
func (s State) Final() bool {
	switch s {
	case StateApproved, StateDenied, StateCancelled, StateClosed:
		return true
	}
	return false
}

// Source says where a decision or transition came from.
type Source string

const (
	SourceWebhook   Source = "webhook"   // a GitHub webhook (GitHub's UI, another tool, or a confirmation)
	SourceSlack     Source = "slack"     // an approver in Slack
	SourceReconcile Source = "reconcile" // patbot's periodic comparison with GitHub
)

// Request is patbot's record of one fine-grained PAT request.
type Request struct {
	Org string `json:"org"` // lower case
	ID  int64  `json:"id"`  // GitHub's pat_request_id

	State State `json:"state"`

	Owner          string `json:"owner"` // requester's GitHub login
	OwnerID        int64  `json:"owner_id,omitempty"`
	TokenID        int64  `json:"token_id,omitempty"`
	TokenName      string `json:"token_name,omitempty"`
	Reason         string `json:"reason,omitempty"`
	InstallationID int64  `json:"installation_id,omitempty"`

	RepositorySelection string   `json:"repository_selection,omitempty"` // none, all, subset
	RepositoryCount     int      `json:"repository_count,omitempty"`
	Repositories        []string `json:"repositories,omitempty"` // full names

	PermissionsAdded    Permissions `json:"permissions_added,omitempty"`
	PermissionsUpgraded Permissions `json:"permissions_upgraded,omitempty"`
	PermissionsResult   Permissions `json:"permissions_result,omitempty"`

	CreatedAt      time.Time  `json:"created_at,omitzero"`
	TokenExpiresAt *time.Time `json:"token_expires_at,omitempty"`

	// CardIntent is when patbot began posting the card; with no Card.TS it
	// means a post may or may not have reached Slack.
	CardIntent time.Time `json:"card_intent,omitzero"`
	Card       Card      `json:"card,omitzero"`
	// CardOutdated is set with every change the card must show and
	// cleared once Slack has the card that shows it, so that a failed
	// update is retried, even after a crash.
	CardOutdated bool `json:"card_outdated,omitempty"`
	// Decision is the decision GitHub took, or, while State is deciding,
	// the one patbot is sending.
	Decision *Decision `json:"decision,omitempty"`
	// Unconfirmed marks a claim whose review GitHub may or may not have
	// taken (it timed out, or GitHub answered 5xx): the claim stays, and no
	// other review is sent, until GitHub's word settles it.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
	// LastAttempt is the latest decision patbot sent, kept after a failure
	// so that a late confirmation from GitHub is attributed to its actor.
	LastAttempt *Decision `json:"last_attempt,omitempty"`
	// Failure describes the latest failed attempt, shown on the card until
	// the request is decided.
	Failure string    `json:"failure,omitempty"`
	History []Change  `json:"history,omitempty"`
	Updated time.Time `json:"updated"`
}

// Permissions are grouped as GitHub groups them: organization, repository
// and other, each a map of permission name to access level.
type Permissions struct {
	Organization map[string]string `json:"organization,omitempty"`
	Repository   map[string]string `json:"repository,omitempty"`
	Other        map[string]string `json:"other,omitempty"`
}

// Card locates the Slack message that shows a request.
type Card struct {
	Channel string `json:"channel,omitempty"`
	TS      string `json:"ts,omitempty"`
}

// Decision is who decided a request, how, and when.
type Decision struct {
	Action    string    `json:"action"` // approve or deny
	Actor     string    `json:"actor"`  // GitHub login
	SlackUser string    `json:"slack_user,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	At        time.Time `json:"at"`
	Source    Source    `json:"source"`
	// Authority is why the approver could decide ("an owner of acme"), as
	// GitHub said when they clicked.
	Authority string `json:"authority,omitempty"`
}

// Change is one entry in a request's history.
type Change struct {
	At     time.Time `json:"at"`
	From   State     `json:"from,omitempty"`
	To     State     `json:"to"`
	Source Source    `json:"source"`
	Actor  string    `json:"actor,omitempty"`
	Note   string    `json:"note,omitempty"`
}

// maxHistory bounds a record's history; the oldest entries after the first
// are dropped, which keeps how the request began.
const maxHistory = 50

// SetState moves the request to state to and records the change.
func (r *Request) SetState(to State, at time.Time, source Source, actor, note string) {
	r.CardOutdated = true
	r.History = append(r.History, Change{At: at, From: r.State, To: to, Source: source, Actor: actor, Note: note})
	if len(r.History) > maxHistory {
		r.History = append(r.History[:1], r.History[len(r.History)-maxHistory+1:]...)
	}
	r.State = to
}

func requestKey(org string, id int64) []byte {
	return append(append([]byte(strings.ToLower(org)), 0), itob(uint64(id))...)
}

// Request returns the record of one request.
func (db *DB) Request(org string, id int64) (Request, error) {
	var r Request
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return get(tx.Bucket(bucketRequests), requestKey(org, id), &r)
	})
	if err != nil {
		return Request{}, fmt.Errorf("store: request %s/%d: %w", org, id, err)
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
func (db *DB) UpdateRequest(org string, id int64, change func(r *Request, exists bool) error) (Request, error) {
	return db.updateRequest(org, id, change, nil)
}

// UpdateRequestWithJob is UpdateRequest that also records job, in the same
// transaction, when change succeeds: work that must follow a change (its
// settlement after a crash, say) cannot be lost between the two. It
// returns the job's ID.
func (db *DB) UpdateRequestWithJob(org string, id int64, job Job, change func(r *Request, exists bool) error) (Request, uint64, error) {
	if job.EnqueuedAt.IsZero() {
		job.EnqueuedAt = db.now()
	}
	job.ID = db.nextJobID()
	record, err := encodeJob(job)
	if err != nil {
		return Request{}, 0, fmt.Errorf("store: update request %s/%d: %w", org, id, err)
	}
	r, err := db.updateRequest(org, id, change, func(tx *bolt.Tx) error { return putJob(tx, job.ID, record) })
	if err != nil {
		return Request{}, 0, err
	}
	return r, job.ID, nil
}

func (db *DB) updateRequest(org string, id int64, change func(r *Request, exists bool) error, also func(*bolt.Tx) error) (Request, error) {
	key := requestKey(org, id)
	var r Request
	var read, record []byte // the record as read and as it will be written
	prepared := false       // record is change applied to read
	prepare := func(raw []byte) error {
		prepared, r = false, Request{Org: strings.ToLower(org), ID: id}
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
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return prepare(bytes.Clone(tx.Bucket(bucketRequests).Get(key)))
	})
	if err == nil {
		err = db.group(func(tx *bolt.Tx) error {
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
		return Request{}, fmt.Errorf("store: update request %s/%d: %w", org, id, err)
	}
	return r, nil
}

// Requests lists the records of one org ("" for every org) whose state is
// one of states (any state when none are given).
func (db *DB) Requests(org string, states ...State) ([]Request, error) {
	var out []Request
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRequests).Cursor()
		prefix := []byte(nil)
		if org != "" {
			prefix = append([]byte(strings.ToLower(org)), 0)
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r Request
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
	err = db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRequests).ForEach(func(_, v []byte) error {
			var r struct {
				State     State     `json:"state"`
				CreatedAt time.Time `json:"created_at"`
			}
			if err := decode(v, &r); err != nil {
				return err
			}
			if r.State == StatePending || r.State == StateDeciding {
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
	var n int
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRequests)
		var keys [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(keys) < max; k, v = c.Next() {
			var r struct {
				State   State     `json:"state"`
				Updated time.Time `json:"updated"`
			}
			if err := decode(v, &r); err != nil {
				return err
			}
			if r.State.Final() && r.Updated.Before(cutoff) {
				keys = append(keys, bytes.Clone(k))
			}
		}
		n = len(keys)
		return deleteKeys(b, keys)
	})
	if err != nil {
		return 0, fmt.Errorf("store: prune requests: %w", err)
	}
	return n, nil
}
