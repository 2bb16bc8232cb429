package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/patbot/patbot/bot"
)

// slackManifest is the part of a Slack app manifest patbot relies on.
type slackManifest struct {
	DisplayInformation struct {
		Name        string `yaml:"name"`
		Description string `yaml:"description"`
	} `yaml:"display_information"`
	Features struct {
		AppHome struct {
			HomeTabEnabled bool `yaml:"home_tab_enabled"`
		} `yaml:"app_home"`
		BotUser struct {
			DisplayName string `yaml:"display_name"`
		} `yaml:"bot_user"`
		SlashCommands []struct {
			Command      string `yaml:"command"`
			URL          string `yaml:"url"`
			Description  string `yaml:"description"`
			UsageHint    string `yaml:"usage_hint"`
			ShouldEscape bool   `yaml:"should_escape"`
		} `yaml:"slash_commands"`
	} `yaml:"features"`
	OAuthConfig struct {
		Scopes struct {
			Bot []string `yaml:"bot"`
		} `yaml:"scopes"`
	} `yaml:"oauth_config"`
	Settings struct {
		Interactivity struct {
			IsEnabled  bool   `yaml:"is_enabled"`
			RequestURL string `yaml:"request_url"`
		} `yaml:"interactivity"`
		EventSubscriptions struct {
			RequestURL string   `yaml:"request_url"`
			BotEvents  []string `yaml:"bot_events"`
		} `yaml:"event_subscriptions"`
		SocketModeEnabled    bool `yaml:"socket_mode_enabled"`
		TokenRotationEnabled bool `yaml:"token_rotation_enabled"`
	} `yaml:"settings"`
}

func readManifest(t *testing.T, name string) slackManifest {
	t.Helper()
	raw, err := os.ReadFile("../../" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m slackManifest
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkManifestCommon checks what both manifests must say alike: the
// command, interactivity, and a scope for every Slack method patbot calls.
func checkManifestCommon(t *testing.T, m slackManifest) {
	t.Helper()
	if m.DisplayInformation.Name == "" || len(m.DisplayInformation.Name) > 35 || m.Features.BotUser.DisplayName == "" {
		t.Errorf("display information = %+v", m.DisplayInformation)
	}
	if m.Settings.TokenRotationEnabled {
		t.Error("patbot does not rotate tokens")
	}
	if len(m.Features.SlashCommands) != 1 {
		t.Fatalf("slash commands = %+v", m.Features.SlashCommands)
	}
	cmd := m.Features.SlashCommands[0]
	if cmd.Command != bot.Command || !cmd.ShouldEscape || cmd.UsageHint == "" || cmd.Description == "" {
		t.Errorf("slash command = %+v; it needs should_escape: true so that mentions arrive as user IDs", cmd)
	}
	if !m.Settings.Interactivity.IsEnabled {
		t.Error("interactivity is off")
	}
	if !m.Features.AppHome.HomeTabEnabled || strings.Join(m.Settings.EventSubscriptions.BotEvents, ",") != "app_home_opened" {
		t.Errorf("the Home tab is not on, or the app does not subscribe to app_home_opened: %+v %+v", m.Features.AppHome, m.Settings.EventSubscriptions)
	}
	granted := map[string]bool{}
	for _, s := range m.OAuthConfig.Scopes.Bot {
		granted[s] = true
	}
	if !granted["commands"] {
		t.Error("scope commands (for /pat) missing")
	}
	for method, scopes := range bot.SlackScopes {
		for _, s := range strings.Fields(scopes) {
			if !granted[s] {
				t.Errorf("%s needs scope %s, which the manifest lacks", method, s)
			}
		}
	}
}

// The Socket Mode manifest is the HTTP one without URLs: the same app.
func TestSocketModeManifest(t *testing.T) {
	m, httpMode := readManifest(t, "manifest.socket-mode.yaml"), readManifest(t, "manifest.yaml")
	checkManifestCommon(t, m)
	if !m.Settings.SocketModeEnabled {
		t.Error("socket_mode_enabled is false")
	}
	if m.Features.SlashCommands[0].URL != "" || m.Settings.Interactivity.RequestURL != "" || m.Settings.EventSubscriptions.RequestURL != "" {
		t.Error("a Socket Mode manifest names no URL")
	}
	if strings.Join(m.OAuthConfig.Scopes.Bot, " ") != strings.Join(httpMode.OAuthConfig.Scopes.Bot, " ") {
		t.Errorf("scopes differ from manifest.yaml: %v", m.OAuthConfig.Scopes.Bot)
	}
}

func TestManifestMatchesPatbot(t *testing.T) {
	m := readManifest(t, "manifest.yaml")
	checkManifestCommon(t, m)
	if m.Settings.SocketModeEnabled {
		t.Error("manifest.yaml is for HTTP mode")
	}
	cmd := m.Features.SlashCommands[0]
	// Every URL points at patbot.example.com and at a route patbot serves.
	env := testEnv(t, goodPolicy)
	app, stop := startApp(t, env, io.Discard)
	defer stop()
	for _, raw := range []string{cmd.URL, m.Settings.Interactivity.RequestURL, m.Settings.EventSubscriptions.RequestURL} {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || u.Host != "patbot.example.com" {
			t.Errorf("URL %q is not https://patbot.example.com/…", raw)
			continue
		}
		resp, err := http.Post("http://"+app.Addr()+u.Path, "application/x-www-form-urlencoded", strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// Unsigned, so refused: but by the route, not for want of one.
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s: %d, want 401 from patbot's Slack route", u.Path, resp.StatusCode)
		}
	}
}
