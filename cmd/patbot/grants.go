package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
)

// grants prints the grants of an org that a query selects, as /pat grants
// asks them: from the running patbot through its admin socket, or else
// with the App's credentials from the environment.
func grants(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := commandFlags("grants", stderr)
	dbPath := fs.String("db", cmp.Or(getenv("PATBOT_DB"), defaultDBPath), "the store of the running patbot (its admin socket is beside it); env PATBOT_DB")
	org := fs.String("org", "", "the organization (required)")
	var q view.GrantsQuery
	fs.StringVar(&q.Login, "owner", "", "only this member's tokens (a GitHub login)")
	fs.StringVar(&q.Repo, "repo", "", "only tokens that may reach this repository (its name)")
	fs.StringVar(&q.Permission, "permission", "", "only tokens holding this permission, at or above the level: NAME[:LEVEL]")
	fs.StringVar(&q.Unused, "unused", "", "only tokens unused this long (like 90d); never-used ones count once granted that long ago")
	fs.StringVar(&q.UsedSince, "used-since", "", "only tokens used within this long (like 7d)")
	fs.Int64Var(&q.Token, "token", 0, "only this token (its ID)")
	format := fs.String("format", "table", "table, csv or jsonl")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	var problems []string
	if *org == "" {
		problems = append(problems, "-org is required")
	}
	if q.Permission != "" {
		if _, err := policy.ParsePermission(q.Permission); err != nil {
			problems = append(problems, "-permission: "+err.Error())
		}
	}
	for name, v := range map[string]string{"-unused": q.Unused, "-used-since": q.UsedSince} {
		if _, err := policy.ParseDuration(v); v != "" && err != nil {
			problems = append(problems, name+": "+err.Error())
		}
	}
	if *format != "table" && *format != "csv" && *format != "jsonl" {
		problems = append(problems, "-format must be table, csv or jsonl")
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		fmt.Fprintf(stderr, "patbot grants: %s\n", strings.Join(problems, "; "))
		return exitUsage
	}

	found, err := askGrants(ctx, getenv, *dbPath, *org, q)
	if err != nil {
		fmt.Fprintf(stderr, "patbot grants: %v\n", err)
		return exitFailed
	}
	if err := writeGrants(stdout, *format, *org, found); err != nil {
		fmt.Fprintf(stderr, "patbot grants: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// grantsQueryValues is a query as the admin socket takes it.
func grantsQueryValues(org string, q view.GrantsQuery) url.Values {
	v := url.Values{"org": {org}}
	for name, value := range map[string]string{"owner": q.Login, "repo": q.Repo, "permission": q.Permission, "unused": q.Unused, "used_since": q.UsedSince} {
		if value != "" {
			v.Set(name, value)
		}
	}
	if q.Token != 0 {
		v.Set("token", strconv.FormatInt(q.Token, 10))
	}
	return v
}

func grantsQueryOf(v url.Values) (string, view.GrantsQuery) {
	token, _ := strconv.ParseInt(v.Get("token"), 10, 64)
	return v.Get("org"), view.GrantsQuery{Login: v.Get("owner"), Repo: v.Get("repo"), Permission: v.Get("permission"),
		Unused: v.Get("unused"), UsedSince: v.Get("used_since"), Token: token}
}

// askGrants asks the running patbot, or GitHub with the App's credentials.
func askGrants(ctx context.Context, getenv func(string) string, dbPath, org string, q view.GrantsQuery) ([]github.Grant, error) {
	var buf bytes.Buffer
	err := askAdmin(ctx, adminSocketPath(getenv, dbPath), "/grants", grantsQueryValues(org, q), &buf)
	if err == nil {
		var found []github.Grant
		sc := bufio.NewScanner(&buf)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var g github.Grant
			if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
				return nil, fmt.Errorf("the running patbot's answer: %w", err)
			}
			found = append(found, g)
		}
		return found, sc.Err()
	}
	if !errors.Is(err, errNoAdmin) {
		return nil, err
	}
	gh, note := replayClient(getenv)
	if gh == nil {
		return nil, errors.New("no patbot answers on its admin socket, and " + note)
	}
	return bot.FindGrants(ctx, gh, org, q, time.Now())
}

func writeGrants(w io.Writer, format, org string, found []github.Grant) error {
	when := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	access := func(g github.Grant) string {
		if g.RepositorySelection == "" {
			return "none"
		}
		return g.RepositorySelection
	}
	perms := func(g github.Grant) string {
		var parts []string
		for group, m := range map[string]map[string]string{"organization": g.Permissions.Organization, "repository": g.Permissions.Repository, "other": g.Permissions.Other} {
			for name, level := range m {
				parts = append(parts, group+"."+name+":"+level)
			}
		}
		sort.Strings(parts)
		return strings.Join(parts, " ")
	}
	switch format {
	case "jsonl":
		enc := json.NewEncoder(w)
		for _, g := range found {
			if err := enc.Encode(g); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write([]string{"org", "grant_id", "token_id", "token_name", "owner", "access", "permissions", "granted", "expires", "last_used"})
		for _, g := range found {
			granted := g.AccessGrantedAt
			cw.Write([]string{org, strconv.FormatInt(g.ID, 10), strconv.FormatInt(g.TokenID, 10), csvSafe(g.TokenName), g.Owner.Login, access(g),
				perms(g), when(&granted), when(g.TokenExpiresAt), when(g.TokenLastUsedAt)})
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN\tNAME\tOWNER\tACCESS\tPERMISSIONS\tGRANTED\tEXPIRES\tLAST USED\t")
	for _, g := range found {
		granted := g.AccessGrantedAt
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", g.TokenID, view.Truncate(g.TokenName, 40), g.Owner.Login, access(g), view.Truncate(perms(g), 60),
			when(&granted), cmp.Or(when(g.TokenExpiresAt), "never"), cmp.Or(when(g.TokenLastUsedAt), "never"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d %s in %s.\n", len(found), view.Plural(len(found), "token", "tokens"), org)
	return err
}
