package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/patbot/patbot/bot/view"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/github"
)

// checkTimeout bounds the whole of patbot check.
const checkTimeout = time.Minute

// check validates the configuration, then that GitHub and Slack accept
// patbot's credentials and that every org is set up, printing one line per
// check. It exits non-zero on any failure.
func check(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig("check", args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stdout, "✗ configuration: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "✓ configuration: %d %s, %d Slack %s mapped to GitHub logins\n",
		len(cfg.Bot.Orgs), view.Plural(len(cfg.Bot.Orgs), "organization", "organizations"),
		len(cfg.Bot.Users), view.Plural(len(cfg.Bot.Users), "user", "users"))

	gh, err := github.New(github.Config{AppID: cfg.AppID, PrivateKey: cfg.PrivateKey, BaseURL: cfg.GitHubAPIURL, Timeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintf(stdout, "✗ GitHub App: %v\n", err)
		return exitFailed
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	failed := 0
	results := bot.Check(ctx, gh, bot.NewSlackClient(bot.SlackConfig{BotToken: cfg.SlackBotToken, APIURL: cfg.SlackAPIURL}), cfg.Bot)
	if linking, err := linkingDeps(cfg); err != nil {
		results = append(results, bot.CheckResult{What: "GitHub sign-in", Detail: err.Error()})
	} else if linking != nil {
		results = append(results, bot.CheckLinking(ctx, gh, linking.Flow, linking.Keys.CurrentID())...)
	}
	results = append(results, bot.PolicyWarnings(cfg.Bot)...)
	if cfg.SlackAppToken != "" {
		results = append(results, bot.CheckSocketMode(ctx, bot.SocketModeConfig{AppToken: cfg.SlackAppToken, BotToken: cfg.SlackBotToken, APIURL: cfg.SlackAPIURL}))
	}
	for _, r := range results {
		mark := "✓"
		if r.Warning {
			mark = "!"
		}
		if !r.OK {
			mark = "✗"
			failed++
		}
		fmt.Fprintf(stdout, "%s %s: %s\n", mark, r.What, r.Detail)
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "\n%d %s to fix.\n", failed, view.Plural(failed, "problem", "problems"))
		return exitFailed
	}
	fmt.Fprintln(stdout, "\nAll checks passed.")
	return exitOK
}
