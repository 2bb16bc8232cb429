package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

// Opening twice (two replicas starting) migrates once; the schema version
// is recorded.
func TestMigrateOnce(t *testing.T) {
	url := pgtest.Database(t)
	a, b := open(t, url, nil), open(t, url, nil)
	defer a.Close()
	defer b.Close()
	if err := a.Ping(); err != nil {
		t.Fatal(err)
	}
	if postgres.SchemaVersion < 1 {
		t.Fatalf("schema version %d", postgres.SchemaVersion)
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
}
