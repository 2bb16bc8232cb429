package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/identity"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
)

// The secret keys the linking tests seal user tokens with.
var (
	testSecretKey      = strings.Repeat("a1", 32)
	testSecretKeyNext  = strings.Repeat("b2", 32)
	testSecretKeyOther = strings.Repeat("c3", 32)
)

const linkingPolicy = `
orgs:
  github-ssh-authority:
    channel: C0000000001
    approver_teams: [security]
    decide_as: %s
users:
  U0BOB: bob          # member of the security team
  U0CAROL: carol      # plain member, known only from this file
  U0HAL: halain987    # the requester
`

// newLinkingE2E is patbot serve with linking on, for an org that decides
// as decideAs, at a public URL the fake GitHub sends browsers back to.
func newLinkingE2E(t *testing.T, decideAs string, tune func(env map[string]string)) *e2e {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // patbot listens here; the public URL must be known before it starts
	public := "http://" + addr + "/"
	e := newE2EWith(t, func(env map[string]string, _ *slacktest.Server) {
		if err := os.WriteFile(env["PATBOT_CONFIG"], []byte(strings.Replace(linkingPolicy, "%s", decideAs, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		env["PATBOT_ADDR"] = addr
		env["GITHUB_APP_CLIENT_ID"] = githubtest.ClientID
		env["GITHUB_APP_CLIENT_SECRET"] = githubtest.ClientSecret
		env["PATBOT_PUBLIC_URL"] = public
		env["PATBOT_SECRET_KEY"] = testSecretKey
		if tune != nil {
			tune(env)
		}
	})
	e.gh.SetCallbackURLs(public + "github/callback")
	e.env["GITHUB_WEB_URL"] = e.gh.WebURL
	t.Cleanup(func() {
		mustNotLeak(t, "logs", e.logs.String(), "ghu_", "ghr_", githubtest.ClientSecret, testSecretKey, testSecretKeyNext)
		for _, c := range e.slack.Calls("") {
			mustNotLeak(t, "Slack calls", c.Form.Encode(), "ghu_", "ghr_", githubtest.ClientSecret)
		}
	})
	return e
}

var buttonURL = regexp.MustCompile(`"url":"([^"]+)"`)

// signInURL asks /pat link for the sign-in button and returns its URL.
func (e *e2e) signInURL(user string) string {
	e.t.Helper()
	form := slacktest.SlashCommandForm(user, "/pat", "link", channel, e.slack.ResponseURL("link"))
	code, body := e.slackPost("/slack/commands", form, time.Now(), testSigning)
	if code != http.StatusOK {
		e.t.Fatalf("/pat link: %d %s", code, body)
	}
	var ack struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	json.Unmarshal([]byte(body), &ack)
	m := buttonURL.FindStringSubmatch(string(ack.Blocks))
	if m == nil {
		e.t.Fatalf("/pat link answered no sign-in button: %s", body)
	}
	u, _ := url.Parse(strings.ReplaceAll(m[1], `\u0026`, "&"))
	return u.String()
}

type webPage struct {
	status int
	body   string
}

func browse(t *testing.T, c *http.Client, method, u string, form url.Values) (webPage, http.Header) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = c.PostForm(u, form)
	} else {
		resp, err = c.Get(u)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return webPage{resp.StatusCode, string(body)}, resp.Header
}

var confirmToken = regexp.MustCompile(`name="token" value="([^"]+)"`)

// signIn follows a sign-in URL in the browser of GitHub user login, up
// to patbot's confirmation page.
func (e *e2e) signIn(signInURL, login string) (*http.Client, string, webPage) {
	e.t.Helper()
	browser := e.gh.Browser(login)
	_, h := browse(e.t, browser, http.MethodGet, signInURL, nil)
	callback := h.Get("Location")
	if !strings.HasPrefix(callback, e.env["PATBOT_PUBLIC_URL"]+"github/callback?") {
		e.t.Fatalf("GitHub sent the browser to %q", callback)
	}
	page, h := browse(e.t, browser, http.MethodGet, callback, nil)
	if h.Get("Cache-Control") != "no-store" || h.Get("Referrer-Policy") != "no-referrer" {
		e.t.Errorf("callback page headers: %v", h)
	}
	return browser, callback, page
}

func (e *e2e) confirmLink(browser *http.Client, page webPage) webPage {
	e.t.Helper()
	m := confirmToken.FindStringSubmatch(page.body)
	if m == nil {
		e.t.Fatalf("no confirmation form: %d %s", page.status, page.body)
	}
	done, _ := browse(e.t, browser, http.MethodPost, e.env["PATBOT_PUBLIC_URL"]+"github/confirm", url.Values{"token": {m[1]}})
	return done
}

// link links Slack user to GitHub account login, through Slack, the fake
// GitHub's authorize page and patbot's confirmation page.
func (e *e2e) link(user, login string) {
	e.t.Helper()
	browser, _, page := e.signIn(e.signInURL(user), login)
	mustContain(e.t, "confirmation page", page.body, user, "<strong>"+login+"</strong>", "Confirm")
	if done := e.confirmLink(browser, page); done.status != http.StatusOK {
		e.t.Fatalf("confirm: %d %s", done.status, done.body)
	}
	dm := "D" + strings.TrimPrefix(user, "U")
	e.waitFor(user+" told they are linked", func() bool {
		for _, m := range e.slack.Messages(dm) {
			if strings.Contains(m.Text, "linked to GitHub as *"+login+"*") {
				return true
			}
		}
		return false
	})
}

func (e *e2e) ephemeralBlocks(user, want string) {
	e.t.Helper()
	e.waitFor("ephemeral to "+user+" with "+want, func() bool {
		for _, m := range e.slack.Ephemerals(user) {
			if strings.Contains(string(m.Blocks), want) {
				return true
			}
		}
		return false
	})
}

// An owner links their account and decides as themselves: GitHub gets
// the review with their token, and the audit trail says so.
func TestE2EApproveAsApprover(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.created()

	// Not linked yet: asked to sign in, nothing decided.
	e.click("U0ALICE", "pat_approve")
	e.ephemeralBlocks("U0ALICE", "pat_link_github")
	if len(e.reviews()) != 0 {
		t.Fatal("a review went to GitHub before the approver signed in")
	}

	e.link("U0ALICE", "alice")
	e.click("U0ALICE", "pat_approve")
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE> (alice)") })
	reviews := e.reviews()
	if len(reviews) != 1 || reviews[0].Auth != "user" || reviews[0].User != "alice" {
		t.Fatalf("reviews = %+v", reviews)
	}
	if d, _ := e.gh.Review(org, requestID); d.By != "alice" || d.Action != "approve" {
		t.Errorf("GitHub recorded %+v", d)
	}
	var decision, linked *store.AuditEvent
	for _, ev := range e.audit() {
		switch ev.Kind {
		case "decision":
			decision = &ev
		case "link":
			linked = &ev
		}
	}
	if decision == nil || decision.As != store.AsApprover || decision.ActorID != e.gh.UserID("alice") || decision.Actor != "alice" {
		t.Errorf("decision event = %+v", decision)
	}
	if linked == nil || linked.SlackUser != "U0ALICE" || linked.ActorID != e.gh.UserID("alice") {
		t.Errorf("link event = %+v", linked)
	}
	links, _ := e.openStore().Links()
	if len(links) != 1 || strings.Contains(string(links[0].Token.Data), "ghu_") || links[0].Token.KeyID != identity.KeyID(mustHex(t, testSecretKey)) {
		t.Errorf("stored links = %+v", links)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A denial as the approver; a token GitHub no longer accepts (401) is
// refreshed once and the review sent again.
func TestE2EDenyAsApproverAfterTokenExpired(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.created()
	e.link("U0ALICE", "alice")
	e.gh.ExpireUserTokens("alice")
	if code, _ := e.submitDeny("U0ALICE", "Too broad"); code != http.StatusOK {
		t.Fatalf("deny: %d", code)
	}
	e.waitFor("card denied", func() bool { return strings.Contains(e.card().BlockText(), "*Denied* by <@U0ALICE> (alice)") })
	if e.gh.Refreshes() != 1 {
		t.Errorf("%d refreshes, want 1", e.gh.Refreshes())
	}
	reviews := e.reviews()
	if len(reviews) != 2 || reviews[0].Status != http.StatusUnauthorized || reviews[1].Status != http.StatusNoContent || reviews[1].User != "alice" {
		t.Errorf("reviews = %+v", reviews)
	}
	if d, _ := e.gh.Review(org, requestID); d.By != "alice" || d.Reason != "Too broad" {
		t.Errorf("GitHub recorded %+v", d)
	}
}

// A refresh token GitHub refuses asks the approver to link again; nothing
// is decided.
func TestE2ERevokedRefreshTokenAsksToLinkAgain(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.created()
	e.link("U0ALICE", "alice")
	e.gh.RevokeUserAuthorization("alice")
	e.click("U0ALICE", "pat_approve")
	e.ephemeralBlocks("U0ALICE", "Sign in to GitHub again")
	if d, ok := e.gh.Review(org, requestID); ok {
		t.Errorf("GitHub got a review: %+v", d)
	}
	if !hasButtons(e.card()) {
		t.Error("the card lost its buttons")
	}
	e.command("U0ALICE", "whoami", "who")
	mustContain(t, "whoami", e.response("who", 1).Message().Text, "alice", "does not work", "bad_refresh_token")
}

// Only owners decide as themselves: an approver team's member is told so,
// and a YAML-only user is asked to sign in.
func TestE2EApproverModeRefusesNonOwnersAndUnlinked(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.created()
	e.link("U0BOB", "bob")
	e.click("U0BOB", "pat_approve")
	e.ephemeral("U0BOB", "GitHub lets only organization owners decide")
	e.click("U0CAROL", "pat_approve")
	e.ephemeralBlocks("U0CAROL", "pat_link_github")
	if len(e.reviews()) != 0 {
		t.Errorf("reviews = %+v", e.reviews())
	}
}

// decide_as: app with linking on: decisions go as the App, as before; a
// linked user is known by the account they linked.
func TestE2EDecideAsAppUnchanged(t *testing.T) {
	e := newLinkingE2E(t, "app", nil)
	e.created()
	e.link("U0BOB", "bob")
	e.click("U0BOB", "pat_approve")
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0BOB> (bob)") })
	if r := e.reviews(); len(r) != 1 || r[0].Auth != "installation" {
		t.Errorf("reviews = %+v", r)
	}
	for _, ev := range e.audit() {
		if ev.Kind == "decision" && (ev.As != store.AsApp || ev.ActorID != e.gh.UserID("bob")) {
			t.Errorf("decision event = %+v", ev)
		}
	}
}

// identity: linked refuses a user the YAML file alone names.
func TestE2EIdentityLinkedRefusesYAMLOnlyUser(t *testing.T) {
	e := newLinkingE2E(t, "app", func(env map[string]string) {})
	policy := strings.Replace(linkingPolicy, "decide_as: %s", "decide_as: app\n    identity: linked", 1)
	os.WriteFile(e.env["PATBOT_CONFIG"], []byte(policy), 0o600)
	e.app.ReloadPolicy()
	e.created()
	e.click("U0BOB", "pat_approve")
	e.ephemeralBlocks("U0BOB", "pat_link_github")
	if len(e.reviews()) != 0 {
		t.Fatalf("reviews = %+v", e.reviews())
	}
	e.link("U0BOB", "bob")
	e.click("U0BOB", "pat_approve")
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0BOB> (bob)") })
}

// The sign-in link works once, in the browser that signed in, for the
// user who asked: replays, forgeries and forwarded links link nothing.
func TestE2ESignInRefusals(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	browser, callback, page := e.signIn(e.signInURL("U0ALICE"), "alice")
	if page.status != http.StatusOK {
		t.Fatalf("first use: %d %s", page.status, page.body)
	}
	if again, _ := browse(t, browser, http.MethodGet, callback, nil); again.status != http.StatusBadRequest {
		t.Errorf("replayed state: %d", again.status)
	}
	forged := strings.Replace(callback, "state=", "state=x", 1)
	if p, _ := browse(t, browser, http.MethodGet, forged, nil); p.status != http.StatusBadRequest {
		t.Errorf("forged state: %d", p.status)
	}
	// A link forwarded to mallory: the page names alice's Slack user;
	// mallory does not confirm, and nothing is linked.
	_, _, forwarded := e.signIn(e.signInURL("U0ALICE"), "mallory")
	mustContain(t, "forwarded page", forwarded.body, "u0alice (U0ALICE)", "<strong>mallory</strong>")
	// Confirming alice's first page from another browser fails too.
	if done := e.confirmLink(e.gh.Browser("alice"), page); done.status != http.StatusForbidden {
		t.Errorf("confirmation from another browser: %d", done.status)
	}
	e.command("U0ALICE", "whoami", "who")
	mustContain(t, "whoami", e.response("who", 1).Message().Text, "not linked")
	if links, _ := e.openStore().Links(); len(links) != 0 {
		t.Errorf("links = %+v", links)
	}
}

// /pat whoami and /pat unlink: the link goes, and GitHub revokes the
// authorization.
func TestE2EWhoamiAndUnlink(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.link("U0ALICE", "alice")
	e.command("U0ALICE", "whoami", "who")
	mustContain(t, "whoami", e.response("who", 1).Message().Text, "linked to GitHub as *alice*", "Your token works")
	e.command("U0ALICE", "unlink", "unlink")
	mustContain(t, "unlink", e.response("unlink", 1).Message().Text, "Unlinked from the GitHub account *alice*", "GitHub revoked")
	if n := e.gh.UserTokensLive("alice"); n != 0 {
		t.Errorf("%d user tokens live after unlink", n)
	}
	e.command("U0ALICE", "whoami", "who2")
	mustContain(t, "whoami after unlink", e.response("who2", 1).Message().Text, "not linked")
	kinds := map[string]int{}
	for _, ev := range e.audit() {
		kinds[ev.Kind]++
	}
	if kinds["link"] != 1 || kinds["unlink"] != 1 {
		t.Errorf("audit kinds = %v", kinds)
	}
}

// Rotating the secret key: a restart with the old key as the previous one
// seals every token again; a start without the key a token is sealed
// under stops with a message naming its id, never the key.
func TestE2EKeyRotation(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.created()
	e.link("U0ALICE", "alice")
	e.stopApp()

	e.env["PATBOT_SECRET_KEY"] = testSecretKeyNext
	e.env["PATBOT_SECRET_KEY_PREVIOUS"] = testSecretKey
	e.app, e.stop = startApp(t, e.env, e.logs)
	e.base = "http://" + e.app.Addr()
	e.click("U0ALICE", "pat_approve")
	e.waitFor("card approved", func() bool { return strings.Contains(e.card().BlockText(), "*Approved* by <@U0ALICE> (alice)") })
	mustContain(t, "log", e.logs.String(), "sealed again under the current secret key")
	e.stopApp()

	e.env["PATBOT_SECRET_KEY"] = testSecretKeyOther
	delete(e.env, "PATBOT_SECRET_KEY_PREVIOUS")
	cfg, err := loadConfig("serve", nil, getenv(e.env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newApp(cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil {
		t.Fatal("patbot started without the key the tokens are sealed under")
	}
	mustContain(t, "error", err.Error(), identity.KeyID(mustHex(t, testSecretKeyNext)), "PATBOT_SECRET_KEY_PREVIOUS")
	mustNotLeak(t, "error", err.Error(), testSecretKeyNext, testSecretKeyOther)
}

// A revocation as the approver goes to GitHub with the approver's token;
// an approver team's member who is not an owner gets no Revoke that works.
func TestE2ERevokeAsApprover(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.seedGrants()
	e.link("U0ALICE", "alice")
	e.command("U0ALICE", "grants halain987", "r1")
	value := revokeValueFor(t, e.response("r1", 1), "laptop")

	e.link("U0BOB", "bob")
	byBob := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0BOB", channel, "1.2", "pat_revoke", value), e.slack.ResponseURL("bob"))
	e.slackPost("/slack/interactions", byBob, time.Now(), testSigning)
	mustContain(t, "bob's revoke", e.response("bob", 1).Text(), "GitHub lets only organization owners do that")

	click := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0ALICE", channel, "1.2", "pat_revoke", value), e.slack.ResponseURL("r1"))
	e.slackPost("/slack/interactions", click, time.Now(), testSigning)
	mustContain(t, "listing", e.response("r1", 2).Text(), "*revoked* by <@U0ALICE>")
	revokes := e.gh.CallsTo(http.MethodPost, "/orgs/"+org+"/personal-access-tokens/504")
	if len(revokes) != 1 || revokes[0].Auth != "user" || revokes[0].User != "alice" || revokes[0].Status != http.StatusNoContent {
		t.Fatalf("GitHub revoke calls: %+v", revokes)
	}
	for _, ev := range e.audit() {
		if ev.Kind == "revocation" && (ev.As != store.AsApprover || ev.ActorID != e.gh.UserID("alice")) {
			t.Errorf("revocation event = %+v", ev)
		}
	}
}

// GitHub refusing the approver's own token (403: say, a SAML session
// ended) is GitHub's verdict on that account, shown as such; the buttons
// work again.
func TestE2EGitHubRefusesTheApproversAccount(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.created()
	e.link("U0ALICE", "alice")
	e.gh.Fail(githubtest.Fault{Method: http.MethodPost, Path: "/orgs/" + org + "/personal-access-token-requests/", Status: http.StatusForbidden,
		Message: "Resource protected by organization SAML enforcement.", Times: 1})
	e.click("U0ALICE", "pat_approve")
	e.ephemeral("U0ALICE", "GitHub refused your account")
	e.waitFor("buttons back", func() bool { return hasButtons(e.card()) })
	mustContain(t, "card", e.card().BlockText(), "GitHub refused your account")
	if _, ok := e.gh.Review(org, requestID); ok {
		t.Error("GitHub took the review")
	}
}

// Decisions made together go to GitHub with the approver's own token where
// the org decides as the approver.
func TestE2EBulkAsApprover(t *testing.T) {
	e := newLinkingE2E(t, "approver", nil)
	e.link("U0ALICE", "alice")
	for i := range int64(2) {
		id := 820_000 + i
		e.gh.AddRequest(org, github.PendingRequest{ID: id, Owner: github.User{Login: fmt.Sprint("dev", id), ID: id}, TokenID: 920_000 + i, RepositorySelection: "all"})
	}
	e.app.bot.Reconcile(context.Background())
	meta := e.openBulkDialog("U0ALICE")
	e.slackPost("/slack/interactions", slacktest.ViewSubmissionStatePayload("U0ALICE", view.CallbackBulk, meta,
		bulkState([]int64{820_000, 820_001}, false, "approve")), time.Now(), testSigning)
	e.ephemeral("U0ALICE", "Sent 2 approvals to GitHub in 1 call")
	bulk := e.gh.CallsTo(http.MethodPost, "/orgs/"+org+"/personal-access-token-requests")
	if len(bulk) != 1 || bulk[0].Auth != "user" || bulk[0].User != "alice" || bulk[0].Status != http.StatusAccepted {
		t.Fatalf("bulk calls = %+v", bulk)
	}
	for _, id := range []int64{820_000, 820_001} {
		if d, _ := e.gh.Review(org, id); d.By != "alice" {
			t.Errorf("request %d reviewed by %q", id, d.By)
		}
	}
}
