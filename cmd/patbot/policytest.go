package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// policyCommand runs patbot policy's subcommands.
func policyCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "test" {
		fmt.Fprintln(stderr, "usage: patbot policy test [-config FILE] [-since 30d]")
		return exitUsage
	}
	return policyTest(ctx, args[1:], getenv, stdout, stderr)
}

// policyTest replays the rules of a policy file against the requests
// patbot recorded (from the running patbot, through its admin socket, or
// else from the store) and, with GitHub credentials in the environment,
// GitHub's pending requests; it prints what the rules would do beside
// what happened, and a summary.
func policyTest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := commandFlags("policy test", stderr)
	configPath := fs.String("config", cmp.Or(getenv("PATBOT_CONFIG"), defaultConfigPath), "the policy file to try (default: the one in use); env PATBOT_CONFIG")
	dbPath := fs.String("db", cmp.Or(getenv("PATBOT_DB"), defaultDBPath), "the store: a bbolt file or a postgres:// URL; env PATBOT_DB")
	sinceText := fs.String("since", "30d", "replay the requests created this long ago and since (like 30d, 12h)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	cfg, problems := loadPolicy(*configPath)
	window, err := policy.ParseDuration(*sinceText)
	if err != nil {
		problems = append(problems, "-since: "+err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "patbot policy test: %s\n", strings.Join(problems, "; "))
		return exitUsage
	}
	since := time.Now().Add(-window)

	records, source, err := recordedRequests(ctx, getenv, *dbPath, since)
	if err != nil {
		fmt.Fprintf(stderr, "patbot policy test: %v\n", err)
		return exitFailed
	}
	gh, ghNote := replayClient(getenv)
	var client bot.ReplayGitHub // nil, not a nil *github.Client
	if gh != nil {
		client = gh
	}
	rows, sum, notes := bot.Replay(ctx, cfg, client, records, since, nil)

	fmt.Fprintf(stdout, "Rules of %s against the requests created since %s (%s)%s.\n\n", *configPath,
		since.UTC().Format("2006-01-02 15:04 UTC"), source, map[bool]string{true: " and GitHub's pending list", false: ""}[gh != nil])
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ORG\tREQUEST\tREQUESTER\tTOKEN\tRULES WOULD\tHAPPENED\t")
	for _, row := range rows {
		would := row.Verdict.Describe()
		if row.Verdict.Rule != "" {
			would += " (" + row.Verdict.Rule + ")"
		}
		happened := row.Happened
		if row.Live {
			happened = "pending in GitHub"
		}
		mark := ""
		switch {
		case row.Disagrees:
			mark = "✗ disagrees"
		case len(row.Verdict.Unchecked) > 0:
			mark = "? " + strings.Join(row.Verdict.Unchecked, "; ")
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", row.Org, row.ID, row.Requester, view.Truncate(row.Token, 30), would, happened, mark)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d %s: would auto-approve %d, auto-deny %d, need two or more approvals %d, leave to an approver %d; disagree with a past human decision %d.\n",
		sum.Requests, view.Plural(sum.Requests, "request", "requests"), sum.Approve, sum.Deny, sum.TwoOrMore, sum.People, sum.Disagree)
	if sum.Unchecked > 0 {
		fmt.Fprintf(stdout, "%d %s had rules that could not be checked (marked ?): they did not match.\n", sum.Unchecked, view.Plural(sum.Unchecked, "request", "requests"))
	}
	for _, n := range append(notes, ghNote) {
		if n != "" {
			fmt.Fprintln(stdout, "Note: "+n)
		}
	}
	return exitOK
}

// recordedRequests reads the request records created since a time, from
// the running patbot through its admin socket, or else from the store.
func recordedRequests(ctx context.Context, getenv func(string) string, dbPath string, since time.Time) ([]store.Request, string, error) {
	socket := adminSocketPath(getenv, dbPath)
	var buf bytes.Buffer
	err := askAdmin(ctx, socket, "/requests", url.Values{"since": {since.UTC().Format(time.RFC3339)}}, &buf)
	if err == nil {
		var records []store.Request
		if err := json.Unmarshal(buf.Bytes(), &records); err != nil {
			return nil, "", fmt.Errorf("the running patbot's answer: %w", err)
		}
		return records, "from the running patbot", nil
	}
	if !errors.Is(err, errNoAdmin) {
		return nil, "", err
	}
	db, err := openStoreUnserved(ctx, dbPath, socket)
	if err != nil {
		return nil, "", err
	}
	defer db.Close()
	records, err := requestsSince(db, since)
	return records, "from " + storeName(dbPath), err
}

// requestsSince lists the records of requests created at or after since.
func requestsSince(db store.Requests, since time.Time) ([]store.Request, error) {
	all, err := db.Requests("")
	if err != nil {
		return nil, err
	}
	var out []store.Request
	for _, r := range all {
		if !r.CreatedAt.Before(since) {
			out = append(out, r)
		}
	}
	return out, nil
}

// replayClient is a GitHub client when the environment holds the App's
// credentials, else nil and a note saying what that leaves out.
func replayClient(getenv func(string) string) (*github.Client, string) {
	const without = "without GitHub credentials (GITHUB_APP_ID and the private key), GitHub's pending list is not read and rules that name requester_teams do not match"
	id, err := strconv.ParseInt(strings.TrimSpace(getenv("GITHUB_APP_ID")), 10, 64)
	if err != nil || id <= 0 {
		return nil, without
	}
	key, problems := loadAppKey(getenv)
	if len(problems) > 0 {
		return nil, without + " (" + strings.Join(problems, "; ") + ")"
	}
	gh, err := github.New(github.Config{AppID: id, PrivateKey: key, BaseURL: cmp.Or(strings.TrimSpace(getenv("GITHUB_API_URL")), github.DefaultBaseURL)})
	if err != nil {
		return nil, without + " (" + err.Error() + ")"
	}
	return gh, ""
}
