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
	"net/url"
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
	showJSON := fs.Bool("json", false, "also print the cards' Block Kit JSON")
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
	const org, channel = "acme", "C0DEMO"
	gh.AddOrg(org, 1)
	gh.SetMembership(org, "alice", "admin", "active")
	gh.SetMembership(org, "carol", "member", "active")
	now := time.Now().UTC().Truncate(time.Second)
	expires := now.Add(30 * 24 * time.Hour)
	release := github.PendingRequest{
		ID: 4242, Owner: github.User{Login: "octocat", ID: 583231}, TokenID: 98716, TokenName: "release-automation",
		Reason: "Publish releases from the CI pipeline.", RepositorySelection: github.SelectionSubset,
		Permissions: github.Permissions{
			Organization: map[string]string{"members": "read"},
			Repository:   map[string]string{"contents": "write", "metadata": "read"},
		},
		CreatedAt: now, TokenExpiresAt: &expires,
	}
	admin := github.PendingRequest{
		ID: 4243, Owner: github.User{Login: "octocat", ID: 583231}, TokenID: 98717, TokenName: "cleanup-script",
		Reason: "Tidy up old repositories.", RepositorySelection: github.SelectionAll,
		Permissions: github.Permissions{Repository: map[string]string{"administration": "write", "metadata": "read"}},
		CreatedAt:   now,
	}
	gh.AddRequest(org, release)
	gh.AddRequest(org, admin)
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
		SlackResponseURLPrefixes: []string{sl.ResponseURL("")},
		DBPath:                   filepath.Join(dir, "patbot.db"), AdminSocket: filepath.Join(dir, "patbot.sock"),
		Addr: "127.0.0.1:0", GitHubWebURL: "https://github.com",
		Bot: bot.Config{
			Orgs:  map[string]bot.Org{org: {Login: org, Channel: channel}},
			Users: map[string]string{"U0ALICE": "alice", "U0CAROL": "carol", "U0OCTOCAT": "octocat"},
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
	slackPost := func(path string, form url.Values) (int, error) {
		req := slacktest.SignedRequest(signingSecret, base+path, time.Now(), form)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	cardOf := func(id int64) (slacktest.Message, bool) {
		return sl.FindMetadata(channel, fmt.Sprintf(`"request":"%s/%d"`, org, id))
	}
	waitFor := func(what string, cond func() bool) error {
		if err := waitUntil(ctx, cond); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}

	fmt.Fprintf(out, "patbot demo: everything below runs on this machine, against a fake GitHub and a fake Slack.\n"+
		"In it, octocat asks for two tokens; alice, an owner of %s, approves one and denies the other;\n"+
		"carol, a member who is not an owner, tries to approve and cannot.\n\n", org)

	fmt.Fprintf(out, "1. octocat asks for a fine-grained token with access to %s. GitHub sends patbot a signed webhook:\n", org)
	code, err := postWebhook(ctx, base, webhookSecret, demoWebhook(org, release))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   POST /github/webhook (personal_access_token_request, created) → %d %s\n\n", code, http.StatusText(code))
	var card slacktest.Message
	if err := waitFor("no card was posted", func() bool { var ok bool; card, ok = cardOf(release.ID); return ok }); err != nil {
		return err
	}
	fmt.Fprintf(out, "2. patbot looked up the requester's reason in GitHub and posted this card to the org's channel:\n\n")
	printCard(out, card, showJSON)

	fmt.Fprintf(out, "3. carol clicks Approve. patbot asks GitHub whether she may decide; GitHub says she is a member,\n"+
		"   not an owner, so nothing is decided and only she sees why:\n")
	if _, err := slackPost("/slack/interactions", slacktest.BlockActionPayload("U0CAROL", channel, card.TS, bot.ActionApprove, fmt.Sprintf("%s/%d", org, release.ID))); err != nil {
		return err
	}
	if err := waitFor("carol was not answered", func() bool { return len(sl.Ephemerals("U0CAROL")) > 0 }); err != nil {
		return err
	}
	fmt.Fprintf(out, "   %s\n\n", indent(terminalText(sl.Ephemerals("U0CAROL")[0].Text)))

	fmt.Fprintf(out, "4. alice clicks Approve and confirms. patbot checks her with GitHub, then sends the review:\n")
	if _, err := slackPost("/slack/interactions", slacktest.BlockActionPayload("U0ALICE", channel, card.TS, bot.ActionApprove, fmt.Sprintf("%s/%d", org, release.ID))); err != nil {
		return err
	}
	if err := waitFor("the card was not updated", func() bool {
		c, _ := cardOf(release.ID)
		return strings.Contains(c.BlockText(), "*Approved*") && len(sl.Messages("D0OCTOCAT")) > 0
	}); err != nil {
		return err
	}
	for _, c := range gh.Calls() {
		if c.Auth == "installation" && (c.Method == http.MethodPost || strings.Contains(c.Path, "/memberships/alice")) {
			fmt.Fprintf(out, "   %s %s %s→ %d %s\n", c.Method, c.Path, strings.TrimSpace(string(c.Body))+" ", c.Status, http.StatusText(c.Status))
		}
	}
	card, _ = cardOf(release.ID)
	fmt.Fprintf(out, "\n   After GitHub's 204 the card changed in place, without buttons:\n\n")
	printCard(out, card, false)
	fmt.Fprintf(out, "   and octocat got a direct message:\n     %s\n\n", indent(terminalText(sl.Messages("D0OCTOCAT")[0].Text)))

	fmt.Fprintf(out, "5. octocat asks for a second token, with write access to the administration of every repository.\n")
	if _, err := postWebhook(ctx, base, webhookSecret, demoWebhook(org, admin)); err != nil {
		return err
	}
	if err := waitFor("no second card was posted", func() bool { var ok bool; card, ok = cardOf(admin.ID); return ok }); err != nil {
		return err
	}
	fmt.Fprintf(out, "   alice clicks Deny…, and writes why in the dialog that opens:\n")
	if _, err := slackPost("/slack/interactions", slacktest.BlockActionPayload("U0ALICE", channel, card.TS, bot.ActionDeny, fmt.Sprintf("%s/%d", org, admin.ID))); err != nil {
		return err
	}
	reason := "Administration of every repository is too broad: ask for the repositories you clean up."
	meta := fmt.Sprintf(`{"org":%q,"id":%d,"channel":%q}`, org, admin.ID, channel)
	if _, err := slackPost("/slack/interactions", slacktest.ViewSubmissionPayload("U0ALICE", bot.CallbackDeny, meta,
		map[string]map[string]string{"reason": {"reason_input": reason}})); err != nil {
		return err
	}
	if err := waitFor("the second card was not updated", func() bool { c, _ := cardOf(admin.ID); return strings.Contains(c.BlockText(), "*Denied*") }); err != nil {
		return err
	}
	card, _ = cardOf(admin.ID)
	fmt.Fprintf(out, "   GitHub emails octocat the reason; the card says who denied it and why:\n\n")
	printCard(out, card, false)

	fmt.Fprintf(out, "6. Later, alice lists octocat's tokens with /pat grants octocat (only she sees the answer):\n\n")
	if _, err := slackPost("/slack/commands", slacktest.SlashCommandForm("U0ALICE", bot.Command, "grants octocat", channel, sl.ResponseURL("grants"))); err != nil {
		return err
	}
	var listing slacktest.Response
	if err := waitFor("no listing", func() bool {
		r := sl.Responses()
		if len(r) == 0 {
			return false
		}
		listing = r[len(r)-1]
		return true
	}); err != nil {
		return err
	}
	printCard(out, listing.Message(), showJSON)

	fmt.Fprintf(out, "That is the whole flow. Add -json to see the Block Kit JSON, -v for patbot's log. To run patbot for\n"+
		"real, follow the README: create the GitHub App (patbot setup github), the Slack app (manifest.yaml),\n"+
		"write patbot.yaml, then run patbot check and patbot serve.\n")
	return nil
}

// indent keeps a multi-line text inside the story's margin.
func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n     ") }

func randomSecret() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// demoWebhook is a created delivery shaped like GitHub's (the webhook has
// no reason; patbot looks it up).
func demoWebhook(org string, r github.PendingRequest) []byte {
	user := map[string]any{"login": r.Owner.Login, "id": r.Owner.ID, "type": "User", "html_url": "https://github.com/" + r.Owner.Login}
	var expires any // null: the token never expires
	if r.TokenExpiresAt != nil {
		expires = r.TokenExpiresAt.Format(time.RFC3339)
	}
	var repos []map[string]any
	if r.RepositorySelection == github.SelectionSubset {
		repos = []map[string]any{
			{"id": 1, "node_id": "R_1", "name": "api", "full_name": org + "/api", "private": true},
			{"id": 2, "node_id": "R_2", "name": "releases", "full_name": org + "/releases", "private": false},
		}
	}
	p := map[string]any{
		"action": "created",
		"personal_access_token_request": map[string]any{
			"id": r.ID, "owner": user, "repository_selection": r.RepositorySelection, "repository_count": len(repos),
			"repositories": repos, "permissions_added": r.Permissions, "permissions_upgraded": map[string]any{},
			"permissions_result": r.Permissions, "created_at": r.CreatedAt.Format(time.RFC3339), "token_expired": false,
			"token_expires_at": expires, "token_last_used_at": nil,
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
