package view

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

var cardNow = time.Date(2024, 4, 23, 15, 0, 0, 0, time.UTC)

// fixtureRequest is the record patbot keeps for the real created delivery
// (github/testdata/personal_access_token_request.created.json) as bot
// records it from the webhook: testdata/fixture-request.json.
func fixtureRequest(t *testing.T) store.Request {
	t.Helper()
	raw, err := os.ReadFile("testdata/fixture-request.json")
	if err != nil {
		t.Fatal(err)
	}
	var r store.Request
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func richRequest(t *testing.T) store.Request {
	r := fixtureRequest(t)
	r.TokenID, r.TokenName, r.Reason = 98716, "deploy-bot", "Needed to publish releases\nfrom CI."
	r.RepositorySelection, r.RepositoryCount = "subset", 15
	for _, n := range []string{"api", "web", "cli", "docs", "infra", "mobile", "sdk-go", "sdk-js", "sdk-py", "terraform", "charts", "site"} {
		r.Repositories = append(r.Repositories, "github-ssh-authority/"+n)
	}
	r.PermissionsResult = store.Permissions{
		Organization: map[string]string{"members": "read"},
		Repository:   map[string]string{"contents": "write", "metadata": "read", "pull_requests": "write"},
		Other:        map[string]string{"gists": "write"},
	}
	r.PermissionsUpgraded = store.Permissions{Repository: map[string]string{"contents": "write"}}
	return r
}

func decided(r store.Request, state store.State, d *store.Decision) store.Request {
	r.Decision = d
	r.SetState(state, d.At, d.Source, d.Actor, "")
	return r
}

func TestCardGolden(t *testing.T) {
	at := time.Date(2024, 4, 23, 17, 5, 0, 0, time.UTC)
	slackApproval := &store.Decision{Action: "approve", Actor: "alice", SlackUser: "U0ALICE", At: at, Source: store.SourceSlack}
	slackDenial := &store.Decision{Action: "deny", Actor: "alice", SlackUser: "U0ALICE", At: at, Source: store.SourceSlack, Reason: "Too broad: ask for <contents> on one repo & retry."}
	githubApproval := &store.Decision{Action: "approve", Actor: "an-owner", At: at, Source: store.SourceWebhook}
	noExpiry := richRequest(t)
	noExpiry.TokenExpiresAt = nil
	longLived := richRequest(t)
	far := longLived.CreatedAt.Add(366 * 24 * time.Hour)
	longLived.TokenExpiresAt = &far
	failed := richRequest(t)
	failed.Failure = "alice tried to approve, but GitHub answered 502 Bad Gateway. Try again."
	cancelled := fixtureRequest(t)
	cancelled.SetState(store.StateCancelled, at, store.SourceWebhook, "halain987", "cancelled in GitHub")
	closed := fixtureRequest(t)
	closed.SetState(store.StateClosed, at, store.SourceSlack, "alice", "GitHub: no longer pending")

	deciding := richRequest(t)
	deciding.Decision = slackApproval
	deciding.SetState(store.StateDeciding, at, store.SourceSlack, "alice", "approve")

	flags := []store.Flag{{Name: "sensitive_write", Reason: "repository.administration write"}, {Name: "no_expiry", Reason: "the token never expires"}}
	twoApprovals := richRequest(t)
	twoApprovals.Policy = &store.PolicyVerdict{Mode: "enforce", Rule: "admin needs two", Action: "review", Approvals: 2, Flags: flags}
	twoApprovals.Approvals = []store.Approval{{Actor: "alice", SlackUser: "U0ALICE", At: at}}
	ruleApproval := &store.Decision{Action: "approve", Actor: "patbot", Rule: "docs read-only", At: at, Source: store.SourcePolicy, GrantFor: 7 * 24 * time.Hour}
	byRule := decided(richRequest(t), store.StateApproved, ruleApproval)
	byRule.Policy = &store.PolicyVerdict{Mode: "enforce", Rule: "docs read-only", Action: "approve", GrantFor: 7 * 24 * time.Hour}
	ends := at.Add(7 * 24 * time.Hour)
	byRule.GrantEnds = &ends
	suggest := richRequest(t)
	suggest.Policy = &store.PolicyVerdict{Mode: "suggest", Rule: "no endless tokens", Action: "deny", Flags: flags[1:],
		Unchecked: []string{"contractors (GitHub could not say whether the requester is in contractors)"}}
	flagsOnly := richRequest(t)
	flagsOnly.Policy = &store.PolicyVerdict{Flags: flags}

	cases := map[string]CardView{
		"policy-two-approvals": {Req: twoApprovals, ChooseGrantFor: true},
		"policy-approved-rule": {Req: byRule},
		"policy-suggest":       {Req: suggest},
		"policy-flags-only":    {Req: flagsOnly},
		"deciding":             {Req: deciding},
		"pending-fixture":      {Req: fixtureRequest(t)},
		"pending-rich":         {Req: richRequest(t), RequesterSlack: "U0HALAIN"},
		"pending-no-expiry":    {Req: noExpiry},
		"pending-long-lived":   {Req: longLived},
		"pending-failure":      {Req: failed},
		"approved-slack":       {Req: decided(richRequest(t), store.StateApproved, slackApproval), RequesterSlack: "U0HALAIN"},
		"denied-slack":         {Req: decided(richRequest(t), store.StateDenied, slackDenial)},
		"approved-github":      {Req: decided(fixtureRequest(t), store.StateApproved, githubApproval)},
		"cancelled":            {Req: cancelled},
		"no-longer-pending":    {Req: closed},
	}
	for name, cv := range cases {
		t.Run(name, func(t *testing.T) {
			cv.OrgLogin, cv.WebURL, cv.Now = "github-ssh-authority", "https://github.com", cardNow
			blocks, text := Card(cv)
			got := encodeGolden(t, map[string]any{"text": text, "blocks": blocks})
			raw, _ := json.Marshal(blocks)
			if e := slacktest.ValidateMessage(text, raw); e != "" {
				t.Errorf("Slack would refuse this card: %s", e)
			}
			golden(t, filepath.Join("testdata", "cards", name+".json"), got)
		})
	}
}

// encodeGolden lays v out as the golden files hold it.
func encodeGolden(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // readable golden files
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// The grants listing: a page with a revoked token, paging, notes.
func TestGrantsGolden(t *testing.T) {
	used := cardNow.Add(-2 * time.Hour)
	expires := cardNow.Add(3 * 24 * time.Hour)
	v := GrantsView{
		Login: "halain987", Query: GrantsQuery{Login: "halain987", Page: 1}, Total: 12, ExpireSoon: 1, NeverExpire: 1,
		Orgs: []string{"acme"}, Notes: []string{"beta: only owners and approvers see other members' tokens."}, Now: cardNow,
		Entries: []GrantEntry{
			{Org: "acme", CanRevoke: true, Grant: github.Grant{ID: 7, TokenID: 70, TokenName: "deploy", RepositorySelection: github.SelectionSubset,
				AccessGrantedAt: cardNow.Add(-24 * time.Hour), TokenExpiresAt: &expires, TokenLastUsedAt: &used,
				Permissions: github.Permissions{Repository: map[string]string{"contents": "write"}}},
				Repos: []github.Repository{{FullName: "acme/api"}, {FullName: "acme/web"}}},
			{Org: "acme", RevokedBy: "U0ALICE", Grant: github.Grant{ID: 8, TokenID: 80, TokenName: "old", RepositorySelection: github.SelectionAll,
				AccessGrantedAt: cardNow.Add(-48 * time.Hour)}},
		},
	}
	blocks, text := Grants(v)
	raw, _ := json.Marshal(blocks)
	if e := slacktest.ValidateMessage(text, raw); e != "" {
		t.Errorf("Slack would refuse this listing: %s", e)
	}
	golden(t, filepath.Join("testdata", "grants.json"), encodeGolden(t, map[string]any{"text": text, "blocks": blocks}))
}

func TestModalsGolden(t *testing.T) {
	golden(t, filepath.Join("testdata", "deny-modal.json"), encodeGolden(t, DenyModal("acme", 42, `{"org":"acme","id":42}`)))
	golden(t, filepath.Join("testdata", "refused-modal.json"), encodeGolden(t, RefusedModal("Cannot deny", "Only owners of acme may decide.")))
}

func TestLinkPromptGolden(t *testing.T) {
	blocks, text := LinkPrompt("Link your GitHub account to decide as yourself.", "https://github.com/login/oauth/authorize?client_id=Iv1.x&state=s")
	raw, _ := json.Marshal(blocks)
	if e := slacktest.ValidateMessage(text, raw); e != "" {
		t.Errorf("Slack would refuse this message: %s", e)
	}
	golden(t, filepath.Join("testdata", "link-prompt.json"), encodeGolden(t, map[string]any{"text": text, "blocks": blocks}))
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bot/view -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what was rendered; if the change is intended, run with -update.\ngot:\n%s", path, got)
	}
}

func TestCardEscapesRequesterText(t *testing.T) {
	r := richRequest(t)
	r.TokenName = "<!channel> & <@U999|boss>"
	r.Reason = "click <https://evil.example|here> <!here>"
	r.Repositories = []string{"org/<!everyone>"}
	r.PermissionsResult.Repository = map[string]string{"<@U1>": "write"}
	for _, state := range []store.State{store.StatePending, store.StateDenied} {
		r := r
		if state == store.StateDenied {
			r = decided(r, state, &store.Decision{Action: "deny", Actor: "a", SlackUser: "U0DECIDER", At: cardNow, Source: store.SourceSlack, Reason: "<!channel> no"})
		}
		blocks, text := Card(CardView{Req: r, OrgLogin: "acme", WebURL: "https://github.com", Now: cardNow})
		raw, _ := json.Marshal(blocks)
		// Slack reads mentions and links in mrkdwn text and in the
		// fallback; plain_text (the confirm dialog) is shown as typed.
		out := slacktest.Message{Blocks: raw}.Mrkdwn() + "\n" + text
		for _, bad := range []string{"<!channel>", "<@U999", "<https://evil", "<!here>", "<!everyone>", "<@U1>"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s: card contains unescaped %q", state, bad)
			}
		}
		for _, want := range []string{"&lt;!channel&gt; &amp; &lt;@U999|boss&gt;", "&lt;https://evil.example|here&gt;", "&lt;!everyone&gt;"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: card lacks escaped %q", state, want)
			}
		}
	}
}

// A token name cannot reshape the card: a newline or a backtick would end
// its code span and put the requester's formatting on a line of its own,
// and bidi or zero-width controls would reorder or hide text. Every
// surface that shows it (card, fallback, confirm dialog, DM) is clean.
func TestCardLayoutCannotBeForged(t *testing.T) {
	r := richRequest(t)
	r.TokenName = "ci`\n*:white_check_mark: Approved by security*\r\n`x\u202egpj.exe\u200b\u2066"
	r.Repositories = []string{"org/a`\nb"}
	r.Reason = "line one\nline two \u202eevil"
	r.PermissionsResult.Repository = map[string]string{"contents\n*x*": "write`"}
	blocks, text := Card(CardView{Req: r, OrgLogin: "acme", WebURL: "https://github.com", Now: cardNow})
	raw, _ := json.Marshal(blocks)
	all := string(raw) + text
	for _, bad := range []string{"\u202e", "\u200b", "\u2066", `\u202e`, `\u200b`, `\u2066`, "ci`", "`x", "a`"} {
		if strings.Contains(all, bad) {
			t.Errorf("card carries %q", bad)
		}
	}
	msg := slacktest.Message{Blocks: raw}
	for _, line := range strings.Split(msg.Mrkdwn(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "*:white_check_mark:") {
			t.Errorf("the token name started a line of its own: %q", line)
		}
	}
	if !strings.Contains(msg.Mrkdwn(), "`ci *:white_check_mark: Approved by security*  xgpj.exe`") {
		t.Errorf("token name not shown inline and whole:\n%s", msg.Mrkdwn())
	}
	if !strings.Contains(msg.Mrkdwn(), ">line one\n>line two evil") {
		t.Errorf("a reason keeps its lines, quoted, without controls:\n%s", msg.Mrkdwn())
	}
	if strings.Contains(text, "\n") {
		t.Errorf("fallback text has a line break: %q", text)
	}
}

func TestCleanText(t *testing.T) {
	for _, tc := range []struct{ in, inline, lines string }{
		{"plain", "plain", "plain"},
		{"a\nb\r\nc\td", "a b  c d", "a\nb \nc d"},
		{"`code`", "code", "`code`"},
		{"abc\u202edef\u202c", "abcdef", "abcdef"},
		{"\u2066\u2067\u2068\u2069\u200e\u200f\u061c", "", ""},
		{"zero\u200bwidth\u200c\u200d\u2060\ufeff\u180e", "zerowidth", "zerowidth"},
		{"sep\u2028ara\u2029tors\u0085", "sep ara tors ", "sep ara tors "},
		{"bell\x07 nul\x00 del\x7f", "bell nul del", "bell nul del"},
		{"émoji 🎉 ünïcode", "émoji 🎉 ünïcode", "émoji 🎉 ünïcode"},
	} {
		if got := cleanText(tc.in, false); got != tc.inline {
			t.Errorf("inline %q = %q, want %q", tc.in, got, tc.inline)
		}
		if got := cleanText(tc.in, true); got != tc.lines {
			t.Errorf("lines %q = %q, want %q", tc.in, got, tc.lines)
		}
	}
	if got := Escape("<!here>\n&`"); got != "&lt;!here&gt; &amp;" {
		t.Errorf("escape = %q", got)
	}
}

func TestCardStaysWithinSlackLimits(t *testing.T) {
	r := richRequest(t)
	r.TokenName = strings.Repeat("n", 5000)
	r.Reason = strings.Repeat("why not? ", 2000)
	r.Repositories = nil
	for i := range 1000 {
		r.Repositories = append(r.Repositories, strings.Repeat("r", 90)+string(rune('a'+i%26)))
	}
	r.RepositoryCount = 1000
	perms := map[string]string{}
	for i := range 200 {
		perms[strings.Repeat("p", 50)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "write"
	}
	r.PermissionsResult = store.Permissions{Organization: perms, Repository: perms, Other: perms}
	for _, state := range []store.State{store.StatePending, store.StateDenied} {
		r := r
		if state == store.StateDenied {
			r = decided(r, state, &store.Decision{Action: "deny", Actor: "a", SlackUser: "U1", At: cardNow, Source: store.SourceSlack, Reason: strings.Repeat("x", 1024)})
		}
		blocks, text := Card(CardView{Req: r, OrgLogin: "acme", WebURL: "https://github.com", Now: cardNow})
		raw, _ := json.Marshal(blocks)
		if e := slacktest.ValidateMessage(text, raw); e != "" {
			t.Errorf("%s: Slack would refuse: %s (%d bytes)", state, e, len(raw))
		}
		if !strings.Contains(string(raw), "…and 990 more") || !regexp.MustCompile(`and 1[0-9]{2} more`).Match(raw) {
			t.Errorf("%s: long lists are not summarised with counts", state)
		}
	}
}

func TestRelative(t *testing.T) {
	now := cardNow
	for d, want := range map[time.Duration]string{
		30 * 24 * time.Hour: "in 30 days",
		5 * time.Hour:       "in 5 hours",
		-3 * 24 * time.Hour: "expired 3 days ago",
		30 * time.Second:    "in moments",
	} {
		if got := Relative(now.Add(d), now); got != want {
			t.Errorf("Relative(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestRequestKeyRoundTrip(t *testing.T) {
	org, id, ok := ParseRequestKey(RequestKey("Acme", 42))
	if !ok || org != "acme" || id != 42 {
		t.Errorf("got %q %d %v", org, id, ok)
	}
	for _, bad := range []string{"", "acme", "acme/", "/42", "acme/x", "acme/-1"} {
		if _, _, ok := ParseRequestKey(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// BenchmarkRenderCard measures rendering a full card (the rich fixture,
// decided, with a reason).
func BenchmarkRenderCard(b *testing.B) {
	t := &testing.T{}
	r := decided(richRequest(t), store.StateDenied, &store.Decision{Action: "deny", Actor: "alice", SlackUser: "U0ALICE", At: cardNow, Source: store.SourceSlack, Reason: "too broad"})
	v := CardView{Req: r, OrgLogin: "acme", WebURL: "https://github.com", Now: cardNow}
	b.ReportAllocs()
	for b.Loop() {
		Card(v)
	}
}
