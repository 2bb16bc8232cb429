package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github/githubtest"
)

func TestDemoRunsTheWholeFlowOffline(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"demo"}, getenv(nil), &out, &errOut); code != 0 {
		t.Fatalf("demo exited %d: %s", code, errOut.String())
	}
	text := out.String()
	mustContain(t, "demo output", text,
		"POST /github/webhook (personal_access_token_request, created) → 202 Accepted",
		"Publish releases from the CI pipeline.", "[ Approve ]  [ Deny… ]",
		"GitHub says carol is not an owner of acme. Nothing was changed.",
		`POST /orgs/acme/personal-access-token-requests/4242 {"action":"approve"} → 204 No Content`,
		"*Approved* by @alice (alice)", "octocat got a direct message",
		":x: *Denied* by @alice (alice)", ">Administration of every repository is too broad",
		"FINE-GRAINED TOKENS OF OCTOCAT", "`release-automation`", "[ Revoke ]")
	if strings.Contains(text, "Block Kit JSON:") || strings.Count(text, "\n") > 200 {
		t.Errorf("the default story is not short and readable: %d lines", strings.Count(text, "\n"))
	}
	out.Reset()
	if code := run(context.Background(), []string{"demo", "-json"}, getenv(nil), &out, &errOut); code != 0 {
		t.Fatalf("demo -json exited %d: %s", code, errOut.String())
	}
	mustContain(t, "demo -json output", out.String(), "Block Kit JSON:", `"action_id": "pat_approve"`)
}

// checkEnv is a configuration whose GitHub and Slack are fakes.
func checkEnv(t *testing.T, policy string) (map[string]string, *githubtest.Server, *slacktest.Server) {
	t.Helper()
	gh, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	sl := slacktest.New(testBotToken)
	t.Cleanup(sl.Close)
	return fakeEnv(t, policy, gh, sl), gh, sl
}

const checkPolicy = `
orgs:
  acme: {channel: C0000000001}
  beta: {channel: C0000000002}
  gamma: {channel: C0000000003}
users: {U0ALICE: alice}
`

func TestCheckAllGood(t *testing.T) {
	env, gh, _ := checkEnv(t, checkPolicy)
	for i, org := range []string{"acme", "beta", "gamma"} {
		gh.AddOrg(org, int64(10+i))
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard); code != 0 {
		t.Fatalf("check exited %d:\n%s", code, &out)
	}
	mustContain(t, "output", out.String(),
		"✓ configuration: 3 organizations, 1 Slack user mapped",
		"✓ GitHub App: authenticated as patbot",
		"✓ GitHub acme: installed (installation 10)",
		"✓ Slack: bot token works",
		"✓ Slack C0000000003 (gamma): #pat-requests exists and the bot can post there",
		"All checks passed.",
	)
}

func TestCheckReportsEveryProblem(t *testing.T) {
	env, gh, sl := checkEnv(t, checkPolicy)
	gh.AddOrg("acme", 10)
	gh.AddOrg("gamma", 12)
	gh.SetPermissions("gamma", map[string]string{"organization_personal_access_token_requests": "read", "members": "read"})
	sl.SetChannels("C0000000001")
	var out bytes.Buffer
	code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard)
	if code != exitFailed {
		t.Fatalf("check exited %d, want %d:\n%s", code, exitFailed, &out)
	}
	mustContain(t, "output", out.String(),
		"✓ GitHub acme: installed",
		"✗ GitHub beta: the App is not installed on beta",
		"✗ GitHub gamma: installation 12 lacks organization_personal_access_token_requests: write, organization_personal_access_tokens: write",
		"✓ Slack C0000000001 (acme)",
		"✗ Slack C0000000002 (beta): Slack says channel_not_found",
		"4 problems to fix.",
	)

	// A wrong Slack token and a wrong key are reported, without the secrets.
	env["SLACK_BOT_TOKEN"] = "xoxb-wrong-secret-token"
	env["GITHUB_APP_ID"] = "999"
	out.Reset()
	if code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard); code != exitFailed {
		t.Fatalf("exit %d", code)
	}
	mustContain(t, "output", out.String(),
		"✗ GitHub App: the App ID and private key do not authenticate: GitHub answered 401 Unauthorized",
		"✗ Slack: the bot token does not work: Slack says invalid_auth")
	mustNotLeak(t, "check's output", out.String(), "xoxb-wrong-secret-token")
}

func TestCheckInvalidConfiguration(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"check"}, getenv(nil), &out, io.Discard); code != exitUsage {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out.String(), "✗ configuration: GITHUB_APP_ID is required") {
		t.Errorf("output = %q", &out)
	}
}

func TestCheckSocketModeToken(t *testing.T) {
	env, gh, sl := checkEnv(t, "orgs: {acme: {channel: C0000000001}}\n")
	gh.AddOrg("acme", 10)
	sl.EnableSocketMode("xapp-right")
	delete(env, "SLACK_SIGNING_SECRET")
	env["SLACK_APP_TOKEN"] = "xapp-right"
	var out bytes.Buffer
	if code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard); code != 0 {
		t.Fatalf("exit %d:\n%s", code, &out)
	}
	if !strings.Contains(out.String(), "✓ Slack Socket Mode: the app-level token opens connections") {
		t.Errorf("output:\n%s", &out)
	}
	env["SLACK_APP_TOKEN"] = "xapp-wrong"
	out.Reset()
	if code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard); code != exitFailed {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "✗ Slack Socket Mode: the app-level token (SLACK_APP_TOKEN) does not open a connection: Slack says invalid_auth") {
		t.Errorf("output:\n%s", &out)
	}
}

func TestCheckLinking(t *testing.T) {
	policy := "orgs:\n  acme: {channel: C0000000001, approver_teams: [security], decide_as: approver}\n"
	env, gh, _ := checkEnv(t, policy)
	gh.AddOrg("acme", 10)
	env["GITHUB_APP_CLIENT_ID"] = githubtest.ClientID
	env["GITHUB_APP_CLIENT_SECRET"] = githubtest.ClientSecret
	env["PATBOT_PUBLIC_URL"] = "https://patbot.example.com"
	env["PATBOT_SECRET_KEY"] = testSecretKey
	var out bytes.Buffer
	if code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard); code != 0 {
		t.Fatalf("check exited %d:\n%s", code, &out)
	}
	mustContain(t, "output", out.String(),
		"✓ GitHub sign-in: GitHub accepts the client id and secret; the App's callback URL must be https://patbot.example.com/github/callback",
		"! policy acme: decide_as: approver lets only owners decide", "All checks passed.")
	mustNotLeak(t, "output", out.String(), githubtest.ClientSecret, testSecretKey)

	env["GITHUB_APP_CLIENT_SECRET"] = "not-the-secret"
	out.Reset()
	if code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard); code == 0 {
		t.Fatalf("check passed with a wrong client secret:\n%s", &out)
	}
	mustContain(t, "output", out.String(), "✗ GitHub sign-in: GitHub does not accept GITHUB_APP_CLIENT_ID and GITHUB_APP_CLIENT_SECRET")
	mustNotLeak(t, "output", out.String(), "not-the-secret")
}

func TestConfigLinkingSettings(t *testing.T) {
	policy := "orgs:\n  acme: {channel: C0000000001, decide_as: approver, identity: linked}\n"
	env := testEnv(t, policy)
	_, err := loadConfig("serve", nil, getenv(env), io.Discard)
	mustContain(t, "error", fmt.Sprint(err), "orgs.acme.decide_as: approver needs linking", "orgs.acme.identity: linked needs linking")
	_, err = loadConfig("serve", nil, getenv(testEnv(t, "orgs:\n  acme: {channel: C0000000001, decide_as: owner, identity: strict}\n")), io.Discard)
	mustContain(t, "error", fmt.Sprint(err), `orgs.acme.decide_as "owner": must be "app" or "approver"`, `orgs.acme.identity "strict": the only value is "linked"`)

	env["GITHUB_APP_CLIENT_ID"] = "Iv1.x"
	env["PATBOT_PUBLIC_URL"] = "http://patbot.example.com/"
	env["PATBOT_SECRET_KEY"] = "c2hvcnQ="
	env["PATBOT_SECRET_KEY_PREVIOUS_FILE"] = "/nonexistent/key"
	_, err = loadConfig("serve", nil, getenv(env), io.Discard)
	mustContain(t, "error", fmt.Sprint(err), "GITHUB_APP_CLIENT_SECRET is required", "PATBOT_PUBLIC_URL \"http://patbot.example.com/\" must be https",
		"PATBOT_SECRET_KEY: not 32 bytes", "PATBOT_SECRET_KEY_PREVIOUS_FILE: /nonexistent/key")
	mustNotLeak(t, "error", fmt.Sprint(err), "c2hvcnQ=")

	dir := t.TempDir()
	secretFile, keyFile := filepath.Join(dir, "secret"), filepath.Join(dir, "key")
	os.WriteFile(secretFile, []byte("s3cret\n"), 0o600)
	os.WriteFile(keyFile, []byte(testSecretKey+"\n"), 0o600)
	delete(env, "PATBOT_SECRET_KEY_PREVIOUS_FILE")
	delete(env, "PATBOT_SECRET_KEY")
	env["GITHUB_APP_CLIENT_SECRET_FILE"] = secretFile
	env["PATBOT_SECRET_KEY_FILE"] = keyFile
	env["PATBOT_PUBLIC_URL"] = "http://127.0.0.1:8080"
	cfg, err := loadConfig("serve", nil, getenv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GitHubClientSecret != "s3cret" || len(cfg.SecretKey) != 32 || cfg.PublicURL != "http://127.0.0.1:8080/" || cfg.GitHubWebURL != "https://github.com/" {
		t.Errorf("cfg: secret %q, key %d bytes, public %q, web %q", cfg.GitHubClientSecret, len(cfg.SecretKey), cfg.PublicURL, cfg.GitHubWebURL)
	}
	acme, _ := cfg.Bot.Org("acme")
	if acme.DecideAs != "approver" || acme.Identity != "linked" {
		t.Errorf("acme = %+v", acme)
	}
	env["GITHUB_APP_CLIENT_SECRET"] = "both"
	if _, err := loadConfig("serve", nil, getenv(env), io.Discard); !strings.Contains(fmt.Sprint(err), "set only one of GITHUB_APP_CLIENT_SECRET and GITHUB_APP_CLIENT_SECRET_FILE") {
		t.Errorf("both set: %v", err)
	}
}

func TestConfigFollowThrough(t *testing.T) {
	cfg, err := loadConfig("serve", nil, getenv(testEnv(t, `
orgs:
  acme:
    channel: C0000000001
    timezone: Europe/Berlin
    quiet_hours: {from: "20:00", to: "08:00", weekends: true}
    remind: {after: 4h, every: 24h, times: 3, mention: [S0123ABCD, U0123ABCD], broadcast: true}
    escalate: {after: 2d, channel: C0SECURITY1}
`)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := cfg.Bot.Org("acme")
	if acme.Location.String() != "Europe/Berlin" || acme.Quiet.From != 20*60 || !acme.Quiet.Weekends ||
		acme.Remind.After != 4*time.Hour || acme.Remind.Times != 3 || !acme.Remind.Broadcast || len(acme.Remind.Mention) != 2 ||
		acme.Escalate.After != 48*time.Hour || acme.Escalate.Channel != "C0SECURITY1" {
		t.Errorf("acme = %+v", acme)
	}
	_, err = loadConfig("serve", nil, getenv(testEnv(t, `
orgs:
  acme:
    channel: C0000000001
    timezone: Mars/Olympus
    quiet_hours: {from: "8pm", to: "08:00"}
    remind: {every: 1h, times: 3, mention: [alice]}
    escalate: {after: 1h, channel: C0000000001}
`)), io.Discard)
	mustContain(t, "error", fmt.Sprint(err), `orgs.acme.timezone "Mars/Olympus" is not a time zone`, `orgs.acme.quiet_hours.from: "8pm" is not a time of day`,
		"orgs.acme.remind.after is required", `orgs.acme.remind.mention: "alice" is not a Slack user`, "orgs.acme.escalate.channel is the org's own channel")
}

// patbot check looks at the escalation channel too.
func TestCheckEscalationChannel(t *testing.T) {
	env, gh, sl := checkEnv(t, "orgs:\n  acme: {channel: C0000000001, escalate: {after: 2d, channel: C0SECURITY1}}\n")
	gh.AddOrg("acme", 10)
	sl.SetChannels("C0000000001")
	var out bytes.Buffer
	if code := run(context.Background(), []string{"check"}, getenv(env), &out, io.Discard); code == 0 {
		t.Fatalf("check passed without the escalation channel:\n%s", &out)
	}
	mustContain(t, "output", out.String(), "✓ Slack C0000000001 (acme)", "✗ Slack C0SECURITY1 (acme)")
}

// The example policy file loads as it is, and with every optional key
// it shows switched on.
func TestExamplePolicyFile(t *testing.T) {
	raw, err := os.ReadFile("../../patbot.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, text := range map[string]string{
		"as-is": string(raw),
		"all-on": regexp.MustCompile(`(?m)^    # `).ReplaceAllString(
			regexp.MustCompile(`(?m)^    #   `).ReplaceAllString(string(raw), "      "), "    "),
	} {
		path := filepath.Join(dir, name+".yaml")
		os.WriteFile(path, []byte(text), 0o600)
		p, problems := loadPolicy(path)
		// decide_as: approver and identity: linked need linking, which the
		// environment turns on; the file itself is valid.
		if len(problems) > 0 {
			t.Errorf("%s: %v\n%s", name, problems, text)
		}
		if acme, ok := p.Org("acme"); !ok || name == "all-on" && (acme.Policy == nil || acme.Remind == nil || acme.DigestAt == nil || acme.Hygiene == nil) {
			t.Errorf("%s: acme = %+v", name, acme)
		}
	}
}
