package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
)

const replayPolicy = `
orgs:
  acme:
    channel: C0123456789
    policy:
      rules:
        - name: read-only
          match: {permissions: {metadata: read}}
          action: approve
        - name: admin needs two
          match: {flags: [sensitive_write]}
          action: review
          approvals: 2
  beta:
    channel: C0123456780
`

// patbot policy test, with patbot stopped: the records from the store, no
// GitHub credentials.
func TestPolicyTestReplaysRecords(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "patbot.db")
	now := time.Now().UTC()
	db, err := bolt.Open(dbPath, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed := func(org string, id int64, created time.Time, perms map[string]string, state store.State, by string) {
		db.UpdateRequest(org, id, func(r *store.Request, _ bool) error {
			r.Owner, r.TokenName, r.CreatedAt, r.RepositorySelection = "octocat", "token-"+by, created, "none"
			exp := created.Add(30 * 24 * time.Hour)
			r.TokenExpiresAt = &exp
			r.PermissionsResult = store.Permissions{Repository: perms}
			if by != "" {
				r.Decision = &store.Decision{Action: map[store.State]string{store.StateApproved: "approve", store.StateDenied: "deny"}[state], Actor: by,
					SlackUser: "U0" + strings.ToUpper(by), Source: store.SourceSlack, At: created}
			}
			r.SetState(state, created, store.SourceSlack, by, "")
			return nil
		})
	}
	readOnly := map[string]string{"metadata": "read"}
	seed("acme", 1, now.Add(-48*time.Hour), readOnly, store.StateApproved, "alice")
	seed("acme", 2, now.Add(-24*time.Hour), readOnly, store.StateDenied, "bob")
	seed("acme", 3, now.Add(-2*time.Hour), map[string]string{"administration": "write"}, store.StateApproved, "carol")
	seed("acme", 4, now.Add(-40*24*time.Hour), readOnly, store.StateApproved, "old")
	seed("beta", 5, now.Add(-time.Hour), readOnly, store.StateApproved, "dave")
	seed("acme", 6, now.Add(-time.Hour), map[string]string{"contents": "write"}, store.StatePending, "")
	db.Close()

	env := testEnv(t, replayPolicy)
	env["PATBOT_DB"] = dbPath
	delete(env, "GITHUB_APP_ID")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"policy", "test", "-since", "30d"}, getenv(env), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, &errOut)
	}
	text := out.String()
	mustContain(t, "output", text,
		"against the requests created since",
		"acme  1        octocat    token-alice  approve (read-only)",
		"approved by alice",
		"denied by bob      ✗ disagrees",
		"ask for 2 approvals (admin needs two)",
		"leave it to an approver",
		"4 requests: would auto-approve 2, auto-deny 0, need two or more approvals 1, leave to an approver 1; disagree with a past human decision 1.",
		"Note: without GitHub credentials")
	if strings.Contains(text, "token-old") || strings.Contains(text, "token-dave") {
		t.Errorf("replayed a request outside the window or the policy:\n%s", text)
	}

	// A policy file with problems is refused, naming the rule.
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, strings.Replace(replayPolicy, "action: approve", "action: allow", 1))
	errOut.Reset()
	if code := run(context.Background(), []string{"policy", "test", "-config", bad}, getenv(env), io.Discard, &errOut); code != exitUsage {
		t.Fatalf("bad policy: exit %d", code)
	}
	mustContain(t, "error", errOut.String(), `orgs.acme.policy.rules[0] (read-only): action "allow"`)
	// patbot check (and serve, and a reload) refuse it the same way.
	env["PATBOT_CONFIG"] = bad
	out.Reset()
	if code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard); code != exitUsage {
		t.Fatalf("check with a bad policy: exit %d", code)
	}
	mustContain(t, "check", out.String(), `✗ configuration:`, `orgs.acme.policy.rules[0] (read-only): action "allow"`)
}

// patbot policy test while patbot serves: the records through the admin
// socket, and GitHub's pending list with the credentials.
func TestPolicyTestWhileServing(t *testing.T) {
	e := newPolicyE2E(t, readOnlyRule, readOnly)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"policy", "test"}, getenv(e.env), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, &errOut)
	}
	mustContain(t, "output", out.String(), "(from the running patbot) and GitHub's pending list",
		"415440", "approve (read-only)", "pending in GitHub", "would auto-approve 1")
	if strings.Contains(out.String(), "Note:") {
		t.Errorf("notes with credentials:\n%s", &out)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
