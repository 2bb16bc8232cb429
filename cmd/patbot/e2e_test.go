package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patbot/patbot/store/postgres/pgtest"

	"github.com/patbot/patbot/bot/logtest"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
)

const (
	org       = "github-ssh-authority"
	channel   = "C0000000001"
	requestID = 415440
	reqKey    = "github-ssh-authority/415440"
)

const e2ePolicy = `
orgs:
  github-ssh-authority:
    channel: C0000000001
    approver_teams: [security]
users:
  U0ALICE: alice      # owner
  U0BOB: bob          # member of the security team
  U0CAROL: carol      # plain member
  U0HAL: halain987    # the requester
`

// e2e is patbot serve, wired as main wires it, between a fake GitHub and a
// fake Slack, with a real bbolt file.
type e2e struct {
	t     *testing.T
	env   map[string]string
	gh    *githubtest.Server
	slack *slacktest.Server
	app   *App
	base  string
	logs  *logtest.Buffer
	stop  func()
	db    store.Store // opened after patbot stops
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	return newE2EWith(t, nil)
}

// newE2EWith lets a test change the environment and the fake Slack before
// patbot starts.
func newE2EWith(t *testing.T, tune func(env map[string]string, sl *slacktest.Server)) *e2e {
	t.Helper()
	gh, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	gh.AddOrg(org, 49956902)
	gh.SetMembership(org, "alice", "admin", "active")
	gh.SetMembership(org, "bob", "member", "active")
	gh.SetMembership(org, "carol", "member", "active")
	gh.SetMembership(org, "halain987", "admin", "active") // owners may not approve their own tokens either
	gh.SetTeamMembership(org, "security", "bob", "member", "active")
	exp := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	gh.AddRequest(org, github.PendingRequest{
		ID: requestID, Owner: github.User{Login: "halain987", ID: 18029382}, TokenID: 98716, TokenName: "release-bot",
		Reason: "Publish releases from CI", RepositorySelection: "none", TokenExpiresAt: &exp,
	})
	fakeSlack := slacktest.New(testBotToken)
	t.Cleanup(fakeSlack.Close)

	env := fakeEnv(t, e2ePolicy, gh, fakeSlack)
	if tune != nil {
		tune(env, fakeSlack)
	}

	e := &e2e{t: t, env: env, gh: gh, slack: fakeSlack, logs: &logtest.Buffer{}}
	e.app, e.stop = startApp(t, env, e.logs)
	e.base = "http://" + e.app.Addr()
	if env["PATBOT_RECONCILE_INTERVAL"] != "0" {
		// The reconciliation at start runs before the test does anything,
		// so that it cannot race with what the test checks.
		e.waitFor("the first reconciliation", func() bool { return e.reconciliations() > 0 })
	}
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("patbot's log:\n%s", e.logs)
		}
		// The manifest grants scopes for the methods in bot.SlackScopes:
		// every method patbot called must be listed there.
		for _, c := range e.slack.Calls("") {
			if _, ok := bot.SlackScopes[c.Method]; !ok {
				t.Errorf("patbot called %s, which bot.SlackScopes (and so the manifest) does not cover", c.Method)
			}
		}
		mustNotLeak(t, "logs", e.logs.String(), testWebhookSecret, testBotToken, testSigning, "PRIVATE KEY", "ghs_")
	})
	return e
}

func fixtureBody(t *testing.T, action, sender string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../github/testdata/personal_access_token_request.created.json")
	if err != nil {
		t.Fatal(err)
	}
	// Outcome payloads are derived from the real created delivery:
	// GitHub publishes no denied or cancelled examples.
	b = bytes.Replace(b, []byte(`"action": "created"`), []byte(`"action": "`+action+`"`), 1)
	if sender != "" {
		b = bytes.Replace(b, []byte("\"sender\": {\n    \"login\": \"halain987\""), []byte("\"sender\": {\n    \"login\": \""+sender+"\""), 1)
	}
	return b
}

// webhook sends a signed delivery and returns the status.
func (e *e2e) webhook(delivery string, body []byte) int {
	req, _ := http.NewRequest(http.MethodPost, e.base+"/github/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(github.HeaderEvent, github.EventPATRequest)
	req.Header.Set(github.HeaderDelivery, delivery)
	req.Header.Set(github.HeaderSignature, github.Sign([]byte(testWebhookSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// reconciliations counts the reconciliations run so far, from /metrics.
func (e *e2e) reconciliations() int {
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, "patbot_reconcile_runs_total{"); ok {
			var v float64
			fmt.Sscan(rest[strings.Index(rest, "}")+1:], &v)
			n += int(v)
		}
	}
	return n
}

// created delivers the created webhook and waits for its card.
func (e *e2e) created() slacktest.Message {
	e.t.Helper()
	if code := e.webhook("created-1", fixtureBody(e.t, "created", "")); code != http.StatusAccepted {
		e.t.Fatalf("created webhook: %d", code)
	}
	e.waitFor("card posted and recorded", func() bool { return e.jobDone("created-1") })
	return e.card()
}

func (e *e2e) card() slacktest.Message {
	e.t.Helper()
	msgs := e.slack.Messages(channel)
	if len(msgs) != 1 {
		e.t.Fatalf("%d messages in the channel, want exactly one card", len(msgs))
	}
	return msgs[0]
}

// slackPost sends a form to a Slack route, signed at ts, and returns the
// status and body.
func (e *e2e) slackPost(path string, form url.Values, ts time.Time, secret string) (int, string) {
	req := slacktest.SignedRequest(secret, e.base+path, ts, form)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (e *e2e) click(user, actionID string) int {
	e.t.Helper()
	card := e.card()
	code, _ := e.slackPost("/slack/interactions", slacktest.BlockActionPayload(user, channel, card.TS, actionID, reqKey), time.Now(), testSigning)
	return code
}

func (e *e2e) submitDeny(user, reason string) (int, string) {
	meta := fmt.Sprintf(`{"org":%q,"id":%d,"channel":%q}`, org, requestID, channel)
	return e.slackPost("/slack/interactions",
		slacktest.ViewSubmissionPayload(user, "pat_deny", meta, map[string]map[string]string{"reason": {"reason_input": reason}}),
		time.Now(), testSigning)
}

func (e *e2e) waitFor(what string, cond func() bool) {
	e.t.Helper()
	waitFor(e.t, what, cond)
}

// callsUnder counts the calls to GitHub with method whose path starts with
// prefix.
func (e *e2e) callsUnder(method, prefix string) int {
	n := 0
	for _, c := range e.gh.Calls() {
		if c.Method == method && strings.HasPrefix(c.Path, prefix) {
			n++
		}
	}
	return n
}

func (e *e2e) reviews() []githubtest.Call {
	return e.gh.CallsTo(http.MethodPost, fmt.Sprintf("/orgs/%s/personal-access-token-requests/%d", org, requestID))
}

func (e *e2e) ephemeral(user, want string) {
	e.t.Helper()
	e.waitFor("ephemeral to "+user+" saying "+want, func() bool {
		for _, m := range e.slack.Ephemerals(user) {
			if strings.Contains(m.Text, want) {
				return true
			}
		}
		return false
	})
}

// stopApp stops patbot, which lets the test open its store.
func (e *e2e) stopApp() {
	e.stop()
	e.stop = func() {}
}

// openStore stops patbot, whose store is locked while it runs, and opens
// the store for the test (once).
func (e *e2e) openStore() store.Store {
	e.t.Helper()
	if e.db != nil {
		return e.db
	}
	e.stopApp()
	db, err := openStore(context.Background(), e.env["PATBOT_DB"], false)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	e.db = db
	return db
}

// record reads the request's record (stopping patbot).
func (e *e2e) record() store.Request {
	e.t.Helper()
	r, err := e.openStore().Request(org, requestID)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// audit reads the audit trail (stopping patbot).
func (e *e2e) audit() []store.AuditEvent {
	e.t.Helper()
	events, err := e.openStore().AuditEvents(store.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return events
}

// jobDone reports whether the work of a delivery has finished.
func (e *e2e) jobDone(delivery string) bool {
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"job done"`) && strings.Contains(line, `"delivery":"`+delivery+`"`) {
			return true
		}
	}
	return false
}

func hasButtons(m slacktest.Message) bool {
	return strings.Contains(string(m.Blocks), `"pat_approve"`) && strings.Contains(string(m.Blocks), `"pat_deny"`)
}

func TestE2ECardShowsTheRequest(t *testing.T) {
	e := newE2E(t)
	card := e.created()
	web := github.WebURL(e.gh.URL) // a GitHub Enterprise Server-style host
	mustContain(t, "card", card.BlockText(),
		"halain987", "<@U0HAL>", "release-bot", "98716", "Publish releases from CI", "none (organization permissions only)",
		web+"/organizations/github-ssh-authority/settings/personal-access-token-requests/415440")
	if !hasButtons(card) {
		t.Error("card has no Approve and Deny buttons")
	}
	if !strings.Contains(card.Text, "halain987") || !strings.Contains(card.Text, "release-bot") {
		t.Errorf("fallback text = %q", card.Text)
	}
	if !strings.Contains(string(card.Metadata), `"request":"github-ssh-authority/415440"`) {
		t.Errorf("card metadata = %s", card.Metadata)
	}
	// A redelivery posts nothing more.
	if code := e.webhook("created-1", fixtureBody(t, "created", "")); code != http.StatusOK {
		t.Errorf("redelivery: %d", code)
	}
}

func TestE2EApprove(t *testing.T) {
	e := newE2E(t)
	e.created()
	if code := e.click("U0ALICE", "pat_approve"); code != http.StatusOK {
		t.Fatalf("click: %d", code)
	}
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE> (alice)") })
	card := e.card()
	if hasButtons(card) {
		t.Errorf("card after approval: %s", card.Blocks)
	}
	d, ok := e.gh.Review(org, requestID)
	if !ok || d.Action != "approve" || len(e.reviews()) != 1 {
		t.Fatalf("GitHub review = %+v %v, calls %d", d, ok, len(e.reviews()))
	}
	e.waitFor("requester told", func() bool { return len(e.slack.Messages("D0HAL")) == 1 })
	if dm := e.slack.Messages("D0HAL")[0]; !strings.Contains(dm.Text, "approved by <@U0ALICE> (alice)") {
		t.Errorf("DM = %q", dm.Text)
	}

	// GitHub's webhook confirming patbot's own decision changes nothing.
	updates := e.card().Updates
	if code := e.webhook("approved-1", fixtureBody(t, "approved", "patbot[bot]")); code != http.StatusAccepted {
		t.Fatalf("approved webhook: %d", code)
	}
	e.waitFor("confirmation processed", func() bool { return e.jobDone("approved-1") })
	r := e.record()
	if card := e.card(); card.Updates != updates {
		t.Errorf("confirmation updated the card (%d updates, %d before)", card.Updates, updates)
	}
	if r.State != store.StateApproved || r.Decision.Actor != "alice" || r.Decision.SlackUser != "U0ALICE" || r.Decision.Source != store.SourceSlack {
		t.Errorf("record = %+v / %+v", r.State, r.Decision)
	}
	events := e.audit()
	if len(events) != 1 || events[0].Kind != "decision" || events[0].Actor != "alice" || events[0].Action != "approve" {
		t.Errorf("audit = %+v", events)
	}
}

func TestE2EDenyWithReason(t *testing.T) {
	e := newE2E(t)
	e.created()
	if code := e.click("U0ALICE", "pat_deny"); code != http.StatusOK {
		t.Fatalf("click: %d", code)
	}
	views := e.slack.Views()
	if len(views) != 1 || views[0].Method != "views.open" || !strings.Contains(string(views[0].View), `"callback_id":"pat_deny"`) {
		t.Fatalf("modal not opened before the acknowledgement: %+v", views)
	}
	if len(e.reviews()) != 0 {
		t.Fatal("clicking Deny decided without a reason dialog")
	}
	reason := "Too broad: ask for <contents> on one repo & retry."
	code, body := e.submitDeny("U0ALICE", reason)
	if code != http.StatusOK || body != "" {
		t.Fatalf("submission: %d %q, want an empty 200 that closes the dialog", code, body)
	}
	e.waitFor("card denied", func() bool { return strings.Contains(e.card().BlockText(), "*Denied* by") })
	d, _ := e.gh.Review(org, requestID)
	if d.Action != "deny" || d.Reason != reason {
		t.Errorf("GitHub review = %+v", d)
	}
	card := e.card().BlockText()
	if !strings.Contains(card, "*Denied* by <@U0ALICE> (alice)") || !strings.Contains(card, "&lt;contents&gt; on one repo &amp; retry.") {
		t.Errorf("card = %s", card)
	}
	e.waitFor("requester told", func() bool { return len(e.slack.Messages("D0HAL")) == 1 })
	if dm := e.slack.Messages("D0HAL")[0].Text; !strings.Contains(dm, "denied") || !strings.Contains(dm, "&lt;contents&gt;") {
		t.Errorf("DM = %q", dm)
	}
}

func TestE2EDenyReasonTooLong(t *testing.T) {
	e := newE2E(t)
	e.created()
	updates := e.card().Updates
	code, body := e.submitDeny("U0ALICE", strings.Repeat("é", 1025))
	if code != http.StatusOK {
		t.Fatalf("submission: %d", code)
	}
	var resp struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.ResponseAction != "errors" || !strings.Contains(resp.Errors["reason"], "1024") {
		t.Fatalf("answer = %q", body)
	}
	// The submission was refused in the answer itself: no work was queued.
	if len(e.reviews()) != 0 || e.card().Updates != updates {
		t.Error("an over-long reason reached GitHub or the card")
	}
}

func TestE2ERefusals(t *testing.T) {
	tests := map[string]struct {
		user, action, want, detail string
	}{
		"unmapped user":           {"U0NOBODY", "pat_approve", "not linked to a GitHub login", "slack user not mapped"},
		"member, not an approver": {"U0CAROL", "pat_approve", "Only owners of github-ssh-authority and members of its approver teams (security)", "not authorized"},
		"own request":             {"U0HAL", "pat_approve", "cannot decide your own", "own request"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newE2E(t)
			e.created()
			updates := e.card().Updates
			if code := e.click(tc.user, tc.action); code != http.StatusOK {
				t.Fatalf("click: %d", code)
			}
			e.ephemeral(tc.user, tc.want)
			if len(e.reviews()) != 0 || e.card().Updates != updates {
				t.Errorf("a refused click changed something: %d reviews, %d card updates (%d before)", len(e.reviews()), e.card().Updates, updates)
			}
			if r := e.record(); r.State != store.StatePending {
				t.Errorf("state = %s", r.State)
			}
			events := e.audit()
			if len(events) != 1 || events[0].Kind != "refused" || events[0].Detail != tc.detail || events[0].SlackUser != tc.user {
				t.Errorf("audit = %+v", events)
			}
		})
	}
}

func TestE2EUnauthorizedDenyDialogExplains(t *testing.T) {
	e := newE2E(t)
	e.created()
	e.click("U0CAROL", "pat_deny")
	e.waitFor("dialog turned into the refusal", func() bool {
		v := e.slack.Views()
		return len(v) == 2 && v[1].Method == "views.update" && strings.Contains(string(v[1].View), "Only owners")
	})
	// Submitting anyway is refused too.
	e.submitDeny("U0CAROL", "no")
	e.ephemeral("U0CAROL", "Only owners")
	if len(e.reviews()) != 0 {
		t.Error("an unauthorized denial reached GitHub")
	}
}

func TestE2EApproverTeamMemberMayDecide(t *testing.T) {
	e := newE2E(t)
	e.created()
	e.click("U0BOB", "pat_approve")
	e.waitFor("card approved by bob", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0BOB> (bob)") })
	events := e.audit()
	if len(events) != 1 || !strings.Contains(events[0].Detail, "a member of github-ssh-authority/security") {
		t.Errorf("audit = %+v", events)
	}
}

func TestE2EConcurrentClicksOneDecision(t *testing.T) {
	e := newE2E(t)
	e.created()
	users := []string{"U0ALICE", "U0BOB"}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if code := e.click(users[i%2], "pat_approve"); code != http.StatusOK {
				t.Errorf("click %d: %d", i, code)
			}
		})
	}
	wg.Wait()
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by") })
	e.waitFor("every clicker answered", func() bool {
		return len(e.slack.Ephemerals("U0ALICE"))+len(e.slack.Ephemerals("U0BOB")) == 15
	})
	if n := len(e.reviews()); n != 1 {
		t.Fatalf("%d reviews sent to GitHub, want exactly 1", n)
	}
	for _, m := range append(e.slack.Ephemerals("U0ALICE"), e.slack.Ephemerals("U0BOB")...) {
		if !strings.Contains(m.Text, "already") {
			t.Errorf("late clicker told %q", m.Text)
		}
	}
	r := e.record()
	if r.State != store.StateApproved {
		t.Errorf("state = %s", r.State)
	}
	if events := e.audit(); len(events) != 1 {
		t.Errorf("%d audit events, want 1 decision", len(events))
	}
}

func TestE2EDecidedElsewhere(t *testing.T) {
	for _, tc := range []struct{ action, want, told string }{
		{"approved", "*Approved* in GitHub by an-owner", "already approved in GitHub by an-owner"},
		{"denied", "*Denied* in GitHub by an-owner", "already denied in GitHub by an-owner"},
		{"cancelled", "*Cancelled* by the requester", "The requester cancelled this request"},
	} {
		t.Run(tc.action, func(t *testing.T) {
			e := newE2E(t)
			e.created()
			e.gh.RemoveRequest(org, requestID)
			if code := e.webhook("outcome-1", fixtureBody(t, tc.action, "an-owner")); code != http.StatusAccepted {
				t.Fatalf("webhook: %d", code)
			}
			e.waitFor("card updated", func() bool { return strings.Contains(e.card().BlockText(), tc.want) })
			card := e.card()
			if hasButtons(card) {
				t.Errorf("card = %s", card.Blocks)
			}
			// A click on a stale card is answered, and nothing is sent.
			e.click("U0ALICE", "pat_approve")
			e.ephemeral("U0ALICE", tc.told)
			if len(e.reviews()) != 0 {
				t.Error("a decided request was reviewed again")
			}
		})
	}
}

func TestE2EGitHubSaysNoLongerPending(t *testing.T) {
	e := newE2E(t)
	e.created()
	// Decided in GitHub, but its webhook has not arrived: the review gets
	// GitHub's 404.
	e.gh.RemoveRequest(org, requestID)
	e.click("U0ALICE", "pat_approve")
	e.ephemeral("U0ALICE", "no longer pending")
	card := e.card()
	if hasButtons(card) || !strings.Contains(card.BlockText(), "No longer pending") {
		t.Errorf("card = %s", card.Blocks)
	}
	if r := e.record(); r.State != store.StateClosed || r.Decision != nil {
		t.Errorf("record = %s %+v", r.State, r.Decision)
	}
}

func TestE2EGitHubFailuresKeepTheCardUsable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault githubtest.Fault
		want  string
	}{
		{"422 while still pending", githubtest.Fault{Status: http.StatusUnprocessableEntity, Message: "Validation Failed"}, "GitHub answered 422 Unprocessable Entity"},
		{"rate limited", githubtest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 30}, "rate limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t)
			e.created()
			f := tc.fault
			f.Method, f.Path, f.Times = http.MethodPost, fmt.Sprintf("/orgs/%s/personal-access-token-requests/%d", org, requestID), 1
			e.gh.Fail(f)
			e.click("U0ALICE", "pat_approve")
			e.ephemeral("U0ALICE", "did not go through")
			e.waitFor("failure on the card", func() bool { return strings.Contains(e.card().BlockText(), tc.want) })
			card := e.card()
			if !hasButtons(card) || strings.Contains(card.BlockText(), "Approved") {
				t.Errorf("card = %s", card.Blocks)
			}
			// The buttons still work: the next click goes through.
			e.click("U0ALICE", "pat_approve")
			e.waitFor("approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE>") })
			if hasButtons(e.card()) {
				t.Error("approved card still has buttons")
			}
			r := e.record()
			if r.State != store.StateApproved || r.Failure != "" {
				t.Errorf("record = %s, failure %q", r.State, r.Failure)
			}
		})
	}
}

// A 502 to a review GitHub did take: the card waits for GitHub to
// confirm, with no buttons, and GitHub's webhook (sent by the App) credits
// the approver, in the card and in the audit trail.
func TestE2EUnconfirmedReviewCreditedByTheWebhook(t *testing.T) {
	e := newE2E(t)
	e.created()
	e.gh.Fail(githubtest.Fault{Method: http.MethodPost, Path: fmt.Sprintf("/orgs/%s/personal-access-token-requests/%d", org, requestID),
		Status: http.StatusBadGateway, Apply: true, Times: 1})
	e.click("U0ALICE", "pat_approve")
	e.ephemeral("U0ALICE", "waiting for GitHub to confirm")
	e.waitFor("card waiting", func() bool { return strings.Contains(e.card().BlockText(), "waiting for GitHub to confirm") })
	if hasButtons(e.card()) {
		t.Error("buttons shown while the outcome is unknown")
	}
	if code := e.webhook("approved-1", fixtureBody(t, "approved", "patbot[bot]")); code != http.StatusAccepted {
		t.Fatalf("approved webhook: %d", code)
	}
	e.waitFor("approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE> (alice)") })
	e.stopApp()
	var credited []string
	for _, ev := range e.audit() {
		if ev.Kind == "decision" {
			credited = append(credited, ev.Actor+"/"+string(ev.Source))
		}
	}
	if strings.Join(credited, ",") != "alice/slack" {
		t.Errorf("decisions in the audit trail: %v", credited)
	}
	if n := len(e.reviews()); n != 1 {
		t.Errorf("%d reviews sent, want 1", n)
	}
}

func TestE2ESlackSignatureRequired(t *testing.T) {
	e := newE2E(t)
	card := e.created()
	form := slacktest.BlockActionPayload("U0ALICE", channel, card.TS, "pat_approve", reqKey)
	tests := map[string]struct {
		ts     time.Time
		secret string
	}{
		"wrong secret": {time.Now(), "guessed"},
		"stale":        {time.Now().Add(-6 * time.Minute), testSigning},
		"future":       {time.Now().Add(6 * time.Minute), testSigning},
	}
	for name, tc := range tests {
		for _, path := range []string{"/slack/interactions", "/slack/commands"} {
			if code, _ := e.slackPost(path, form, tc.ts, tc.secret); code != http.StatusUnauthorized {
				t.Errorf("%s %s: %d, want 401", name, path, code)
			}
		}
	}
	// No signature at all.
	resp, err := http.Post(e.base+"/slack/interactions", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned: %d", resp.StatusCode)
	}
	// The payload in the query string is never read.
	req := slacktest.SignedRequest(testSigning, e.base+"/slack/interactions?"+form.Encode(), time.Now(), url.Values{})
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("payload in the query: %d, want 400", resp.StatusCode)
	}
	time.Sleep(50 * time.Millisecond)
	if len(e.reviews()) != 0 || len(e.slack.Ephemerals("")) != 0 {
		t.Error("a rejected request had an effect")
	}
}

// SIGHUP reloads the policy file: a file with problems changes nothing,
// and a good one is in force at once.
func TestE2ESighupReloadsThePolicy(t *testing.T) {
	e := newE2E(t)
	e.gh.SetMembership(org, "dave", "admin", "active")
	e.created()
	reloadWith := func(policy, logged string) {
		t.Helper()
		if err := os.WriteFile(e.env["PATBOT_CONFIG"], []byte(policy), 0o600); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(e.logs.String(), logged)
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		e.waitFor(logged, func() bool { return strings.Count(e.logs.String(), logged) > before })
	}
	reloadWith(e2ePolicy+"  U0DAVE: [not, a, login]\n", "policy file not reloaded")
	e.click("U0DAVE", "pat_approve")
	e.ephemeral("U0DAVE", "not linked to a GitHub login")

	reloadWith(e2ePolicy+"  U0DAVE: dave\n", "policy file reloaded")
	e.click("U0DAVE", "pat_approve")
	e.waitFor("approved by dave", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0DAVE> (dave)") })
}

// While patbot serves, patbot audit asks it through the admin socket (the
// database is locked); the socket is private; and the audit stream holds
// each event once, across a restart.
func TestE2EAuditWhileServingAndStreamed(t *testing.T) {
	var streamPath string
	e := newE2EWith(t, func(env map[string]string, _ *slacktest.Server) {
		streamPath = filepath.Join(filepath.Dir(env["PATBOT_DB"]), "audit.jsonl")
		env["PATBOT_AUDIT_STREAM"] = streamPath
	})
	e.created()
	e.click("U0ALICE", "pat_approve")
	e.waitFor("approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE>") })

	socket := filepath.Join(filepath.Dir(e.env["PATBOT_DB"]), "patbot.sock")
	fi, err := os.Stat(socket)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("admin socket: %v, %v", fi, err)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"audit", "-kind", "decision", "-format", "csv"}, getenv(e.env), &out, &errOut); code != 0 {
		t.Fatalf("patbot audit while serving: exit %d: %s", code, &errOut)
	}
	mustContain(t, "audit export", out.String(), "seq,at,kind", ",decision,github-ssh-authority,415440,,approve,alice,U0ALICE,slack,")

	streamed := func() []store.AuditEvent {
		raw, _ := os.ReadFile(streamPath)
		var events []store.AuditEvent
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var ev store.AuditEvent
			if line != "" && json.Unmarshal([]byte(line), &ev) == nil {
				events = append(events, ev)
			}
		}
		return events
	}
	e.waitFor("decision streamed", func() bool {
		for _, ev := range streamed() {
			if ev.Kind == "decision" && ev.Actor == "alice" {
				return true
			}
		}
		return false
	})
	// A restart streams what comes next, and nothing twice.
	e.stopApp()
	app, stop := startApp(t, e.env, e.logs)
	defer stop()
	e.base = "http://" + app.Addr()
	e.click("U0NOBODY", "pat_approve") // refused (not mapped): one more event
	e.waitFor("refusal streamed", func() bool {
		events := streamed()
		return len(events) > 0 && events[len(events)-1].Kind == "refused"
	})
	for i, ev := range streamed() {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("stream seqs not 1, 2, 3…: event %d has seq %d", i, ev.Seq)
		}
	}
}

// The whole flow on PostgreSQL: a card, concurrent clicks, one decision,
// the audit trail; a second replica may share the database.
func TestE2EOnPostgreSQL(t *testing.T) {
	e := newE2EWith(t, func(env map[string]string, _ *slacktest.Server) {
		env["PATBOT_DB"] = pgtest.Database(t)
		env["PATBOT_ADMIN_SOCKET"] = filepath.Join(t.TempDir(), "patbot.sock")
	})
	cfg, err := loadConfig("serve", nil, getenv(e.env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr, cfg.AdminSocket = "127.0.0.1:0", filepath.Join(t.TempDir(), "replica.sock")
	replica, err := newApp(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("a second replica on the same database: %v", err)
	}
	replica.Close()
	e.created()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { e.click([]string{"U0ALICE", "U0BOB"}[i%2], "pat_approve") })
	}
	wg.Wait()
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by") })
	if n := len(e.reviews()); n != 1 {
		t.Fatalf("%d reviews sent to GitHub, want exactly 1", n)
	}
	if r := e.record(); r.State != store.StateApproved {
		t.Errorf("state = %s", r.State)
	}
	if events := e.audit(); len(events) != 1 || events[0].Kind != "decision" {
		t.Errorf("audit = %+v", events)
	}
}
