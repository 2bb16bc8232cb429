package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
	"github.com/patbot/patbot/store/postgres"
)

// migrateStore copies a bbolt file's state (requests, cards, audit, work
// pending, timers, cursors) into an empty PostgreSQL database, so that an
// install moves without losing history, and checks the copy.
func migrateStore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("migrate-store", stderr)
	from := fs.String("from", "", "the bbolt file to copy (patbot must be stopped)")
	to := fs.String("to", "", "the PostgreSQL database to copy into: a postgres:// URL; it must be empty")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *from == "" || !postgres.IsURL(*to) {
		fmt.Fprintln(stderr, "patbot migrate-store: -from FILE and -to postgres://… are required")
		return exitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "patbot migrate-store: "+format+"\n", a...)
		return exitFailed
	}
	src, err := bolt.Open(*from, bolt.Options{ReadOnly: true})
	if errors.Is(err, store.ErrLocked) {
		return fail("%s is in use by a running patbot: stop it first, so that nothing changes during the copy", *from)
	}
	if err != nil {
		return fail("%v", err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, *to, postgres.Options{Exclusive: true})
	if errors.Is(err, store.ErrLocked) {
		return fail("a patbot runs on %s: stop it first", storeName(*to))
	}
	if err != nil {
		return fail("%v", err)
	}
	defer dst.Close()

	data, err := src.ExportAll()
	if err != nil {
		return fail("%v", err)
	}
	if err := dst.ImportAll(data); errors.Is(err, store.ErrNotEmpty) {
		return fail("%s already holds records: copy only into an empty database", storeName(*to))
	} else if err != nil {
		return fail("%v", err)
	}
	copied, err := dst.ExportAll()
	if err != nil {
		return fail("checking the copy: %v", err)
	}
	want, got := data.Counts(), copied.Counts()
	for _, what := range slices.Sorted(maps.Keys(want)) {
		fmt.Fprintf(stdout, "%-14s %d\n", what, got[what])
		if got[what] != want[what] {
			return fail("%s: %d copied, but the file holds %d", what, got[what], want[what])
		}
	}
	fmt.Fprintf(stdout, "copied %s to %s; set PATBOT_DB to the URL and start patbot\n", *from, storeName(*to))
	return exitOK
}
