package main

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/patbot/patbot/bot/logtest"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
)

func TestSetupGitHubFromManifest(t *testing.T) {
	gh, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gh.Close()
	gh.AddManifestCode("code-123")
	dir := t.TempDir()
	envFile, keyFile := filepath.Join(dir, "patbot.env"), filepath.Join(dir, "patbot.pem")

	out := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"setup", "github", "-org", "acme", "-webhook-url", "https://patbot.example.com/github/webhook",
			"-addr", "127.0.0.1:0", "-github-api-url", gh.URL, "-env-file", envFile, "-key-file", keyFile}, getenv(nil), out, out)
	}()
	var local string
	waitFor(t, "setup page", func() bool {
		m := regexp.MustCompile(`Open (http://127\.0\.0\.1:\d+)/`).FindStringSubmatch(out.String())
		if m != nil {
			local = m[1]
		}
		return m != nil
	})

	// The page submits the manifest to the org's "new App" form on GitHub.
	resp, err := http.Get(local + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := regexp.MustCompile(`<form action="([^"]+)" method="post">\s*<input type="hidden" name="manifest" value="([^"]+)">`).FindStringSubmatch(string(page))
	if form == nil {
		t.Fatalf("no manifest form:\n%s", page)
	}
	action := html.UnescapeString(form[1])
	if !strings.HasPrefix(action, github.WebURL(gh.URL)+"/organizations/acme/settings/apps/new?state=") {
		t.Errorf("form posts to %s", action)
	}
	var manifest github.AppManifest
	if err := json.Unmarshal([]byte(html.UnescapeString(form[2])), &manifest); err != nil {
		t.Fatal(err)
	}
	if manifest.HookAttributes.URL != "https://patbot.example.com/github/webhook" || !manifest.HookAttributes.Active || manifest.Public ||
		manifest.RedirectURL != local+"/callback" || manifest.URL != "https://patbot.example.com" ||
		len(manifest.CallbackURLs) != 1 || manifest.CallbackURLs[0] != "https://patbot.example.com/github/callback" ||
		manifest.DefaultPermissions["organization_personal_access_token_requests"] != "write" ||
		manifest.DefaultPermissions["organization_personal_access_tokens"] != "write" || manifest.DefaultPermissions["members"] != "read" ||
		len(manifest.DefaultEvents) != 1 || manifest.DefaultEvents[0] != "personal_access_token_request" {
		t.Errorf("manifest = %+v", manifest)
	}
	state := strings.SplitN(action, "state=", 2)[1]

	// A callback without the right state is refused and redeems nothing.
	resp, _ = http.Get(local + "/callback?code=code-123&state=forged")
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged callback: %d", resp.StatusCode)
	}
	// GitHub redirects back with the code.
	resp, err = http.Get(local + "/callback?code=code-123&state=" + state)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "installations/new") {
		t.Errorf("callback: %d %s", resp.StatusCode, body)
	}
	if code := <-done; code != 0 {
		t.Fatalf("setup exited %d:\n%s", code, out)
	}

	for _, f := range []string{envFile, keyFile} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v", f, err, fi.Mode())
		}
	}
	env, _ := os.ReadFile(envFile)
	mustContain(t, "env file", string(env), "GITHUB_APP_ID=1001\n", "GITHUB_APP_PRIVATE_KEY_FILE="+keyFile+"\n",
		"GITHUB_WEBHOOK_SECRET=whsec_githubtest\n", "GITHUB_API_URL="+gh.URL, "GITHUB_WEB_URL="+gh.WebURL+"\n",
		"GITHUB_APP_CLIENT_ID="+githubtest.ClientID+"\n", "GITHUB_APP_CLIENT_SECRET="+githubtest.ClientSecret+"\n",
		"PATBOT_PUBLIC_URL=https://patbot.example.com/\n", "PATBOT_SECRET_KEY=")
	if m := regexp.MustCompile(`PATBOT_SECRET_KEY=([0-9a-f]{64})\n`).FindStringSubmatch(string(env)); m == nil {
		t.Errorf("no 32-byte hex secret key in the env file:\n%s", env)
	}
	key, _ := os.ReadFile(keyFile)
	if _, err := github.ParsePrivateKey(key); err != nil {
		t.Errorf("key file: %v", err)
	}
	if !strings.Contains(out.String(), "Install the App on each organization") || strings.Contains(out.String(), "whsec_githubtest") || strings.Contains(out.String(), githubtest.ClientSecret) {
		t.Errorf("output:\n%s", out)
	}
	if len(gh.CallsTo(http.MethodPost, "/app-manifests/code-123/conversions")) != 1 {
		t.Error("the code was not exchanged exactly once")
	}
}

func TestSetupGitHubValidatesAndKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "patbot.env")
	os.WriteFile(existing, []byte("keep me"), 0o600)
	var errOut strings.Builder
	code := run(context.Background(), []string{"setup", "github", "-webhook-url", "https://x.example.com/hooks", "-env-file", existing, "-org", "not/an/org"},
		getenv(nil), io.Discard, &errOut)
	if code != exitUsage {
		t.Fatalf("exit %d", code)
	}
	mustContain(t, "message", errOut.String(), "should end in /github/webhook", "not a GitHub organization login",
		"exists: move it away or pass -force")
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Error("existing env file changed")
	}
	if code := run(context.Background(), []string{"setup", "gitlab"}, getenv(nil), io.Discard, io.Discard); code != exitUsage {
		t.Errorf("unknown setup target: %d", code)
	}
}
