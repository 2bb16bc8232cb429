package main

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/patbot/patbot/store"
)

// audit exports the audit trail (decisions, revocations, refused and failed
// attempts) as JSON lines or CSV.
func audit(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := commandFlags("audit", stderr)
	dbPath := fs.String("db", cmp.Or(getenv("PATBOT_DB"), defaultDBPath), "bbolt database file; env PATBOT_DB")
	org := fs.String("org", "", "only this organization")
	since := fs.String("since", "", "only events at or after this time (RFC 3339, or a date like 2026-01-31)")
	until := fs.String("until", "", "only events before this time (RFC 3339, or a date)")
	kinds := fs.String("kind", "", "only these kinds, comma-separated: decision, revocation, refused, failed")
	format := fs.String("format", "jsonl", "jsonl or csv")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	f := store.AuditFilter{Org: *org}
	var problems []string
	for _, t := range []struct {
		name, value string
		into        *time.Time
	}{{"-since", *since, &f.Since}, {"-until", *until, &f.Until}} {
		if t.value == "" {
			continue
		}
		v, err := parseTime(t.value)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s %q is not a time (use 2026-01-31 or 2026-01-31T15:04:05Z)", t.name, t.value))
		}
		*t.into = v
	}
	if *kinds != "" {
		f.Kinds = strings.Split(*kinds, ",")
	}
	if *format != "jsonl" && *format != "csv" {
		problems = append(problems, "-format must be jsonl or csv")
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "patbot audit: %s\n", strings.Join(problems, "; "))
		return exitUsage
	}

	db, err := store.Open(*dbPath, store.Options{ReadOnly: true})
	if errors.Is(err, store.ErrLocked) {
		fmt.Fprintf(stderr, "patbot audit: %s is in use by a running patbot (bbolt admits one process): run the export where patbot is stopped, or on a copy taken while it was\n", *dbPath)
		return exitFailed
	}
	if err != nil {
		fmt.Fprintf(stderr, "patbot audit: %v\n", err)
		return exitFailed
	}
	defer db.Close()
	events, err := db.AuditEvents(f)
	if err != nil {
		fmt.Fprintf(stderr, "patbot audit: %v\n", err)
		return exitFailed
	}
	if *format == "csv" {
		err = writeAuditCSV(stdout, events)
	} else {
		enc := json.NewEncoder(stdout)
		for _, e := range events {
			if err = enc.Encode(e); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "patbot audit: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func writeAuditCSV(w io.Writer, events []store.AuditEvent) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"seq", "at", "kind", "org", "request_id", "grant_id", "action", "actor", "slack_user", "source", "reason", "detail"})
	for _, e := range events {
		cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.At.UTC().Format(time.RFC3339Nano), e.Kind, e.Org, idOrEmpty(e.RequestID),
			idOrEmpty(e.GrantID), e.Action, e.Actor, e.SlackUser, string(e.Source), csvSafe(e.Reason), csvSafe(e.Detail)})
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
