package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/postgres"
	"github.com/patbot/patbot/store/postgres/pgtest"
	"github.com/patbot/patbot/store/storetest"
)

func open(t *testing.T, url string, now func() time.Time) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, postgres.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// The PostgreSQL backend passes the store's behavioural suite.
func TestContract(t *testing.T) {
	urls := map[store.Store]string{}
	clocks := map[store.Store]func() time.Time{}
	storetest.Run(t, storetest.Backend{
		Open: func(t *testing.T, now func() time.Time) store.Store {
			url := pgtest.Database(t)
			db := open(t, url, now)
			t.Cleanup(func() { db.Close() })
			urls[db], clocks[db] = url, now
			return db
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			s.Close()
			db := open(t, urls[s], clocks[s])
			t.Cleanup(func() { db.Close() })
			urls[db], clocks[db] = urls[s], clocks[s]
			return db
		},
	})
}

// Replicas starting together migrate once; a schema one version newer
// (a rolling deploy's next release) is run on, and one further ahead is
// refused.
func TestMigrations(t *testing.T) {
	url := pgtest.Database(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := postgres.Open(context.Background(), url, postgres.Options{})
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var rows, newest int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &newest); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion || newest != postgres.SchemaVersion {
		t.Fatalf("schema_version holds %d rows up to %d, want each of 1..%d once", rows, newest, postgres.SchemaVersion)
	}

	conn.Exec(context.Background(), `INSERT INTO schema_version (version) VALUES ($1)`, postgres.SchemaVersion+1)
	db, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatalf("schema one version ahead: %v", err)
	}
	db.Close()
	conn.Exec(context.Background(), `INSERT INTO schema_version (version) VALUES ($1)`, postgres.SchemaVersion+2)
	if _, err := postgres.Open(context.Background(), url, postgres.Options{}); err == nil || !strings.Contains(err.Error(), "upgrade patbot") {
		t.Errorf("schema two versions ahead: %v, want a refusal", err)
	}
}

// A URL's password never reaches an error (pgx masks it; this holds it
// to that).
func TestBadURLKeepsThePasswordOut(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://patbot:s3cret-pw@127.0.0.1:1/patbot?sslmode=disable&connect_timeout=1&bad_param=%zz", postgres.Options{})
	if err == nil {
		t.Fatal("a bad URL opened")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error shows the password: %v", err)
	}
}

// An exclusive patbot keeps a second one off the database until it closes.
func TestExclusive(t *testing.T) {
	url := pgtest.Database(t)
	first, err := postgres.Open(context.Background(), url, postgres.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(context.Background(), url, postgres.Options{Exclusive: true}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second exclusive open: %v, want ErrLocked", err)
	}
	first.Close()
	second, err := postgres.Open(context.Background(), url, postgres.Options{Exclusive: true})
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	second.Close()

	// Replicas share the database; an exclusive user waits for them all.
	a, err := postgres.Open(context.Background(), url, postgres.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := postgres.Open(context.Background(), url, postgres.Options{Shared: true})
	if err != nil {
		t.Fatalf("a second replica: %v", err)
	}
	if _, err := postgres.Open(context.Background(), url, postgres.Options{Exclusive: true}); !errors.Is(err, store.ErrLocked) {
		t.Errorf("exclusive open beside replicas: %v, want ErrLocked", err)
	}
	a.Close()
	b.Close()
	ex, err := postgres.Open(context.Background(), url, postgres.Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := postgres.Open(context.Background(), url, postgres.Options{Shared: true}); !errors.Is(err, store.ErrLocked) {
		t.Errorf("a replica beside an exclusive user: %v, want ErrLocked", err)
	}
	ex.Close()
}

// A lost connection (here: the server ends every session, as a restart
// or a failover does) is survived: the next writes go through.
func TestConnectionLossSurvived(t *testing.T) {
	url := pgtest.Database(t)
	db, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 5 { // several connections in the pool
		if _, _, err := db.AcceptDelivery(store.Delivery{ID: fmt.Sprint("before-", i)}, &store.Job{Event: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	admin, err := pgx.Connect(context.Background(), os.Getenv(pgtest.EnvURL))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	name := url[strings.LastIndex(url, "/")+1:]
	if _, err := admin.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, _, err := db.AcceptDelivery(store.Delivery{ID: fmt.Sprint("after-", i)}, &store.Job{Event: "x"}); err != nil {
			t.Errorf("accept after the connections were lost: %v", err)
		}
		if _, err := db.UpdateRequest("acme", int64(i+1), func(r *store.Request, _ bool) error { r.Owner = "x"; return nil }); err != nil {
			t.Errorf("update after the connections were lost: %v", err)
		}
	}
	if err := db.Ping(); err != nil {
		t.Errorf("ping: %v", err)
	}
	if n, err := db.CountDeliveries(); err != nil || n != 10 {
		t.Errorf("deliveries = %d, %v", n, err)
	}
}
