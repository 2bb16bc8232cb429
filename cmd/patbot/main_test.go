package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/logtest"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
)

const (
	testWebhookSecret = "whsec-never-print-me"
	testBotToken      = "xoxb-never-print-me"
	testSigning       = "signing-never-print-me"
)

var (
	keyOnce sync.Once
	keyPEM  []byte
)

func testKeyPEM(t *testing.T) []byte {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	})
	return keyPEM
}

const goodPolicy = `
orgs:
  Acme:
    channel: C0123456789
    approver_teams: [security]
  github-ssh-authority:
    channel: C0000000001
users:
  U0123456789: octocat
`

// testEnv writes a key and a policy file and returns a complete environment.
func testEnv(t *testing.T, policy string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(keyFile, testKeyPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "patbot.yaml")
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"GITHUB_APP_ID":               "1001",
		"GITHUB_APP_PRIVATE_KEY_FILE": keyFile,
		"GITHUB_WEBHOOK_SECRET":       testWebhookSecret,
		"SLACK_BOT_TOKEN":             testBotToken,
		"SLACK_SIGNING_SECRET":        testSigning,
		"PATBOT_CONFIG":               policyFile,
		"PATBOT_DB":                   filepath.Join(dir, "patbot.db"),
		"PATBOT_ADDR":                 "127.0.0.1:0",
	}
}

// fakeEnv is testEnv(policy) pointed at a fake GitHub and a fake Slack.
func fakeEnv(t *testing.T, policy string, gh *githubtest.Server, sl *slacktest.Server) map[string]string {
	t.Helper()
	env := testEnv(t, policy)
	keyFile := filepath.Join(t.TempDir(), "fake-app.pem")
	if err := os.WriteFile(keyFile, gh.PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	env["GITHUB_APP_ID"] = fmt.Sprint(gh.AppID)
	env["GITHUB_APP_PRIVATE_KEY_FILE"] = keyFile
	env["GITHUB_API_URL"] = gh.URL
	env["SLACK_API_URL"] = sl.URL
	env["SLACK_RESPONSE_URL_PREFIXES"] = sl.ResponseURL("")
	return env
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestConfigValid(t *testing.T) {
	env := testEnv(t, goodPolicy)
	cfg, err := loadConfig("serve", nil, getenv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AppID != 1001 || cfg.GitHubAPIURL != "https://api.github.com/" || cfg.SlackAPIURL != "https://slack.com/api/" {
		t.Errorf("cfg = %+v", cfg)
	}
	acme, ok := cfg.Bot.Org("ACME")
	if !ok || acme.Login != "Acme" || acme.Channel != "C0123456789" || len(acme.ApproverTeams) != 1 {
		t.Errorf("acme = %+v, %v", acme, ok)
	}
	if cfg.Bot.Users["U0123456789"] != "octocat" {
		t.Errorf("users = %v", cfg.Bot.Users)
	}
}

func TestConfigPrecedence(t *testing.T) {
	env := testEnv(t, goodPolicy)
	env["GITHUB_API_URL"] = "https://ghe.example.com/api/v3"
	cfg, err := loadConfig("serve", []string{"-addr", "127.0.0.1:9999", "-db", "/tmp/other.db"}, getenv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" || cfg.DBPath != "/tmp/other.db" {
		t.Errorf("flags did not override env: %s %s", cfg.Addr, cfg.DBPath)
	}
	if cfg.ConfigPath != env["PATBOT_CONFIG"] {
		t.Errorf("env did not override the default: %s", cfg.ConfigPath)
	}
	if cfg.GitHubAPIURL != "https://ghe.example.com/api/v3/" {
		t.Errorf("GitHub Enterprise URL = %s", cfg.GitHubAPIURL)
	}
	delete(env, "PATBOT_DB")
	cfg, _ = loadConfig("serve", nil, getenv(env), io.Discard)
	if cfg.DBPath != "./patbot.db" {
		t.Errorf("default db = %s", cfg.DBPath)
	}
}

func TestConfigKeyAsText(t *testing.T) {
	env := testEnv(t, goodPolicy)
	delete(env, "GITHUB_APP_PRIVATE_KEY_FILE")
	// As env files often carry it: one line with \n escapes.
	env["GITHUB_APP_PRIVATE_KEY"] = strings.ReplaceAll(string(testKeyPEM(t)), "\n", `\n`)
	if _, err := loadConfig("serve", nil, getenv(env), io.Discard); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameEveryProblemAtOnce(t *testing.T) {
	tests := map[string]struct {
		change func(env map[string]string)
		policy string
		want   []string
	}{
		"nothing set": {
			change: func(env map[string]string) { clear(env) },
			want: []string{"GITHUB_APP_ID is required", "GITHUB_APP_PRIVATE_KEY_FILE or GITHUB_APP_PRIVATE_KEY is required",
				"GITHUB_WEBHOOK_SECRET is required", "SLACK_BOT_TOKEN is required",
				"SLACK_SIGNING_SECRET is required unless SLACK_APP_TOKEN is set", "policy file: ./patbot.yaml"},
		},
		"issue example": {
			change: func(env map[string]string) { delete(env, "GITHUB_APP_ID") },
			policy: "orgs:\n  acme:\n    channel: \"\"\n",
			want:   []string{"GITHUB_APP_ID is required; orgs.acme.channel is empty"},
		},
		"bad values": {
			change: func(env map[string]string) {
				env["GITHUB_APP_ID"] = "abc"
				env["SLACK_BOT_TOKEN"] = "xoxp-user-token-secret"
				env["SLACK_APP_TOKEN"] = "not-an-app-token-secret"
				env["GITHUB_API_URL"] = "api.github.com"
				env["PATBOT_ADDR"] = "8080"
				env["PATBOT_RECONCILE_INTERVAL"] = "5s"
			},
			want: []string{"GITHUB_APP_ID must be a positive integer", "SLACK_BOT_TOKEN must be a bot token",
				"SLACK_APP_TOKEN must be an app-level token", "GITHUB_API_URL", "listen address \"8080\"", "PATBOT_RECONCILE_INTERVAL must be a duration"},
		},
		"key not PEM": {
			change: func(env map[string]string) {
				os.WriteFile(env["GITHUB_APP_PRIVATE_KEY_FILE"], []byte("secret-key-material"), 0o600)
			},
			want: []string{"is not an RSA private key in PEM form"},
		},
		"key not RSA": {
			change: func(env map[string]string) {
				delete(env, "GITHUB_APP_PRIVATE_KEY_FILE")
				env["GITHUB_APP_PRIVATE_KEY"] = "-----BEGIN CERTIFICATE-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END CERTIFICATE-----\n"
			},
			want: []string{"GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM form"},
		},
		"both key forms": {
			change: func(env map[string]string) { env["GITHUB_APP_PRIVATE_KEY"] = string(testKeyPEM(t)) },
			want:   []string{"set only one of GITHUB_APP_PRIVATE_KEY_FILE and GITHUB_APP_PRIVATE_KEY"},
		},
		"key file missing": {
			change: func(env map[string]string) { env["GITHUB_APP_PRIVATE_KEY_FILE"] = "/nonexistent/app.pem" },
			want:   []string{"GITHUB_APP_PRIVATE_KEY_FILE: /nonexistent/app.pem: no such file or directory"},
		},
		"socket mode needs no signing secret": {
			change: func(env map[string]string) {
				delete(env, "SLACK_SIGNING_SECRET")
				env["SLACK_APP_TOKEN"] = "xapp-1"
				env["GITHUB_APP_ID"] = "0"
			},
			want: []string{"GITHUB_APP_ID must be a positive integer"},
		},
		"response URL prefixes": {
			change: func(env map[string]string) {
				env["SLACK_RESPONSE_URL_PREFIXES"] = "https://hooks.slack.com, http://hooks.example.com/, https://hooks.slack-gov.com/, http://127.0.0.1:9/r/"
			},
			want: []string{`SLACK_RESPONSE_URL_PREFIXES: "https://hooks.slack.com" must end in /`,
				`SLACK_RESPONSE_URL_PREFIXES: "http://hooks.example.com/" must be https (http only on a loopback address)`},
		},
		"unknown YAML key": {
			policy: "orgs:\n  acme:\n    chanel: C0123456789\n",
			want:   []string{`unknown key "chanel"`, "orgs.acme.channel is empty"},
		},
		"unknown top-level key": {
			policy: "orgs:\n  acme:\n    channel: C0123456789\napprovers: [x]\n",
			want:   []string{`unknown key "approvers"`},
		},
		"policy values": {
			policy: "orgs:\n  acme:\n    channel: general\n    approver_teams: [\"bad team\"]\n  ACME:\n    channel: C1234567\n  \"not/an/org\":\n    channel: C1234567\nusers:\n  alice: \"not a login\"\n",
			want: []string{`orgs.acme.channel "general" is not a Slack channel ID`, `orgs.acme.approver_teams: "bad team" is not a team slug`,
				"listed twice", "orgs.not/an/org: not a GitHub organization login", "users.alice: not a Slack user ID", `users.alice: "not a login" is not a GitHub login`},
		},
		"empty policy": {
			policy: "",
			want:   []string{"orgs is empty"},
		},
		"YAML syntax": {
			policy: "orgs: [\n",
			want:   []string{"policy file"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			policy := goodPolicy
			if tc.policy != "" || name == "empty policy" {
				policy = tc.policy
			}
			env := testEnv(t, policy)
			if tc.change != nil {
				tc.change(env)
			}
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"serve"}, getenv(env), io.Discard, &stderr)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitUsage, &stderr)
			}
			out := stderr.String()
			if strings.Count(out, "\n") != 1 {
				t.Errorf("want one message, got: %s", out)
			}
			mustContain(t, "message", out, tc.want...)
			mustNotLeak(t, "message", out, testWebhookSecret, testBotToken, testSigning, "secret-key-material", "c2VjcmV0",
				"xoxp-user-token-secret", "not-an-app-token-secret", "PRIVATE KEY")
		})
	}
}

func TestVersionAndUsage(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, getenv(nil), &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "patbot ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, getenv(nil), io.Discard, &errOut); code != exitUsage || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errOut.String())
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out.Reset()
		if code := run(context.Background(), args, getenv(nil), &out, io.Discard); code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		mustContain(t, fmt.Sprint(args), out.String(), "patbot demo", "patbot serve", "patbot check", "patbot setup", "patbot audit",
			"patbot bench", "patbot healthcheck", "patbot version")
	}
	// Each command's help is its own.
	for _, cmd := range []string{"serve", "check", "demo", "audit", "bench", "healthcheck"} {
		errOut.Reset()
		if code := run(context.Background(), []string{cmd, "-h"}, getenv(nil), io.Discard, &errOut); code != 0 {
			t.Errorf("%s -h: exit %d", cmd, code)
		}
		mustContain(t, cmd+" -h", errOut.String(), "Usage: patbot "+cmd)
		if cmd != "serve" && strings.Contains(errOut.String(), "patbot serve") {
			t.Errorf("%s -h speaks of serve:\n%s", cmd, &errOut)
		}
	}
	errOut.Reset()
	run(context.Background(), []string{"setup", "github", "-h"}, getenv(nil), io.Discard, &errOut)
	mustContain(t, "setup github -h", errOut.String(), "Usage: patbot setup github")
}

func TestVersionFromBuildInfo(t *testing.T) {
	for want, bi := range map[string]*debug.BuildInfo{
		"v1.2.3":              {Main: debug.Module{Version: "v1.2.3"}},
		"devel+0123456789ab":  {Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "false"}}},
		"devel+0123456-dirty": {Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456"}, {Key: "vcs.modified", Value: "true"}}},
		"devel":               {Main: debug.Module{Version: "(devel)"}},
	} {
		if got := versionFrom(bi); got != want {
			t.Errorf("versionFrom(%+v) = %q, want %q", bi, got, want)
		}
	}
}

func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprintln(w, "ok")
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var out bytes.Buffer
	if code := run(context.Background(), []string{"healthcheck"}, getenv(map[string]string{"PATBOT_ADDR": addr}), &out, io.Discard); code != 0 || !strings.Contains(out.String(), "healthy") {
		t.Errorf("healthy patbot: %d %q", code, &out)
	}
	srv.Close()
	if code := run(context.Background(), []string{"healthcheck", "-addr", addr}, getenv(nil), io.Discard, io.Discard); code != exitFailed {
		t.Errorf("nothing listening: exit %d, want %d", code, exitFailed)
	}
}

// startApp runs patbot serve's wiring against a fake GitHub, as main does.
func startApp(t *testing.T, env map[string]string, logs io.Writer) (*App, func()) {
	t.Helper()
	cfg, err := loadConfig("serve", nil, getenv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	app, err := newApp(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	waitFor(t, "ready", func() bool {
		resp, err := http.Get("http://" + app.Addr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return app, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeEndToEnd(t *testing.T) {
	fake, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.AddOrg("github-ssh-authority", 49956902)
	fake.AddRequest("github-ssh-authority", github.PendingRequest{ID: 415440, Owner: github.User{Login: "halain987", ID: 18029382}})
	slackFake := slacktest.New(testBotToken)
	defer slackFake.Close()
	env := testEnv(t, goodPolicy)
	env["SLACK_API_URL"] = slackFake.URL
	keyFile := filepath.Join(t.TempDir(), "fake.pem")
	os.WriteFile(keyFile, fake.PrivateKeyPEM, 0o600)
	env["GITHUB_APP_PRIVATE_KEY_FILE"] = keyFile
	env["GITHUB_API_URL"] = fake.URL

	var logs logtest.Buffer
	app, stop := startApp(t, env, &logs)
	base := "http://" + app.Addr()

	body, err := os.ReadFile("../../github/testdata/personal_access_token_request.created.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(sig string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/github/webhook", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(github.HeaderEvent, github.EventPATRequest)
		req.Header.Set(github.HeaderDelivery, "e2e-1")
		req.Header.Set(github.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("sha256=00"); code != http.StatusUnauthorized {
		t.Errorf("unsigned webhook: %d", code)
	}
	if code := post(github.Sign([]byte(testWebhookSecret), body)); code != http.StatusAccepted {
		t.Fatalf("signed webhook: %d", code)
	}
	if code := post(github.Sign([]byte(testWebhookSecret), body)); code != http.StatusOK {
		t.Errorf("redelivery: %d", code)
	}

	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/nowhere": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	for path, want := range map[string]int{"/slack/interactions": http.StatusUnauthorized, "/slack/commands": http.StatusUnauthorized} {
		resp, err := http.Post(base+path, "application/x-www-form-urlencoded", strings.NewReader("x=1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	waitFor(t, "job done", func() bool { return strings.Contains(logs.String(), `"msg":"job done"`) })
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`patbot_webhooks_total{action="created",event="personal_access_token_request",outcome="queued"} 1`,
		`patbot_webhooks_total{action="created",event="personal_access_token_request",outcome="duplicate"} 1`,
		`patbot_webhooks_total{action="other",event="personal_access_token_request",outcome="bad_signature"} 1`,
		"patbot_queue_depth", "patbot_webhook_intake_seconds_bucket", "go_goroutines", "patbot_pending_requests",
		`patbot_api_requests_total{operation="GET /orgs/*/personal-access-token-requests",service="github",status="200"}`,
		`patbot_api_requests_total{operation="chat.postMessage",service="slack",status="200"} 1`,
		`patbot_api_request_seconds_bucket{operation="chat.postMessage",service="slack"`,
		// Series that have not moved exist from the start, at zero.
		`patbot_decisions_total{outcome="approved",source="slack"} 0`,
		`patbot_refusals_total{reason="not authorized"} 0`,
		`patbot_jobs_total{result="parked"} 0`,
		`patbot_webhooks_total{action="other",event="other",outcome="bad_signature"} 0`,
		`patbot_rate_limited_total{service="github"} 0`,
		`patbot_reconcile_repairs_total{kind="decision_settled"} 0`,
		`patbot_build_info{goversion="` + runtime.Version() + `",version="` + buildVersion() + `"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	waitFor(t, "job done", func() bool { return strings.Contains(logs.String(), `"msg":"job done"`) })
	stop()

	// The record outlives the process.
	db, err := bolt.Open(env["PATBOT_DB"], bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := db.Request("github-ssh-authority", 415440)
	if err != nil || r.State != store.StatePending || r.Owner != "halain987" {
		t.Errorf("record = %+v, %v", r, err)
	}
	out := logs.String()
	mustNotLeak(t, "logs", out, testWebhookSecret, testBotToken, testSigning, "PRIVATE KEY")
	if !strings.Contains(out, `"msg":"webhook accepted"`) || !strings.Contains(out, `"delivery":"e2e-1"`) {
		t.Errorf("no structured intake log line:\n%s", out)
	}
}

func TestSecondInstanceFailsOnLockedStore(t *testing.T) {
	env := testEnv(t, goodPolicy)
	_, stop := startApp(t, env, io.Discard)
	defer stop()

	var stderr bytes.Buffer
	code := run(context.Background(), []string{"serve"}, getenv(env), io.Discard, &stderr)
	if code == 0 {
		t.Fatal("second patbot started on a locked database")
	}
	if !strings.Contains(stderr.String(), "database is locked by another process (is another patbot running?)") {
		t.Errorf("stderr = %q", stderr.String())
	}
}

// An empty or damaged database file stops patbot with a message that says
// which file and what to do; the file is left as it was.
func TestDamagedStoreRefusedAtStart(t *testing.T) {
	for name, content := range map[string][]byte{"empty": {}, "garbage": bytes.Repeat([]byte("not a database "), 1000)} {
		t.Run(name, func(t *testing.T) {
			env := testEnv(t, goodPolicy)
			os.WriteFile(env["PATBOT_DB"], content, 0o600)
			for _, args := range [][]string{{"serve"}, {"audit"}} {
				var stderr bytes.Buffer
				if code := run(context.Background(), args, getenv(env), io.Discard, &stderr); code != exitFailed {
					t.Fatalf("%s: exit %d, want %d; stderr: %s", args[0], code, exitFailed, &stderr)
				}
				mustContain(t, args[0]+"'s message", stderr.String(), env["PATBOT_DB"], "cannot be read", "restore it from a backup")
				if strings.Contains(stderr.String(), "goroutine") {
					t.Errorf("%s: a stack trace:\n%s", args[0], &stderr)
				}
			}
			if after, _ := os.ReadFile(env["PATBOT_DB"]); !bytes.Equal(after, content) {
				t.Error("the file was changed")
			}
		})
	}
}

// mustContain fails t for each of wants that text lacks; what names text.
func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, text)
		}
	}
}

// mustNotLeak fails t for each of secrets that text shows.
func mustNotLeak(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(text, secret) {
			t.Errorf("%s leaks %q", what, secret)
		}
	}
}

func TestDefaultGCPercent(t *testing.T) {
	if percent, ok := defaultGCPercent(func(string) string { return "" }); !ok || percent != 200 {
		t.Errorf("without GOGC: %d, %v; want 200, true", percent, ok)
	}
	operator := func(key string) string {
		if key == "GOGC" {
			return "50"
		}
		return ""
	}
	if _, ok := defaultGCPercent(operator); ok {
		t.Error("patbot overrides the GOGC its operator set")
	}
}
