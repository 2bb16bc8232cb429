// Command patbot approves GitHub fine-grained personal access token requests
// from Slack.
//
// Run "patbot help" for its commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2 // bad arguments or configuration
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one of patbot's subcommands, as its help and patbot's usage
// describe it.
type command struct {
	name, synopsis, about string
}

var commands = []command{
	{"demo", "[-json] [-v]", "Run the whole flow offline, with built-in fakes of GitHub and Slack: start here."},
	{"serve", "[flags]", "Run the service (the default command). The README lists the environment variables."},
	{"check", "[flags]", "Check the configuration, and that GitHub and Slack accept patbot's credentials, one line per check."},
	{"setup", "github -webhook-url URL [-org ORG]", "Create patbot's GitHub App from a manifest, and write patbot.env and patbot.pem."},
	{"audit", "[flags]", "Export the audit trail (decisions, revocations, refused and failed attempts) as JSON lines or CSV."},
	{"grants", "-org ORG [-owner LOGIN] [-repo NAME] [-permission NAME[:LEVEL]] [-unused 90d] [-used-since 7d] [-token ID] [-format table|csv|jsonl]", "List an organization's approved fine-grained tokens that match, as /pat grants asks."},
	{"policy", "test [-config FILE] [-since 30d]", "Replay a policy file's rules against recorded (and pending) requests: what they would do beside what happened."},
	{"bench", "[flags]", "Measure intake, latency, memory and store size against built-in fakes."},
	{"migrate-store", "-from FILE -to postgres://…", "Copy a bbolt file's state into an empty PostgreSQL database, and check the copy."},
	{"healthcheck", "[-addr ADDR]", "Probe a running patbot's /healthz (for container health checks); exit 0 when it answers."},
	{"version", "", "Print the version."},
	{"help", "", "Show this help."},
}

func usage() string {
	var b strings.Builder
	b.WriteString("patbot approves GitHub fine-grained personal access token requests from Slack.\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  patbot %-13s %s\n", c.name, c.about)
	}
	b.WriteString("\nRun \"patbot COMMAND -h\" for a command's flags; the README lists the environment variables.\n")
	return b.String()
}

// commandFlags is the flag set of a subcommand, whose -h says what it does
// and how to call it.
func commandFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("patbot "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == strings.Fields(name)[0] })
	fs.Usage = func() {
		c := commands[i]
		fmt.Fprintf(fs.Output(), "Usage: patbot %s %s\n\n%s\n", c.name, c.synopsis, c.about)
		if hasFlags(fs) {
			fmt.Fprintf(fs.Output(), "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	switch {
	case len(args) > 0 && slices.Contains([]string{"-h", "-help", "--help"}, args[0]):
		cmd = "help"
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr)
	case "check":
		return check(ctx, args, getenv, stdout, stderr)
	case "demo":
		return demo(ctx, args, stdout, stderr)
	case "setup":
		return setup(ctx, args, getenv, stdout, stderr)
	case "audit":
		return audit(ctx, args, getenv, stdout, stderr)
	case "grants":
		return grants(ctx, args, getenv, stdout, stderr)
	case "policy":
		return policyCommand(ctx, args, getenv, stdout, stderr)
	case "bench":
		return bench(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "patbot", buildVersion())
		return exitOK
	case "migrate-store":
		return migrateStore(ctx, args, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage())
		return exitOK
	default:
		fmt.Fprintf(stderr, "patbot: unknown command %q\n\n%s", cmd, usage())
		return exitUsage
	}
}

// buildVersion is the version set at build time, else the module version
// Go recorded, else the VCS revision it recorded ("devel+0123abcd", with
// "-dirty" for uncommitted changes), else "devel".
func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	return versionFrom(bi)
}

func versionFrom(bi *debug.BuildInfo) string {
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	var revision, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return "devel"
	}
	v := "devel+" + revision[:min(12, len(revision))]
	if modified == "true" {
		v += "-dirty"
	}
	return v
}

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := loadConfig("serve", args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "patbot: invalid configuration: %v\n", err)
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	if percent, ok := defaultGCPercent(getenv); ok {
		debug.SetGCPercent(percent)
	}
	app, err := newApp(cfg, log, nil)
	if err != nil {
		fmt.Fprintf(stderr, "patbot: %v\n", err)
		return exitFailed
	}
	if err := app.Run(ctx); err != nil {
		log.Error("patbot stopped", "err", err)
		return exitFailed
	}
	return exitOK
}

// defaultGCPercent is the collector setting patbot serve runs with unless
// GOGC is set. Its live heap is a few MB, so Go's default (a cycle each time
// the heap doubles, from a 4 MB floor) would collect dozens of times a
// second through a burst of webhooks; 200 halves that for a few MB.
func defaultGCPercent(getenv func(string) string) (int, bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	return 200, true
}

func newLogger(cfg *Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}
