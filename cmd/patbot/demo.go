package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
)

// demoTimeout bounds the whole demo.
const demoTimeout = 30 * time.Second

// demo runs the whole flow offline: patbot's real wiring between a fake
// GitHub and a fake Slack, both in this process. Nothing leaves the machine
// and no credentials are needed.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := commandFlags("demo", stderr)
	showJSON := fs.Bool("json", true, "also print the cards' Block Kit JSON")
	verbose := fs.Bool("v", false, "print patbot's log")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if err := runDemo(ctx, stdout, stderr, *showJSON, *verbose); err != nil {
		fmt.Fprintf(stderr, "patbot demo: %v\n", err)
		return exitFailed
	}
	return exitOK
}

func runDemo(ctx context.Context, out, logOut io.Writer, showJSON, verbose bool) error {
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()

	gh, err := githubtest.New(githubtest.Options{})
	if err != nil {
		return err
	}
	defer gh.Close()
	const org, requestID = "acme", 4242
	gh.AddOrg(org, 1)
	gh.SetMembership(org, "alice", "admin", "active")
	now := time.Now().UTC().Truncate(time.Second)
	expires := now.Add(30 * 24 * time.Hour)
	request := github.PendingRequest{
		ID: requestID, Owner: github.User{Login: "octocat", ID: 583231}, TokenID: 98716, TokenName: "release-automation",
		Reason: "Publish releases from the CI pipeline.", RepositorySelection: github.SelectionSubset,
		Permissions: github.Permissions{
			Organization: map[string]string{"members": "read"},
			Repository:   map[string]string{"contents": "write", "metadata": "read"},
		},
		CreatedAt: now, TokenExpiresAt: &expires,
	}
	gh.AddRequest(org, request)
	sl := slacktest.New("xoxb-demo")
	defer sl.Close()

	dir, err := os.MkdirTemp("", "patbot-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	webhookSecret, signingSecret := randomSecret(), randomSecret()
	cfg := &Config{
		AppID: gh.AppID, PrivateKey: gh.PrivateKeyPEM, WebhookSecret: []byte(webhookSecret), GitHubAPIURL: gh.URL,
		SlackBotToken: "xoxb-demo", SlackSigningSecret: signingSecret, SlackAPIURL: sl.URL,
		DBPath: filepath.Join(dir, "patbot.db"), Addr: "127.0.0.1:0", GitHubWebURL: "https://github.com",
		Policy: bot.Policy{
			Orgs:  map[string]bot.Org{org: {Login: org, Channel: "C0DEMO"}},
			Users: map[string]string{"U0ALICE": "alice", "U0OCTOCAT": "octocat"},
		},
	}
	logTo := io.Discard
	if verbose {
		logTo = logOut
	}
	app, err := newApp(cfg, slog.New(slog.NewTextHandler(logTo, nil)), nil)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	defer func() { stop(); <-done }()
	base := "http://" + app.Addr()

	fmt.Fprintf(out, "patbot demo: everything below runs on this machine, against a fake GitHub and a fake Slack.\n\n")
	fmt.Fprintf(out, "1. octocat asks for a fine-grained token with access to %s. GitHub sends patbot a signed webhook:\n", org)
	payload := demoWebhook(org, request)
	code, err := postWebhook(ctx, base, webhookSecret, payload)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   POST /github/webhook (personal_access_token_request, created) → %d %s\n\n", code, http.StatusText(code))

	if err := waitUntil(ctx, func() bool { return metricAtLeast(base, `patbot_jobs_total{result="done"}`, 1) }); err != nil {
		return fmt.Errorf("no card was posted: %w", err)
	}
	card := sl.Messages("C0DEMO")[0]
	fmt.Fprintf(out, "2. patbot looked up the requester's reason in GitHub and posted this card to #pat-requests:\n\n")
	printCard(out, card, showJSON)

	fmt.Fprintf(out, "3. alice, an owner of %s, clicks Approve and confirms. Slack sends patbot a signed request.\n", org)
	click := slacktest.BlockActionPayload("U0ALICE", "C0DEMO", card.TS, bot.ActionApprove, fmt.Sprintf("%s/%d", org, requestID))
	req := slacktest.SignedRequest(signingSecret, base+"/slack/interactions", time.Now(), click)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	resp.Body.Close()
	fmt.Fprintf(out, "   POST /slack/interactions → %d (acknowledged at once; the work follows)\n\n", resp.StatusCode)

	if err := waitUntil(ctx, func() bool {
		m := sl.Messages("C0DEMO")
		return len(m) > 0 && strings.Contains(m[0].BlockText(), "*Approved*") && len(sl.Messages("D0OCTOCAT")) > 0
	}); err != nil {
		return fmt.Errorf("the card was not updated: %w", err)
	}
	fmt.Fprintf(out, "4. patbot checked with GitHub that alice is an owner, then sent the review:\n")
	for _, c := range gh.Calls() {
		if c.Auth == "installation" && (c.Method == http.MethodPost || strings.Contains(c.Path, "/memberships/")) {
			fmt.Fprintf(out, "   %s %s %s→ %d %s\n", c.Method, c.Path, strings.TrimSpace(string(c.Body))+" ", c.Status, http.StatusText(c.Status))
		}
	}
	fmt.Fprintf(out, "\n5. After GitHub's 204 the card was updated in place:\n\n")
	printCard(out, sl.Messages("C0DEMO")[0], false)
	if dms := sl.Messages("D0OCTOCAT"); len(dms) > 0 {
		fmt.Fprintf(out, "   and octocat got a direct message:\n     %s\n\n", strings.ReplaceAll(terminalText(dms[0].Text), "\n", "\n     "))
	}
	fmt.Fprintf(out, "That is the whole flow. To run patbot for real, follow the README's setup: create the GitHub App\n"+
		"(patbot setup github), the Slack app (manifest.yaml), write patbot.yaml, then run patbot check and patbot serve.\n")
	return nil
}

func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// demoWebhook is a created delivery shaped like GitHub's (the webhook has
// no reason; patbot looks it up).
func demoWebhook(org string, r github.PendingRequest) []byte {
	user := map[string]any{"login": r.Owner.Login, "id": r.Owner.ID, "type": "User", "html_url": "https://github.com/" + r.Owner.Login}
	p := map[string]any{
		"action": "created",
		"personal_access_token_request": map[string]any{
			"id": r.ID, "owner": user, "repository_selection": r.RepositorySelection, "repository_count": 2,
			"repositories": []map[string]any{
				{"id": 1, "node_id": "R_1", "name": "api", "full_name": org + "/api", "private": true},
				{"id": 2, "node_id": "R_2", "name": "releases", "full_name": org + "/releases", "private": false},
			},
			"permissions_added":    map[string]any{"repository": map[string]string{"contents": "write", "metadata": "read"}},
			"permissions_upgraded": map[string]any{"organization": map[string]string{"members": "read"}},
			"permissions_result":   r.Permissions,
			"created_at":           r.CreatedAt.Format(time.RFC3339), "token_expired": false,
			"token_expires_at": r.TokenExpiresAt.Format(time.RFC3339), "token_last_used_at": nil,
		},
		"organization": map[string]any{"login": org, "id": 1},
		"sender":       user,
		"installation": map[string]any{"id": 1},
	}
	b, _ := json.Marshal(p)
	return b
}

func postWebhook(ctx context.Context, base, secret string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/github/webhook", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(github.HeaderEvent, github.EventPATRequest)
	req.Header.Set(github.HeaderDelivery, "demo-"+randomSecret())
	req.Header.Set(github.HeaderSignature, github.Sign([]byte(secret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func waitUntil(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// metricAtLeast reports whether a metric on /metrics has reached min.
func metricAtLeast(base, series string, min float64) bool {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f >= min
		}
	}
	return false
}

// printCard shows a card as a reader would see it, and optionally its
// Block Kit JSON.
func printCard(out io.Writer, m slacktest.Message, showJSON bool) {
	var blocks []map[string]any
	json.Unmarshal(m.Blocks, &blocks)
	fmt.Fprintln(out, "   ┌──────────────────────────────────────────────────────────────")
	line := func(s string) {
		for _, l := range strings.Split(terminalText(s), "\n") {
			fmt.Fprintf(out, "   │ %s\n", l)
		}
	}
	for _, b := range blocks {
		switch b["type"] {
		case "header":
			line(strings.ToUpper(text(b["text"])))
		case "section":
			if t := text(b["text"]); t != "" {
				line(t)
			}
			for _, f := range list(b["fields"]) {
				line(text(f))
			}
			if acc, ok := b["accessory"].(map[string]any); ok {
				line("[ " + text(acc["text"]) + " ]")
			}
		case "context":
			for _, e := range list(b["elements"]) {
				line(text(e))
			}
		case "actions":
			var buttons []string
			for _, e := range list(b["elements"]) {
				buttons = append(buttons, "[ "+text(e.(map[string]any)["text"])+" ]")
			}
			line(strings.Join(buttons, "  "))
		}
		fmt.Fprintln(out, "   │")
	}
	fmt.Fprintln(out, "   └──────────────────────────────────────────────────────────────")
	fmt.Fprintf(out, "   Notification text: %s\n\n", terminalText(m.Text))
	if showJSON {
		var pretty bytes.Buffer
		enc := json.NewEncoder(&pretty)
		enc.SetEscapeHTML(false) // show <@U…> and links as Slack receives them
		enc.SetIndent("   ", "  ")
		enc.Encode(blocks)
		fmt.Fprintf(out, "   Block Kit JSON:\n   %s\n", pretty.String())
	}
}

func text(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["text"].(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// demoNames are the Slack display names of the demo's users.
var demoNames = map[string]string{"U0ALICE": "alice", "U0OCTOCAT": "octocat"}

var (
	slackLink    = regexp.MustCompile(`<(https?://[^|>]+)\|([^>]+)>`)
	slackDateTag = regexp.MustCompile(`<!date\^\d+\^[^|]*\|([^>]+)>`)
	slackMention = regexp.MustCompile(`<@([UW][A-Z0-9]+)>`)
)

// terminalText turns Slack mrkdwn into what a terminal can show.
func terminalText(s string) string {
	s = slackDateTag.ReplaceAllString(s, "$1")
	s = slackLink.ReplaceAllString(s, "$2 ($1)")
	s = slackMention.ReplaceAllStringFunc(s, func(m string) string {
		id := slackMention.FindStringSubmatch(m)[1]
		if name, ok := demoNames[id]; ok {
			return "@" + name
		}
		return "@" + id
	})
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
}
