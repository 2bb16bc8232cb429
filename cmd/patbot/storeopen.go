package main

import (
	"context"
	"net/url"

	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
	"github.com/patbot/patbot/store/postgres"
)

// openStore opens the store PATBOT_DB names: a postgres:// URL, or a bbolt
// file. On PostgreSQL, patbot serve shares the database with its other
// replicas (and keeps migrate-store off it); a bbolt file is one
// process's. readOnly is for the commands that only read.
func openStore(ctx context.Context, dsn string, readOnly bool) (store.Store, error) {
	if postgres.IsURL(dsn) {
		return postgres.Open(ctx, dsn, postgres.Options{Shared: !readOnly})
	}
	return bolt.Open(dsn, bolt.Options{ReadOnly: readOnly})
}

// storeName is how logs name the store: a URL without its password.
func storeName(dsn string) string {
	if !postgres.IsURL(dsn) {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres (unparsable URL)"
	}
	return u.Redacted()
}
