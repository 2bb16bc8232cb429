package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
)

func TestAuditExport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "patbot.db")
	db, err := bolt.Open(path, bolt.Options{Now: func() time.Time { return time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, e := range []store.AuditEvent{
		{At: day, Kind: "decision", Org: "acme", RequestID: 1, Action: "approve", Actor: "alice", ActorID: 501, As: store.AsApprover, SlackUser: "U0ALICE", Source: store.SourceSlack},
		{At: day.Add(24 * time.Hour), Kind: "decision", Org: "acme", RequestID: 2, Action: "deny", Actor: "bob", Source: store.SourceSlack, Reason: "=HYPERLINK(\"x\")"},
		{At: day.Add(48 * time.Hour), Kind: "revocation", Org: "beta", GrantID: 9, Action: "revoke", Actor: "alice"},
		{At: day.Add(72 * time.Hour), Kind: "refused", Org: "acme", RequestID: 3, Actor: "carol", Detail: "not authorized"},
	} {
		if err := db.AppendAudit(e); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"PATBOT_DB": path}

	// Locked while a patbot holds the file.
	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"audit"}, getenv(env), io.Discard, &errOut); code != exitFailed || !strings.Contains(errOut.String(), "in use by a running patbot, which does not answer on its admin socket") {
		t.Errorf("while locked: %d %q", code, errOut.String())
	}
	db.Close()

	var out bytes.Buffer
	if code := run(context.Background(), []string{"audit", "-org", "ACME", "-since", "2026-03-02", "-kind", "decision,refused"}, getenv(env), &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("jsonl:\n%s", &out)
	}
	var first store.AuditEvent
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.RequestID != 2 || first.Actor != "bob" {
		t.Errorf("first = %+v, %v", first, err)
	}

	out.Reset()
	if code := run(context.Background(), []string{"audit", "-format", "csv", "-until", "2026-03-03T12:00:00Z"}, getenv(env), &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][0] != "seq" || rows[1][7] != "alice" || rows[1][8] != "U0ALICE" {
		t.Fatalf("csv = %v, %v", rows, err)
	}
	if rows[0][12] != "actor_id" || rows[0][13] != "as" || rows[1][12] != "501" || rows[1][13] != "approver" {
		t.Errorf("who GitHub saw act: %v / %v", rows[0], rows[1])
	}
	if rows[2][10] != `'=HYPERLINK("x")` {
		t.Errorf("a formula reached the CSV unneutralised: %q", rows[2][10])
	}

	errOut.Reset()
	if code := run(context.Background(), []string{"audit", "-since", "yesterday", "-format", "xml"}, getenv(env), io.Discard, &errOut); code != exitUsage ||
		!strings.Contains(errOut.String(), `-since "yesterday" is not a time`) || !strings.Contains(errOut.String(), "-format must be jsonl or csv") {
		t.Errorf("bad flags: %d %q", code, errOut.String())
	}
	if code := run(context.Background(), []string{"audit", "-db", filepath.Join(t.TempDir(), "none.db")}, getenv(nil), io.Discard, io.Discard); code != exitFailed {
		t.Errorf("missing file: %d", code)
	}
}
