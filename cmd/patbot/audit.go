package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patbot/patbot/store"
)

// audit exports the audit trail (decisions, revocations, refused and failed
// attempts) as JSON lines or CSV: from the running patbot, through its
// admin socket, or else from the database file.
func audit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := commandFlags("audit", stderr)
	dbPath := fs.String("db", cmp.Or(getenv("PATBOT_DB"), defaultDBPath), "the store: a bbolt file or a postgres:// URL; env PATBOT_DB")
	org := fs.String("org", "", "only this organization")
	since := fs.String("since", "", "only events at or after this time (RFC 3339, or a date like 2026-01-31)")
	until := fs.String("until", "", "only events before this time (RFC 3339, or a date)")
	kinds := fs.String("kind", "", "only these kinds, comma-separated: decision, approval, revocation, refused, failed, unconfirmed, link, unlink")
	format := fs.String("format", "jsonl", "jsonl or csv")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	query := url.Values{}
	for name, v := range map[string]string{"org": *org, "since": *since, "until": *until, "kind": *kinds, "format": *format} {
		if v != "" {
			query.Set(name, v)
		}
	}
	q, problems := parseAuditQuery(query)
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "patbot audit: %s\n", strings.Join(problems, "; "))
		return exitUsage
	}

	socket := adminSocketPath(getenv, *dbPath)
	err := askAdmin(ctx, socket, "/audit", query, stdout)
	if err == nil {
		return exitOK
	}
	if !errors.Is(err, errNoAdmin) {
		fmt.Fprintf(stderr, "patbot audit: %v\n", err)
		return exitFailed
	}
	// No patbot is running: read the file.
	db, err := openStoreUnserved(ctx, *dbPath, socket)
	if err != nil {
		fmt.Fprintf(stderr, "patbot audit: %v\n", err)
		return exitFailed
	}
	defer db.Close()
	events, err := db.AuditEvents(q.filter)
	if err == nil {
		err = writeAudit(stdout, q.format, events)
	}
	if err != nil {
		fmt.Fprintf(stderr, "patbot audit: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// auditQuery is an audit export's filter and format, as patbot audit's
// flags and the admin socket's query name them.
type auditQuery struct {
	filter store.AuditFilter
	format string
}

func parseAuditQuery(v url.Values) (auditQuery, []string) {
	q := auditQuery{filter: store.AuditFilter{Org: v.Get("org")}, format: cmp.Or(v.Get("format"), "jsonl")}
	var problems []string
	for _, t := range []struct {
		name string
		into *time.Time
	}{{"since", &q.filter.Since}, {"until", &q.filter.Until}} {
		raw := v.Get(t.name)
		if raw == "" {
			continue
		}
		at, err := parseTime(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("-%s %q is not a time (use 2026-01-31 or 2026-01-31T15:04:05Z)", t.name, raw))
		}
		*t.into = at
	}
	if kinds := v.Get("kind"); kinds != "" {
		q.filter.Kinds = strings.Split(kinds, ",")
	}
	if q.format != "jsonl" && q.format != "csv" {
		problems = append(problems, "-format must be jsonl or csv")
	}
	return q, problems
}

// writeAudit writes events as JSON lines or CSV.
func writeAudit(w io.Writer, format string, events []store.AuditEvent) error {
	if format == "csv" {
		return writeAuditCSV(w, events)
	}
	enc := json.NewEncoder(w)
	for _, e := range events {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}

func writeAuditCSV(w io.Writer, events []store.AuditEvent) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"seq", "at", "kind", "org", "request_id", "grant_id", "action", "actor", "slack_user", "source", "reason", "detail", "actor_id", "as", "rule"})
	for _, e := range events {
		cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.At.UTC().Format(time.RFC3339Nano), e.Kind, e.Org, idOrEmpty(e.RequestID),
			idOrEmpty(e.GrantID), e.Action, e.Actor, e.SlackUser, string(e.Source), csvSafe(e.Reason), csvSafe(e.Detail),
			idOrEmpty(e.ActorID), e.As, csvSafe(e.Rule)})
	}
	cw.Flush()
	return cw.Error()
}

func idOrEmpty(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

// csvSafe keeps a spreadsheet from reading text that starts with =, +, -
// or @ as a formula: deny reasons are written by approvers, detail by
// requesters' token names.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02", s)
}
