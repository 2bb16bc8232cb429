package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
)

// newPolicyE2E is patbot serve with a policy block for the org, and the
// pending request asking for perms.
func newPolicyE2E(t *testing.T, policyBlock string, perms github.Permissions) *e2e {
	t.Helper()
	e := newE2EWith(t, func(env map[string]string, _ *slacktest.Server) {
		policy := strings.Replace(e2ePolicy, "    approver_teams: [security]\n", "    approver_teams: [security]\n    policy:\n"+indentYAML(policyBlock, "      "), 1)
		if err := os.WriteFile(env["PATBOT_CONFIG"], []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		// Reconciliation would find the request before the test shapes it.
		env["PATBOT_RECONCILE_INTERVAL"] = "0"
	})
	pending := e.gh.Pending(org)[0]
	pending.Permissions = perms
	e.gh.RemoveRequest(org, requestID)
	e.gh.AddRequest(org, pending)
	return e
}

func indentYAML(text, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.Trim(text, "\n"), "\n") {
		b.WriteString(prefix + line + "\n")
	}
	return b.String()
}

// readOnlyRule approves tokens that only read metadata.
const readOnlyRule = `
rules:
  - name: read-only
    match: {permissions: {metadata: read}}
    action: approve
`

var (
	readOnly  = github.Permissions{Repository: map[string]string{"metadata": "read"}}
	adminPerm = github.Permissions{Repository: map[string]string{"administration": "write", "metadata": "read"}}
)

// A request a rule approves is approved by patbot at once: one review as
// the App, no click, the card says which rule.
func TestE2EPolicyAutoApprove(t *testing.T) {
	e := newPolicyE2E(t, readOnlyRule, readOnly)
	e.created()
	e.waitFor("card approved by the rule", func() bool {
		return strings.Contains(e.card().BlockText(), "*Approved* automatically by rule *read-only*")
	})
	if hasButtons(e.card()) {
		t.Error("the card has buttons")
	}
	reviews := e.reviews()
	if len(reviews) != 1 || reviews[0].Auth != "installation" {
		t.Fatalf("reviews = %+v", reviews)
	}
	if d, _ := e.gh.Review(org, requestID); d.Action != "approve" {
		t.Errorf("GitHub recorded %+v", d)
	}
	var decisions []store.AuditEvent
	for _, ev := range e.audit() {
		if ev.Kind == "decision" {
			decisions = append(decisions, ev)
		}
	}
	if len(decisions) != 1 || decisions[0].Rule != "read-only" || decisions[0].Source != store.SourcePolicy || decisions[0].As != store.AsApp {
		t.Errorf("decisions = %+v", decisions)
	}
}

// A request a rule denies is denied with the rule's reason, which GitHub
// passes to the requester.
func TestE2EPolicyAutoDeny(t *testing.T) {
	e := newPolicyE2E(t, `
max_lifetime: 90d
rules:
  - name: no admin tokens
    match: {permissions_any: {administration: write}}
    action: deny
    reason: Administration is not for tokens; ask the platform team.
`, adminPerm)
	e.created()
	e.waitFor("card denied by the rule", func() bool {
		return strings.Contains(e.card().BlockText(), "*Denied* automatically by rule *no admin tokens*")
	})
	card := e.card()
	mustContain(t, "card", card.BlockText(), "`sensitive_write` repository.administration write", "Administration is not for tokens")
	mustContain(t, "fallback", card.Text, "[flags: sensitive_write (repository.administration write)]")
	if d, _ := e.gh.Review(org, requestID); d.Action != "deny" || d.Reason != "Administration is not for tokens; ask the platform team." {
		t.Errorf("GitHub recorded %+v", d)
	}
	if len(e.reviews()) != 1 {
		t.Errorf("reviews = %+v", e.reviews())
	}
}

// Two approvers: the first approval sends nothing, the same person twice
// counts once, the requester cannot approve, the second sends one review.
func TestE2EPolicyTwoApprovals(t *testing.T) {
	e := newPolicyE2E(t, `
rules:
  - name: admin needs two
    match: {flags: [sensitive_write]}
    action: review
    approvals: 2
`, adminPerm)
	e.created()
	mustContain(t, "card", e.card().BlockText(), "*Needs 2 approvals* (rule *admin needs two*)")
	e.click("U0ALICE", "pat_approve")
	e.ephemeral("U0ALICE", "Your approval is counted: 1 of 2")
	e.waitFor("card counts one", func() bool { return strings.Contains(e.card().BlockText(), "1 of 2: approved by <@U0ALICE> (alice)") })
	e.click("U0ALICE", "pat_approve")
	e.ephemeral("U0ALICE", "counted already")
	e.click("U0HAL", "pat_approve")
	e.ephemeral("U0HAL", "You cannot decide your own token request")
	if n := len(e.reviews()); n != 0 {
		t.Fatalf("%d reviews before the second approver", n)
	}
	if !hasButtons(e.card()) {
		t.Fatal("the buttons went before the count was complete")
	}
	e.click("U0BOB", "pat_approve")
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0BOB> (bob)") })
	mustContain(t, "card", e.card().BlockText(), "2 of 2: approved by <@U0ALICE> (alice), <@U0BOB> (bob)")
	if r := e.reviews(); len(r) != 1 {
		t.Errorf("reviews = %+v", r)
	}
	kinds := map[string]int{}
	for _, ev := range e.audit() {
		kinds[ev.Kind]++
		if ev.Kind == "approval" && (ev.Actor != "alice" || ev.Rule != "admin needs two") {
			t.Errorf("approval event = %+v", ev)
		}
	}
	if kinds["approval"] != 1 || kinds["decision"] != 1 {
		t.Errorf("audit kinds = %v", kinds)
	}
}

// Suggest mode shows what the rules would do and leaves it to people.
func TestE2EPolicySuggestMode(t *testing.T) {
	e := newPolicyE2E(t, "mode: suggest\n"+readOnlyRule, readOnly)
	e.created()
	mustContain(t, "card", e.card().BlockText(), "Policy would approve: rule *read-only*")
	if !hasButtons(e.card()) || len(e.reviews()) != 0 {
		t.Fatalf("suggest mode decided: reviews %+v", e.reviews())
	}
	e.click("U0ALICE", "pat_approve")
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE> (alice)") })
}

// A time-bound approval: patbot revokes the grant when its time is up,
// across a restart.
func TestE2EPolicyGrantForSurvivesRestart(t *testing.T) {
	e := newPolicyE2E(t, `
rules:
  - name: brief
    match: {permissions: {metadata: read}}
    action: approve
    grant_for: 3s
`, readOnly)
	e.created()
	e.waitFor("card approved by the rule", func() bool { return strings.Contains(e.card().BlockText(), "Access granted until") })
	if len(e.gh.Grants(org)) != 1 {
		t.Fatalf("grants = %+v", e.gh.Grants(org))
	}
	e.stopApp()
	e.app, e.stop = startApp(t, e.env, e.logs)
	e.base = "http://" + e.app.Addr()
	e.waitFor("grant revoked", func() bool { return len(e.gh.Grants(org)) == 0 })
	e.waitFor("card says access ended", func() bool { return strings.Contains(e.card().BlockText(), "Access ended") })
	if revokes := e.callsUnder(http.MethodPost, "/orgs/"+org+"/personal-access-tokens/"); revokes != 1 {
		t.Errorf("%d revocations, want 1", revokes)
	}
	var revoked *store.AuditEvent
	for _, ev := range e.audit() {
		if ev.Kind == "revocation" {
			revoked = &ev
		}
	}
	if revoked == nil || revoked.Rule != "brief" || !strings.Contains(revoked.Detail, "access for 3s after approval ended") {
		t.Errorf("revocation event = %+v", revoked)
	}
}

// A rule that needs GitHub, unreachable, does not match; a later rule
// that would approve leaves the request to people instead.
func TestE2EPolicyFailsClosed(t *testing.T) {
	e := newPolicyE2E(t, `
rules:
  - name: contractors denied
    match: {requester_teams: [contractors]}
    action: deny
  - name: read-only
    match: {permissions: {metadata: read}}
    action: approve
`, readOnly)
	e.gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: "/orgs/" + org + "/teams/contractors/memberships/", Status: http.StatusBadGateway})
	e.created()
	card := e.card()
	mustContain(t, "card", card.BlockText(), "Could not check rule contractors denied", "no rule approves this request by itself")
	if !hasButtons(card) {
		t.Error("no buttons: people must decide")
	}
	if len(e.reviews()) != 0 {
		t.Errorf("reviews = %+v", e.reviews())
	}
}

// With grant_for_choices, Approve asks how long; the rule's grant_for
// caps the choices.
func TestE2EPolicyGrantForChoices(t *testing.T) {
	e := newPolicyE2E(t, `
grant_for_choices: [1d, 7d, 30d]
rules:
  - name: contractors
    match: {requesters: [halain987]}
    action: review
    grant_for: 7d
`, readOnly)
	e.created()
	card := e.card()
	if strings.Contains(string(card.Blocks), `"confirm"`) {
		t.Error("Approve still has its confirmation: the dialog confirms")
	}
	e.click("U0ALICE", "pat_approve")
	e.waitFor("dialog opened", func() bool { return len(e.slack.Views()) == 1 })
	modal := string(e.slack.Views()[0].View)
	mustContain(t, "dialog", modal, `"callback_id":"pat_approve_for"`, `"text":"1d"`, `"text":"7d"`)
	if strings.Contains(modal, `"text":"30d"`) {
		t.Error("the dialog offers more than the rule allows")
	}
	meta := fmt.Sprintf(`{"org":%q,"id":%d,"channel":%q}`, org, requestID, channel)
	bad := slacktest.ViewSubmissionSelectPayload("U0ALICE", view.CallbackApproveFor, meta, view.GrantForBlock, view.GrantForInput, "2592000")
	if code, body := e.slackPost("/slack/interactions", bad, time.Now(), testSigning); code != http.StatusOK || !strings.Contains(body, "Pick one of the durations") {
		t.Errorf("30d picked: %d %s", code, body)
	}
	ok := slacktest.ViewSubmissionSelectPayload("U0ALICE", view.CallbackApproveFor, meta, view.GrantForBlock, view.GrantForInput, "86400")
	e.slackPost("/slack/interactions", ok, time.Now(), testSigning)
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "Access granted until") })
	r := e.record()
	if r.GrantEnds == nil || r.Decision == nil || r.Decision.GrantFor != 24*time.Hour || r.GrantEnds.Sub(r.Decision.At) > 24*time.Hour+time.Minute {
		t.Errorf("record: ends %v, decision %+v", r.GrantEnds, r.Decision)
	}
	for _, kind := range []string{"grant_end"} {
		if _, err := e.openStore().Timer(kind, view.RequestKey(org, requestID)); err != nil {
			t.Errorf("no %s timer: %v", kind, err)
		}
	}
}
