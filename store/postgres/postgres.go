// Package postgres is the store.Store backend on PostgreSQL (13 or newer),
// through pgx: the store for running several patbot replicas on one
// database. It is the only package that knows pgx.
//
// Records are JSON documents in jsonb columns, with the columns that
// queries select on beside them. The schema is embedded and applied at
// Open under an advisory lock, so that replicas starting together migrate
// once.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/patbot/patbot/store"
)

var _ store.Store = (*DB)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key under which the schema changes.
const migrationLock = 0x70617462 // "patb"

// defaultMaxConns is the pool's size unless the URL sets pool_max_conns.
const defaultMaxConns = 32

// opTimeout bounds one store operation: a database that does not answer
// must not hold patbot's work for ever.
const opTimeout = 30 * time.Second

// Options tune Open. The zero value is usable.
type Options struct {
	// Now is the clock for the times the store sets; default time.Now.
	Now func() time.Time
	// Exclusive keeps every other user of the database off until Close
	// (patbot migrate-store); Shared admits any number of Shared users
	// and no Exclusive one (the replicas of patbot serve). Either gets
	// store.ErrLocked when the other holds the database.
	Exclusive bool
	Shared    bool
}

// DB is an open patbot store on PostgreSQL.
type DB struct {
	pool *pgxpool.Pool
	now  func() time.Time
	// nowInjected: a test set the clock, which leases then follow
	// instead of PostgreSQL's.
	nowInjected bool
	// holder keeps the session that holds the exclusive lock.
	holder *pgx.Conn

	// Group commit of deliveries (see accept.go).
	accepts       chan *acceptRequest
	closing       chan struct{}
	committerDone chan struct{}
	closeOnce     sync.Once
}

// exclusiveLock is the advisory lock key patbot serve holds shared, and
// patbot migrate-store exclusive.
const exclusiveLock = 0x70617463 // "patc"

// IsURL reports whether dsn names a PostgreSQL database rather than a file.
func IsURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open connects to the database at url (credentials and TLS from the URL
// or the standard PG* variables) and brings its schema up to date.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	injected := opts.Now != nil
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// Webhooks arrive dozens at a time, and each waits for its commit:
		// enough connections that commits share PostgreSQL's WAL flushes.
		cfg.MaxConns = defaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	db := &DB{pool: pool, now: opts.Now, nowInjected: injected, accepts: make(chan *acceptRequest, maxAcceptGroup),
		closing: make(chan struct{}), committerDone: make(chan struct{})}
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := db.migrate(cctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	if opts.Exclusive || opts.Shared {
		if err := db.lock(cctx, cfg.ConnConfig, opts.Shared); err != nil {
			pool.Close()
			return nil, err
		}
	}
	go db.commitAccepts()
	return db, nil
}

// lock takes the lock (shared or exclusive) on a session of its own, held
// until Close.
func (db *DB) lock(ctx context.Context, cfg *pgx.ConnConfig, shared bool) error {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("store: connect: %w", err)
	}
	var got bool
	query := `SELECT pg_try_advisory_lock($1)`
	if shared {
		query = `SELECT pg_try_advisory_lock_shared($1)`
	}
	if err := conn.QueryRow(ctx, query, exclusiveLock).Scan(&got); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("store: lock: %w", err)
	}
	if !got {
		conn.Close(ctx)
		return fmt.Errorf("store: %w", store.ErrLocked)
	}
	db.holder = conn
	return nil
}

// SchemaVersion is the newest schema this code knows.
var SchemaVersion = len(mustMigrations())

func mustMigrations() []string {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	slices.Sort(names)
	return names
}

// migrate applies the embedded migrations the database lacks, in one
// transaction, under an advisory lock. A database whose schema is newer
// than this code knows by more than one version is refused: release N+1
// runs on schema N and N+1, for rolling deploys.
func (db *DB) migrate(ctx context.Context) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("lock the schema: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	names := mustMigrations()
	if current > len(names)+1 {
		return fmt.Errorf("the database's schema (version %d) is newer than this patbot knows (%d): upgrade patbot", current, len(names))
	}
	for i, name := range names {
		version := i + 1
		if version <= current {
			continue
		}
		sql, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, string(sql)); err != nil {
			return fmt.Errorf("migrate to schema %d (%s): %w", version, name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, version); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Close stops the committer and closes the connections, releasing the
// exclusive lock.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { close(db.closing) })
	<-db.committerDone
	if db.holder != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		db.holder.Close(ctx)
		cancel()
	}
	db.pool.Close()
	return nil
}

// Ping reports whether the database answers.
func (db *DB) Ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: database: %w", err)
	}
	return nil
}

// clock is the time a lease query measures from: nil, for PostgreSQL's
// now(), unless a test injected a clock.
func (db *DB) clock() any {
	if db.nowInjected {
		return db.now()
	}
	return nil
}

// op is the context of one store operation.
func op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), opTimeout)
}

// inTx runs fn in a transaction, again when PostgreSQL reports a
// serialization failure or a deadlock (a bounded number of times).
func (db *DB) inTx(fn func(ctx context.Context, tx pgx.Tx) error) error {
	ctx, cancel := op()
	defer cancel()
	var err error
	for range 10 {
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return fn(ctx, tx) })
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") || connectionLost(err) {
			continue
		}
		if errors.Is(err, errRetry) {
			continue
		}
		return err
	}
	return err
}

// connectionLost reports whether err is the loss of the connection (the
// server restarted, a failover, a proxy cut it): the pool replaces it, and
// a transaction that failed so is tried again. A lost COMMIT may have
// committed; every transaction patbot retries is safe to run twice.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var netErr *net.OpError
	return pgconn.SafeToRetry(err) || errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || err != nil && strings.Contains(err.Error(), "conn closed")
}

// errRetry asks inTx to run a transaction again (a concurrent insert won).
var errRetry = errors.New("retry")

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}
