// Package store keeps patbot's state in a bbolt file: webhook delivery
// markers, pending work, and the record of every PAT request patbot knows.
//
// Every public method is one transaction. Values are decoded inside the
// transaction, so nothing returned aliases bbolt's memory, and no method does
// network I/O.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this code reads and writes. A file with a
// newer version is refused rather than misread.
const SchemaVersion = 1

var (
	// ErrNotFound is returned when a record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrLocked is returned by Open when another process holds the file.
	ErrLocked = errors.New("database is locked by another process (is another patbot running?)")
)

var (
	bucketMeta          = []byte("meta")
	bucketDeliveries    = []byte("deliveries")     // delivery GUID -> Delivery
	bucketDeliveryTimes = []byte("delivery_times") // received time (8 bytes) + GUID -> nil, for pruning in order
	bucketJobs          = []byte("jobs")           // sequence (8 bytes) -> Job without its payload
	bucketPayloads      = []byte("payloads")       // job sequence (8 bytes) -> the job's payload, raw
	bucketRequests      = []byte("requests")       // org + 0x00 + request id (8 bytes) -> Request
	bucketAudit         = []byte("audit")          // sequence (8 bytes) -> AuditEvent

	keySchema = []byte("schema_version")
)

// Options tune Open. The zero value is usable.
type Options struct {
	// LockTimeout bounds the wait for the file lock. Default 2s.
	LockTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// ReadOnly opens the file for reading only (patbot audit). It still
	// waits for the lock a running patbot holds.
	ReadOnly bool
}

// DB is an open patbot database.
type DB struct {
	bolt *bolt.DB
	now  func() time.Time

	// Group commit (commitLoop).
	writes        chan *write
	closing       chan struct{}
	committerDone chan struct{}
	closeOnce     sync.Once
}

// Open opens or creates the database at path, creating every bucket and
// checking the schema version.
func Open(path string, opts Options) (*DB, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db := &DB{bolt: b, now: opts.Now, writes: make(chan *write, maxGroup),
		closing: make(chan struct{}), committerDone: make(chan struct{})}
	if opts.ReadOnly {
		close(db.committerDone)
		return db, db.Ping()
	}
	if err := db.init(); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	go db.commitLoop()
	return db, nil
}

func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketDeliveries, bucketDeliveryTimes, bucketJobs, bucketPayloads, bucketRequests, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		raw := meta.Get(keySchema)
		if raw == nil {
			return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
		}
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("unreadable schema version %q", raw)
		}
		if v > SchemaVersion {
			return fmt.Errorf("schema version %d is newer than this patbot supports (%d): upgrade patbot", v, SchemaVersion)
		}
		return nil
	})
}

// Close stops the committer and releases the file and its lock.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { close(db.closing) })
	<-db.committerDone
	return db.bolt.Close()
}

// Path is the file the database lives in.
func (db *DB) Path() string { return db.bolt.Path() }

// Ping reports whether the database is open and readable.
func (db *DB) Ping() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	})
}

// Check runs bbolt's consistency check over the whole file.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("store: check: %w", err)
		}
		return nil
	})
}

// Size is the file size in bytes, for metrics and growth measurements.
func (db *DB) Size() (int64, error) {
	fi, err := os.Stat(db.bolt.Path())
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func itob(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func btoi(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func put(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func get(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	return decode(raw, v)
}

// decode copies a value out of bbolt's memory-mapped page.
func decode(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// deleteKeys deletes keys from b. Callers collect keys first: deleting while
// a cursor advances can skip keys.
func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// write is one write waiting for a commit.
type write struct {
	fn   func(*bolt.Tx) error
	err  error
	done chan struct{}
}

// maxGroup bounds how many writes one commit takes.
const maxGroup = 1000

// group runs fn in a transaction whose commit (and fsync) it shares with
// every write waiting at the same time. fn may run more than once, so it
// may only change the transaction and assign to its caller's variables.
func (db *DB) group(fn func(*bolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan struct{})}
	select {
	case db.writes <- w:
	case <-db.closing:
		return berrors.ErrDatabaseNotOpen
	}
	select {
	case <-w.done:
	case <-db.committerDone:
		select {
		case <-w.done: // committed just before the committer stopped
		default:
			return berrors.ErrDatabaseNotOpen
		}
	}
	return w.err
}

// commitLoop is group commit: as soon as the writer is free, it commits
// every write waiting, in one transaction and one fsync. Under load a
// commit takes what arrived during the previous one; alone, a write waits
// for nobody.
func (db *DB) commitLoop() {
	defer close(db.committerDone)
	for {
		var first *write
		select {
		case first = <-db.writes:
		case <-db.closing:
			for { // fail what is still queued
				select {
				case w := <-db.writes:
					w.err = berrors.ErrDatabaseNotOpen
					close(w.done)
				default:
					return
				}
			}
		}
		group := []*write{first}
	drain:
		for len(group) < maxGroup {
			select {
			case w := <-db.writes:
				group = append(group, w)
			default:
				break drain
			}
		}
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for _, w := range group {
				if err := w.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			// One failing write must not fail the others: each alone.
			for _, w := range group {
				w.err = db.bolt.Update(w.fn)
			}
		}
		for _, w := range group {
			close(w.done)
		}
	}
}
