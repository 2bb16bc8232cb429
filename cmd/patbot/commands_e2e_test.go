package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
)

// command runs a slash command as user and returns the immediate answer's
// text; the looked-up answer arrives at the response URL named id.
func (e *e2e) command(user, text, id string) string {
	e.t.Helper()
	form := slacktest.SlashCommandForm(user, "/pat", text, channel, e.slack.ResponseURL(id))
	code, body := e.slackPost("/slack/commands", form, time.Now(), testSigning)
	if code != http.StatusOK {
		e.t.Fatalf("/pat %s: %d %s", text, code, body)
	}
	var ack struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal([]byte(body), &ack); err != nil || ack.ResponseType != "ephemeral" {
		e.t.Fatalf("/pat %s: answer %q", text, body)
	}
	return ack.Text
}

// response waits for the answer posted to the response URL named id (the
// nth one there, counting from 1).
func (e *e2e) response(id string, nth int) slacktest.Response {
	e.t.Helper()
	var got []slacktest.Response
	e.waitFor("answer at "+id, func() bool {
		got = got[:0]
		for _, r := range e.slack.Responses() {
			if strings.HasSuffix(r.Path, "/"+id) {
				got = append(got, r)
			}
		}
		return len(got) >= nth
	})
	r := got[nth-1]
	if r.Error != "" {
		e.t.Errorf("Slack would refuse the answer: %s", r.Error)
	}
	var m struct {
		ResponseType    string `json:"response_type"`
		ReplaceOriginal bool   `json:"replace_original"`
	}
	json.Unmarshal(r.Body, &m)
	if m.ResponseType != "ephemeral" || !m.ReplaceOriginal {
		e.t.Errorf("answer is not an ephemeral replacement: %s", r.Body)
	}
	return r
}

func ptime(t time.Time) *time.Time { return &t }

// seedGrants gives halain987 four tokens and carol one.
func (e *e2e) seedGrants() {
	now := time.Now().UTC().Truncate(time.Second)
	hal := github.User{Login: "halain987", ID: 18029382}
	e.gh.AddGrant(org, github.Grant{ID: 501, Owner: hal, TokenID: 11, TokenName: "old-ci", RepositorySelection: "all",
		AccessGrantedAt: now.Add(-300 * 24 * time.Hour), TokenExpiresAt: ptime(now.Add(-24 * time.Hour)), TokenExpired: true,
		TokenLastUsedAt: ptime(now.Add(-40 * 24 * time.Hour))})
	e.gh.AddGrant(org, github.Grant{ID: 502, Owner: hal, TokenID: 12, TokenName: "deploy <!channel>", RepositorySelection: "subset",
		Permissions:     github.Permissions{Repository: map[string]string{"contents": "write", "metadata": "read"}},
		AccessGrantedAt: now.Add(-10 * 24 * time.Hour), TokenExpiresAt: ptime(now.Add(3 * 24 * time.Hour)),
		TokenLastUsedAt: ptime(now.Add(-2 * time.Hour))},
		github.Repository{ID: 1, Name: "api", FullName: org + "/api"}, github.Repository{ID: 2, Name: "web", FullName: org + "/web"})
	e.gh.AddGrant(org, github.Grant{ID: 503, Owner: hal, TokenID: 13, TokenName: "forever", RepositorySelection: "none",
		Permissions:     github.Permissions{Organization: map[string]string{"members": "read"}},
		AccessGrantedAt: now.Add(-5 * 24 * time.Hour)})
	e.gh.AddGrant(org, github.Grant{ID: 504, Owner: hal, TokenID: 14, TokenName: "laptop", RepositorySelection: "all",
		AccessGrantedAt: now.Add(-20 * 24 * time.Hour), TokenExpiresAt: ptime(now.Add(60 * 24 * time.Hour)),
		TokenLastUsedAt: ptime(now.Add(-10 * time.Minute))})
	e.gh.AddGrant(org, github.Grant{ID: 601, Owner: github.User{Login: "carol", ID: 3}, TokenID: 21, TokenName: "carols-token",
		RepositorySelection: "all", TokenExpiresAt: ptime(now.Add(30 * 24 * time.Hour))})
}

func TestE2EPatGrantsTargets(t *testing.T) {
	for _, tc := range []struct {
		name, user, text string
	}{
		{"mention with name", "U0ALICE", "grants <@U0HAL|halain987>"},
		{"mention without name", "U0ALICE", "grants <@U0HAL>"},
		{"GitHub login", "U0ALICE", "grants halain987"},
		{"org filter", "U0ALICE", "grants halain987 --org github-ssh-authority"},
		{"self", "U0HAL", "grants"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t)
			e.seedGrants()
			if ack := e.command(tc.user, tc.text, "r1"); !strings.Contains(ack, "Looking up") {
				t.Errorf("ack = %q", ack)
			}
			text := e.response("r1", 1).Text()
			// halain987's four tokens, most recently used first, flagged.
			order := []string{"laptop", "deploy &lt;!channel&gt;", "old-ci", "forever"}
			last := -1
			for _, name := range order {
				i := strings.Index(text, name)
				if i < 0 {
					t.Fatalf("listing lacks %q:\n%s", name, text)
				}
				if i < last {
					t.Errorf("%q out of order (most recently used first)", name)
				}
				last = i
			}
			mustContain(t, "listing", text,
				"4 approved fine-grained tokens in github-ssh-authority", "1 expired", "1 expiring within 7 days", "1 never expiring",
				"`github-ssh-authority/api`, `github-ssh-authority/web`", "repo contents:write, metadata:read", "org members:read",
				"*Last used* never", "all repositories", "no repositories")
			if strings.Contains(text, "carols-token") || strings.Contains(e.response("r1", 1).Mrkdwn(), "<!channel>") {
				t.Errorf("listing shows another member's token or an unescaped name:\n%s", text)
			}
			// halain987 is an owner too, so both viewers may revoke.
			if n := strings.Count(string(e.response("r1", 1).Body), `"pat_revoke"`); n != 4 {
				t.Errorf("%d Revoke buttons, want 4", n)
			}
		})
	}
}

func TestE2EPatGrantsOwnTokensWithoutRevoke(t *testing.T) {
	e := newE2E(t)
	e.seedGrants()
	e.command("U0CAROL", "grants", "r1")
	r := e.response("r1", 1)
	if !strings.Contains(r.Text(), "carols-token") || strings.Contains(r.Text(), "laptop") {
		t.Errorf("carol's listing:\n%s", r.Text())
	}
	if strings.Contains(string(r.Body), "pat_revoke") {
		t.Error("a member who is not an approver got Revoke buttons")
	}
}

func TestE2EPatGrantsRefusesOthersToNonApprovers(t *testing.T) {
	e := newE2E(t)
	e.seedGrants()
	e.command("U0CAROL", "grants <@U0HAL|halain987>", "r1")
	text := e.response("r1", 1).Text()
	if !strings.Contains(text, "only owners and approvers see other members' tokens") {
		t.Errorf("answer = %q", text)
	}
	mustNotLeak(t, "refusal", text, "laptop", "old-ci", "forever", "deploy")
	for _, c := range e.gh.Calls() {
		if c.Path == "/orgs/"+org+"/personal-access-tokens" {
			t.Errorf("GitHub asked for the tokens anyway: %+v", c.Query)
		}
	}
	// Unmapped users are told how to get linked.
	e.command("U0NOBODY", "grants", "r2")
	if text := e.response("r2", 1).Text(); !strings.Contains(text, "not linked to a GitHub login") {
		t.Errorf("unmapped: %q", text)
	}
}

func TestE2EPatGrantsPaginatesOverManyTokens(t *testing.T) {
	e := newE2E(t)
	hal := github.User{Login: "halain987", ID: 18029382}
	base := time.Now().UTC().Truncate(time.Second)
	for i := range 130 {
		e.gh.AddGrant(org, github.Grant{ID: int64(1000 + i), Owner: hal, TokenID: int64(i), TokenName: fmt.Sprintf("tok-%03d", i),
			RepositorySelection: "all", TokenLastUsedAt: ptime(base.Add(-time.Duration(i) * time.Minute)), TokenExpiresAt: ptime(base.Add(90 * 24 * time.Hour))})
	}
	e.command("U0ALICE", "grants halain987", "r1")
	r := e.response("r1", 1)
	text := r.Text()
	if !strings.Contains(text, "130 approved fine-grained tokens") || !strings.Contains(text, "page 1 of 13") {
		t.Fatalf("summary:\n%s", text)
	}
	if !strings.Contains(text, "tok-000") || !strings.Contains(text, "tok-009") || strings.Contains(text, "tok-010") {
		t.Errorf("page 1 holds the wrong tokens:\n%s", text)
	}
	// GitHub's own pages: 100 and 30, through the Link header.
	var pages []string
	for _, c := range e.gh.Calls() {
		if strings.HasSuffix(c.Path, "/personal-access-tokens") {
			pages = append(pages, c.Query.Get("page"))
		}
	}
	if strings.Join(pages, ",") != ",2" {
		t.Errorf("GitHub pages fetched: %q", pages)
	}

	// Next ›
	var next string
	var blocks []struct {
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	var msg struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	json.Unmarshal(r.Body, &msg)
	json.Unmarshal(msg.Blocks, &blocks)
	for _, b := range blocks {
		for _, el := range b.Elements {
			if el.ActionID == "pat_grants_page_next" {
				next = el.Value
			}
		}
	}
	if next == "" {
		t.Fatal("no Next button")
	}
	form := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0ALICE", channel, "1.2", "pat_grants_page_next", next), e.slack.ResponseURL("r2"))
	if code, _ := e.slackPost("/slack/interactions", form, time.Now(), testSigning); code != http.StatusOK {
		t.Fatalf("next: %d", code)
	}
	page2 := e.response("r2", 1).Text()
	if !strings.Contains(page2, "page 2 of 13") || !strings.Contains(page2, "tok-010") || strings.Contains(page2, "tok-009") {
		t.Errorf("page 2:\n%s", page2)
	}
}

// revokeValueFor finds the value of the Revoke button of a token in a
// listing.
func revokeValueFor(t *testing.T, r slacktest.Response, tokenName string) string {
	t.Helper()
	var msg struct {
		Blocks []struct {
			Text *struct {
				Text string `json:"text"`
			} `json:"text"`
			Accessory *struct {
				ActionID string `json:"action_id"`
				Value    string `json:"value"`
			} `json:"accessory"`
		} `json:"blocks"`
	}
	json.Unmarshal(r.Body, &msg)
	for _, b := range msg.Blocks {
		if b.Text != nil && strings.Contains(b.Text.Text, tokenName) && b.Accessory != nil && b.Accessory.ActionID == "pat_revoke" {
			return b.Accessory.Value
		}
	}
	t.Fatalf("no Revoke button for %s", tokenName)
	return ""
}

func TestE2EPatRevoke(t *testing.T) {
	e := newE2E(t)
	e.seedGrants()
	e.command("U0ALICE", "grants halain987", "r1")
	value := revokeValueFor(t, e.response("r1", 1), "laptop")

	// A member who is not an approver replays the button: refused.
	forged := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0CAROL", channel, "1.2", "pat_revoke", value), e.slack.ResponseURL("forged"))
	e.slackPost("/slack/interactions", forged, time.Now(), testSigning)
	if text := e.response("forged", 1).Text(); !strings.Contains(text, "Only owners of github-ssh-authority") {
		t.Errorf("forged revoke answered %q", text)
	}

	click := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0ALICE", channel, "1.2", "pat_revoke", value), e.slack.ResponseURL("r1"))
	if code, _ := e.slackPost("/slack/interactions", click, time.Now(), testSigning); code != http.StatusOK {
		t.Fatalf("revoke click: %d", code)
	}
	listing := e.response("r1", 2).Text()
	if !strings.Contains(listing, "~`laptop`~ :lock: *revoked* by <@U0ALICE>") {
		t.Errorf("listing after revoke:\n%s", listing)
	}
	revokes := e.gh.CallsTo(http.MethodPost, "/orgs/"+org+"/personal-access-tokens/504")
	if len(revokes) != 1 || revokes[0].Status != http.StatusNoContent {
		t.Fatalf("GitHub revoke calls: %+v", revokes)
	}
	for _, g := range e.gh.Grants(org) {
		if g.ID == 504 {
			t.Error("the grant still exists in GitHub")
		}
	}
	e.waitFor("notice in the channel", func() bool {
		for _, m := range e.slack.Messages(channel) {
			if strings.Contains(m.Text, "revoked halain987's fine-grained token “laptop”") && strings.Contains(m.Text, "<@U0ALICE> (alice)") {
				return true
			}
		}
		return false
	})
	var kinds []string
	for _, ev := range e.audit() {
		kinds = append(kinds, ev.Kind+":"+ev.Actor)
		if ev.Kind == "revocation" && (ev.GrantID != 504 || ev.SlackUser != "U0ALICE" || !strings.Contains(ev.Detail, "laptop")) {
			t.Errorf("revocation event = %+v", ev)
		}
	}
	if strings.Join(kinds, ",") != "refused:carol,revocation:alice" {
		t.Errorf("audit = %v", kinds)
	}
}

func TestE2EPatRequests(t *testing.T) {
	e := newE2E(t)
	card := e.created()
	e.command("U0ALICE", "requests", "r1")
	text := e.response("r1", 1).Text()
	link := "https://example.slack.com/archives/" + channel + "/p" + strings.ReplaceAll(card.TS, ".", "")
	if !strings.Contains(text, "1 pending token request") || !strings.Contains(text, "release-bot") || !strings.Contains(text, link) {
		t.Errorf("requests:\n%s", text)
	}
	e.command("U0CAROL", "requests", "r2")
	if text := e.response("r2", 1).Text(); !strings.Contains(text, "No pending token requests") {
		t.Errorf("non-approver sees %q", text)
	}
	r := e.record()
	if r.State != store.StatePending {
		t.Errorf("listing changed the request: %s", r.State)
	}
}

func TestE2EPatHelpAndMistakes(t *testing.T) {
	e := newE2E(t)
	for text, want := range map[string]string{
		"":                       "*/pat grants*",
		"help":                   "*/pat requests*",
		"frobnicate":             "Unknown command `frobnicate`",
		"grants a b":             "Name one member at a time",
		"grants --org":           "`--org` needs a value",
		"grants --org elsewhere": "does not serve an organization called `elsewhere`",
		"grants <@U0NOBODY>":     "patbot does not know <@U0NOBODY>'s GitHub account",
		"grants <script>":        "`&lt;script&gt;` is neither",
	} {
		if got := e.command("U0ALICE", text, "x"); !strings.Contains(got, want) {
			t.Errorf("/pat %s: %q lacks %q", text, got, want)
		}
	}
}

func TestE2EPatGrantsShowsGitHubErrorsPlainly(t *testing.T) {
	e := newE2E(t)
	e.seedGrants()
	e.gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: "/orgs/" + org + "/personal-access-tokens", Status: http.StatusBadGateway})
	e.command("U0ALICE", "grants halain987", "r1")
	text := e.response("r1", 1).Text()
	if !strings.Contains(text, "github-ssh-authority: GitHub answered 502 Bad Gateway; the tokens there are not listed.") {
		t.Errorf("answer = %q", text)
	}
}

// A listing caches alice's owner verdict; demoted a moment later, her
// Revoke is refused: a revocation asks GitHub afresh.
func TestE2ERevokeByADemotedOwnerRefused(t *testing.T) {
	e := newE2E(t)
	e.seedGrants()
	e.command("U0ALICE", "grants halain987", "r1")
	value := revokeValueFor(t, e.response("r1", 1), "laptop")
	e.gh.SetMembership(org, "alice", "member", "active")

	click := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0ALICE", channel, "1.2", "pat_revoke", value), e.slack.ResponseURL("r1"))
	if code, _ := e.slackPost("/slack/interactions", click, time.Now(), testSigning); code != http.StatusOK {
		t.Fatalf("revoke click: %d", code)
	}
	if text := e.response("r1", 2).Text(); !strings.Contains(text, "Only owners of github-ssh-authority") {
		t.Errorf("demoted owner's revoke answered %q", text)
	}
	if calls := e.gh.CallsTo(http.MethodPost, "/orgs/"+org+"/personal-access-tokens/504"); len(calls) != 0 {
		t.Fatalf("GitHub revoke calls: %+v", calls)
	}
}

// Approvers ask which tokens match, across members: by repository,
// permission and last use, combinable; everyone else sees their own.
func TestE2EPatGrantsQueries(t *testing.T) {
	e := newE2E(t)
	e.seedGrants()
	for i, tc := range []struct {
		user, args string
		want, not  []string
	}{
		// 501, 504 and carol's reach every repository; 502 reaches api and web.
		{"U0ALICE", "--repo api", []string{"old-ci", "deploy", "laptop", "carols-token", "of *carol*", "Matching: reaching `api`"}, []string{"forever"}},
		{"U0ALICE", "--repo billing", []string{"old-ci", "laptop", "carols-token"}, []string{"deploy", "forever"}},
		{"U0ALICE", "--permission contents:write", []string{"deploy"}, []string{"old-ci", "laptop", "forever", "carols-token"}},
		{"U0ALICE", "--permission members", []string{"forever"}, []string{"deploy", "laptop"}},
		// Unused for 30 days: old-ci (used 40 days ago); carol's was never used but granted just now.
		{"U0ALICE", "--unused 30d", []string{"old-ci"}, []string{"deploy", "laptop", "forever", "carols-token"}},
		{"U0ALICE", "--used-since 1h", []string{"laptop"}, []string{"deploy", "old-ci"}},
		{"U0ALICE", "halain987 --repo web --used-since=1d", []string{"deploy", "laptop"}, []string{"old-ci", "carols-token"}},
		{"U0ALICE", "--token 13", []string{"forever"}, []string{"laptop"}},
		{"U0CAROL", "--repo api", []string{"carols-token", "only your own tokens are listed"}, []string{"old-ci", "laptop", "deploy"}},
	} {
		id := fmt.Sprint("q", i)
		e.command(tc.user, "grants "+tc.args, id)
		text := e.response(id, 1).Text()
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("/pat grants %s as %s lacks %q:\n%s", tc.args, tc.user, w, text)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(text, n) {
				t.Errorf("/pat grants %s as %s shows %q:\n%s", tc.args, tc.user, n, text)
			}
		}
	}
	for args, want := range map[string]string{
		"--permission sekrets:write": "is not a permission",
		"--unused forever":           "`--unused` takes a duration",
		"--token abc":                "`--token` takes a token's ID",
		"--repo":                     "`--repo` needs a value",
	} {
		if text := e.command("U0ALICE", "grants "+args, "bad"); !strings.Contains(text, want) {
			t.Errorf("/pat grants %s answered %q", args, text)
		}
	}
}

// patbot grants asks the same questions from a shell: through the running
// patbot, or with the App's credentials when it is stopped.
func TestGrantsCommand(t *testing.T) {
	e := newE2E(t)
	e.seedGrants()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"grants", "-org", org, "-repo", "web", "-format", "csv"}, getenv(e.env), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, &errOut)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(rows) != 5 || rows[0][1] != "grant_id" {
		t.Fatalf("csv = %v, %v", rows, err)
	}
	if rows[1][4] != "halain987" && rows[1][4] != "carol" {
		t.Errorf("owner column = %v", rows[1])
	}
	e.stopApp()
	out.Reset()
	if code := run(context.Background(), []string{"grants", "-org", org, "-permission", "contents:write"}, getenv(e.env), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, &errOut)
	}
	mustContain(t, "table", out.String(), "TOKEN", "deploy <!channel>", "repository.contents:write", "1 token in "+org)
	errOut.Reset()
	if code := run(context.Background(), []string{"grants", "-permission", "nope"}, getenv(e.env), io.Discard, &errOut); code != exitUsage {
		t.Errorf("bad flags: exit %d", code)
	}
	mustContain(t, "error", errOut.String(), "-org is required", "-permission:")
}

// Grant hygiene: the scheduled report in the channel (with a DM to the
// owner of a token expiring soon), /pat hygiene for an approver, a Revoke
// refused to a member, and a section revoked in one bulk call.
func TestE2EHygiene(t *testing.T) {
	e := newE2EWith(t, func(env map[string]string, _ *slacktest.Server) {
		policy := strings.Replace(e2ePolicy, "    approver_teams: [security]\n", "    approver_teams: [security]\n    hygiene: {every: 2s, unused_after: 30d}\n", 1)
		os.WriteFile(env["PATBOT_CONFIG"], []byte(policy), 0o600)
	})
	e.seedGrants()
	now := time.Now().UTC()
	e.gh.AddGrant(org, github.Grant{ID: 701, Owner: github.User{Login: "halain987", ID: 18029382}, TokenID: 31, TokenName: "stale",
		RepositorySelection: "all", AccessGrantedAt: now.Add(-200 * 24 * time.Hour), TokenExpiresAt: ptime(now.Add(100 * 24 * time.Hour)),
		TokenLastUsedAt: ptime(now.Add(-60 * 24 * time.Hour))})
	e.gh.AddGrant(org, github.Grant{ID: 702, Owner: github.User{Login: "left-the-org", ID: 99}, TokenID: 32, TokenName: "orphan",
		RepositorySelection: "all", AccessGrantedAt: now.Add(-24 * time.Hour), TokenExpiresAt: ptime(now.Add(100 * 24 * time.Hour))})

	e.waitFor("the scheduled report", func() bool {
		for _, m := range e.slack.Messages(channel) {
			if strings.Contains(m.Text, "Token hygiene for "+org) {
				return true
			}
		}
		return false
	})
	e.waitFor("the owner of an expiring token told", func() bool {
		for _, m := range e.slack.Messages("D0HAL") {
			if strings.Contains(m.Text, "expires soon") && strings.Contains(m.Text, "deploy") {
				return true
			}
		}
		return false
	})

	e.command("U0ALICE", "hygiene", "h1")
	report := e.response("h1", 1)
	mustContain(t, "report", report.Text(), "Unused for 30 days* (1)", "`stale`", "Owner no longer a member* (1)", "`orphan` of *left-the-org*",
		"Expired, still listed* (1)", "`old-ci`", "Expiring within 7 days* (1)")
	e.command("U0CAROL", "hygiene", "h2")
	mustContain(t, "a member's report", e.response("h2", 1).Text(), "only owners and approvers see its hygiene report")

	value := fmt.Sprintf(`{"o":%q,"s":"unused"}`, org)
	forged := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0CAROL", channel, "1.2", "pat_hygiene_revoke_unused", value), e.slack.ResponseURL("carol"))
	e.slackPost("/slack/interactions", forged, time.Now(), testSigning)
	mustContain(t, "carol's click", e.response("carol", 1).Text(), "Only owners of github-ssh-authority")

	click := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0ALICE", channel, "1.2", "pat_hygiene_revoke_unused", value), e.slack.ResponseURL("alice"))
	e.slackPost("/slack/interactions", click, time.Now(), testSigning)
	mustContain(t, "alice's click", e.response("alice", 1).Text(), "revoked 1 token of github-ssh-authority (unused)")
	if bulk := e.gh.CallsTo(http.MethodPost, "/orgs/"+org+"/personal-access-tokens"); len(bulk) != 1 || !strings.Contains(string(bulk[0].Body), `"pat_ids":[701]`) {
		t.Errorf("bulk revoke calls = %+v", bulk)
	}
	for _, g := range e.gh.Grants(org) {
		if g.ID == 701 {
			t.Error("the unused grant is still there")
		}
	}

	// A revocation GitHub carries out but answers with a 502 is reported
	// and audited; one GitHub refuses revokes nothing, and says so.
	revokeSection := func(section string, nth int) string {
		t.Helper()
		value := fmt.Sprintf(`{"o":%q,"s":%q}`, org, section)
		click := slacktest.WithResponseURL(slacktest.BlockActionPayload("U0ALICE", channel, "1.2", "pat_hygiene_revoke_"+section, value), e.slack.ResponseURL("alice"))
		e.slackPost("/slack/interactions", click, time.Now(), testSigning)
		return e.response("alice", nth).Text()
	}
	e.gh.Fail(githubtest.Fault{Method: http.MethodPost, Path: "/orgs/" + org + "/personal-access-tokens", Status: http.StatusBadGateway, Apply: true, Times: 1})
	mustContain(t, "a revocation answered 502", revokeSection(view.HygieneNotMember, 2), "revoked 1 token of github-ssh-authority (not_member)", "GitHub did not take the rest")
	e.gh.Fail(githubtest.Fault{Method: http.MethodPost, Path: "/orgs/" + org + "/personal-access-tokens", Status: http.StatusForbidden, Message: "Resource not accessible by integration", Times: 1})
	mustContain(t, "a refused revocation", revokeSection(view.HygieneExpired, 3), "GitHub did not take the revocation", "Nothing was revoked.")
	if !slices.ContainsFunc(e.gh.Grants(org), func(g github.Grant) bool { return g.ID == 501 }) {
		t.Error("the expired grant went although GitHub refused")
	}

	revocations, refusals := map[int64]int{}, 0
	for _, ev := range e.audit() {
		switch {
		case ev.Kind == "revocation" && ev.Actor == "alice":
			revocations[ev.GrantID]++
		case ev.Kind == "refused" && ev.Actor == "carol":
			refusals++
		}
	}
	if len(revocations) != 2 || revocations[701] != 1 || revocations[702] != 1 || refusals != 1 {
		t.Errorf("audit: revocations %v, %d refusals", revocations, refusals)
	}
}
