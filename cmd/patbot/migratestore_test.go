package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
	"github.com/patbot/patbot/store/postgres"
	"github.com/patbot/patbot/store/postgres/pgtest"
)

// A bbolt install moves to PostgreSQL whole: every record, numbers and
// sequence kept, and new numbers follow on; a non-empty target and a file
// a patbot holds are refused.
func TestMigrateStore(t *testing.T) {
	url := pgtest.Database(t)
	path := filepath.Join(t.TempDir(), "patbot.db")
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	src, err := bolt.Open(path, bolt.Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	src.AcceptDelivery(store.Delivery{ID: "g1", Event: "personal_access_token_request", Outcome: "queued"}, &store.Job{Event: "personal_access_token_request", Org: "acme", RequestID: 42, Payload: []byte(`{"x":1}`)})
	src.AcceptDelivery(store.Delivery{ID: "g2", Outcome: "ignored"}, nil)
	src.UpdateRequest("acme", 42, func(r *store.Request, _ bool) error {
		r.Owner, r.TokenName, r.CreatedAt = "octocat", "ci", at
		r.Card = store.Card{Channel: "C1", TS: "1.2"}
		r.SetState(store.StatePending, at, store.SourceWebhook, "octocat", "requested")
		return nil
	})
	src.AppendAudit(store.AuditEvent{Kind: "decision", Org: "acme", RequestID: 41, Actor: "alice"})
	src.AppendAudit(store.AuditEvent{Kind: "refused", Org: "acme", RequestID: 42, Actor: "carol"})
	src.SetTimer(store.Timer{Kind: "settle", Key: "acme/42", Due: at.Add(time.Minute), Payload: []byte(`{}`)})
	src.SetCursor("audit-stream", 1)
	src.PutLink(store.Link{SlackUser: "U1", GitHubID: 7, GitHubLogin: "alice", LinkedAt: at, TokenExpires: at.Add(8 * time.Hour),
		Token: store.Sealed{KeyID: "k", Nonce: []byte("n"), Data: []byte("sealed")}})

	// A running patbot holds the file.
	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"migrate-store", "-from", path, "-to", url}, getenv(nil), io.Discard, &errOut); code != exitFailed {
		t.Fatalf("with the file in use: exit %d: %s", code, &errOut)
	}
	mustContain(t, "message", errOut.String(), "in use by a running patbot")
	want, err := src.ExportAll()
	if err != nil {
		t.Fatal(err)
	}
	src.Close()

	var out bytes.Buffer
	errOut.Reset()
	if code := run(context.Background(), []string{"migrate-store", "-from", path, "-to", url}, getenv(nil), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, &errOut)
	}
	mustContain(t, "output", out.String(), "requests       1", "audit events   2", "jobs           1", "timers         1", "links          1", "copied")

	dst, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got, err := dst.ExportAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Errorf("copy differs:\ngot  %+v\nwant %+v", normalize(got), normalize(want))
	}
	// New numbers follow the copied ones.
	if id, err := dst.EnqueueJob(store.Job{Event: "card"}); err != nil || id <= want.Jobs[0].ID {
		t.Errorf("next job %d, %v; want past %d", id, err, want.Jobs[0].ID)
	}
	dst.AppendAudit(store.AuditEvent{Kind: "decision", Org: "acme"})
	if events, _ := dst.AuditEvents(store.AuditFilter{After: 2}); len(events) != 1 || events[0].Seq != 3 {
		t.Errorf("next audit event = %+v, want seq 3", events)
	}

	// Once more: the target is not empty now.
	errOut.Reset()
	if code := run(context.Background(), []string{"migrate-store", "-from", path, "-to", url}, getenv(nil), io.Discard, &errOut); code != exitFailed {
		t.Fatalf("into a non-empty database: exit %d", code)
	}
	mustContain(t, "message", errOut.String(), "already holds records")
}

// normalize makes an export comparable across backends: times in UTC at
// PostgreSQL's microsecond precision, and no nil-versus-empty difference.
func normalize(e store.Export) store.Export {
	for i := range e.Timers {
		e.Timers[i].Due = e.Timers[i].Due.UTC().Truncate(time.Microsecond)
		if len(e.Timers[i].Payload) == 0 {
			e.Timers[i].Payload = nil
		}
	}
	for i := range e.Jobs {
		if len(e.Jobs[i].Payload) == 0 {
			e.Jobs[i].Payload = nil
		}
	}
	return e
}
