// Package bolt is the store.Store backend that keeps patbot's state in one
// bbolt file: webhook delivery markers, pending work, the record of every
// PAT request patbot knows, and the audit trail. It is the only package
// that knows bbolt.
//
// Every public method is one transaction. Values are decoded inside the
// transaction, so nothing returned aliases bbolt's memory, and no method does
// network I/O.
package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/patbot/patbot/store"
)

var _ store.Store = (*DB)(nil)

// SchemaVersion is the layout this code reads and writes. A file with a
// newer version is refused rather than misread; an older one is migrated
// when opened.
const SchemaVersion = 2

// The buckets. Keys that grow with time (deliveries, jobs, audit) are
// written in order, so that a commit rewrites few pages.
var (
	bucketMeta       = []byte("meta")
	bucketDeliveries = []byte("deliveries") // received time (8 bytes) + GUID -> store.Delivery
	bucketJobs       = []byte("jobs")       // sequence (8 bytes) -> job record (see encodeJob)
	bucketRequests   = []byte("requests")   // org + 0x00 + request id (8 bytes) -> store.Request
	bucketAudit      = []byte("audit")      // sequence (8 bytes) -> store.AuditEvent

	keySchema = []byte("schema_version")
)

// appendFillPercent is how full bbolt packs pages of buckets written in key
// order. Its default (half full) suits random keys, and would double the
// pages of these buckets.
const appendFillPercent = 0.9

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
	bolt *bbolt.DB
	now  func() time.Time

	// seen indexes the deliveries bucket by GUID, so that a delivery is
	// checked without a lookup by GUID in bbolt, and recorded in time
	// order. It holds one entry per kept marker (pruning bounds it).
	seen *deliveryIndex
	// uncommitted are the GUIDs the committer's transaction in progress
	// records; only the committer goroutine touches it.
	uncommitted map[string]int64
	// jobSeq is the last job number handed out.
	jobSeq atomic.Uint64
	// leases are the runners' claims of jobs (see ClaimJob).
	leasesMu sync.Mutex
	leases   map[uint64]jobLease

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
	switch fi, err := os.Stat(path); {
	case err != nil && (opts.ReadOnly || !errors.Is(err, os.ErrNotExist)):
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	case err == nil && fi.Size() == 0:
		// bbolt would make an empty file a new database: every record
		// lost, and patbot would look healthy.
		return nil, damaged(path, errors.New("the file is empty (0 bytes)"))
	case err == nil:
		if err := probe(path, opts.LockTimeout); err != nil {
			return nil, err
		}
	}
	b, err := openBolt(path, &bbolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("store: open %s: %w", path, store.ErrLocked)
	}
	if err != nil {
		return nil, damaged(path, err)
	}
	db := &DB{bolt: b, now: opts.Now, leases: map[uint64]jobLease{}, seen: &deliveryIndex{guids: map[string]int64{}}, uncommitted: map[string]int64{},
		writes: make(chan *write, maxGroup), closing: make(chan struct{}), committerDone: make(chan struct{})}
	if opts.ReadOnly {
		close(db.committerDone)
		if err := db.checkSchema(); err != nil {
			b.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		return db, nil
	}
	if err := db.init(); err != nil {
		b.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	go db.commitLoop()
	return db, nil
}

// damaged says what is wrong with the file at path and what to do.
func damaged(path string, why error) error {
	return fmt.Errorf("store: %s cannot be read (%v): %w. patbot does not overwrite a file it cannot read: "+
		"restore it from a backup, or move it aside to start with an empty store (its history is then lost)", path, why, store.ErrDamaged)
}

// openBolt opens the file, turning a panic on a damaged file into an error.
// (A panic leaves the file mapped and locked: Open reads a file once
// read-only, which panics less and cleans up, before opening it to write.)
func openBolt(path string, opts *bbolt.Options) (db *bbolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return bbolt.Open(path, 0o600, opts)
}

// probe opens an existing file read-only and reads all of it, to refuse a
// damaged file before anything writes to it.
func probe(path string, lockTimeout time.Duration) error {
	b, err := openBolt(path, &bbolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("store: open %s: %w", path, store.ErrLocked)
	}
	if err != nil {
		return damaged(path, err)
	}
	err = checkPages(b)
	b.Close()
	if err != nil {
		return damaged(path, err)
	}
	return nil
}

// checkPages reads every page of the file once, so that damage is found
// at start, where it can be reported, and not by a panic in the middle of
// work. It takes a moment per hundred megabytes.
func checkPages(b *bbolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return b.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}

// init creates the buckets, migrates an older layout and loads the
// delivery index.
func (db *DB) init() error {
	return db.bolt.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		v, err := schemaVersion(meta)
		if err != nil {
			return err
		}
		if v == 1 {
			if err := migrateV1(tx); err != nil {
				return fmt.Errorf("migrate schema 1 to %d: %w", SchemaVersion, err)
			}
		}
		for _, name := range [][]byte{bucketDeliveries, bucketJobs, bucketRequests, bucketAudit, bucketTimers, bucketTimersDue, bucketTimersKeys,
			bucketLinks, bucketLinksByGitHub, bucketSignIns} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if err := meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion))); err != nil {
			return err
		}
		db.jobSeq.Store(tx.Bucket(bucketJobs).Sequence())
		return db.seen.load(tx.Bucket(bucketDeliveries))
	})
}

// checkSchema refuses, read-only, a file this code cannot read as it is,
// and loads the delivery index.
func (db *DB) checkSchema() error {
	return db.bolt.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return errors.New("not a patbot database (no meta bucket)")
		}
		v, err := schemaVersion(meta)
		if err != nil {
			return err
		}
		if v != SchemaVersion {
			return fmt.Errorf("schema version %d: start patbot once to migrate it to %d", v, SchemaVersion)
		}
		return db.seen.load(tx.Bucket(bucketDeliveries))
	})
}

// schemaVersion reads the file's layout version: SchemaVersion for a new
// file.
func schemaVersion(meta *bbolt.Bucket) (int, error) {
	raw := meta.Get(keySchema)
	if raw == nil {
		return SchemaVersion, nil
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, fmt.Errorf("unreadable schema version %q", raw)
	}
	if v > SchemaVersion {
		return 0, fmt.Errorf("schema version %d is newer than this patbot supports (%d): upgrade patbot", v, SchemaVersion)
	}
	return v, nil
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
	return db.bolt.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	})
}

// Check runs bbolt's consistency check over the whole file.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bbolt.Tx) error {
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

func put(b *bbolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func get(b *bbolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return store.ErrNotFound
	}
	return decode(raw, v)
}

// decode copies a value out of bbolt's memory-mapped page.
func decode(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// deleteKeys deletes keys from b. Callers collect keys first: deleting while
// a cursor advances can skip keys.
func deleteKeys(b *bbolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// write is one write waiting for a commit.
type write struct {
	fn   func(*bbolt.Tx) error
	err  error
	done chan struct{}
}

// maxGroup bounds how many writes one commit takes.
const maxGroup = 1000

// group runs fn in a transaction whose commit (and fsync) it shares with
// every write waiting at the same time. fn may run more than once, so it
// may only change the transaction and assign to its caller's variables.
func (db *DB) group(fn func(*bbolt.Tx) error) error {
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
		if err := db.commit(group...); err != nil {
			// One failing write must not fail the others: each alone.
			for _, w := range group {
				w.err = db.commit(w)
			}
		}
		for _, w := range group {
			close(w.done)
		}
	}
}

// commit runs writes in one transaction; the deliveries they record join
// the index once it is committed.
func (db *DB) commit(writes ...*write) error {
	clear(db.uncommitted)
	err := db.bolt.Update(func(tx *bbolt.Tx) error {
		for _, w := range writes {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		db.seen.add(db.uncommitted)
	}
	return err
}
