// Command patbot approves GitHub fine-grained personal access token requests
// from Slack.
//
//	patbot demo                                              the whole flow, offline
//	patbot [serve] [-config FILE] [-db FILE] [-addr ADDR]   run the service
//	patbot check [-config FILE]                              check configuration, GitHub and Slack
//	patbot version                                           print the version
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

const usage = `patbot approves GitHub fine-grained personal access token requests from Slack.

Usage:
  patbot demo              the whole flow, offline, with built-in fakes: start here
  patbot [serve] [flags]   run the service (the default)
  patbot check [flags]     check the configuration, GitHub and Slack
  patbot setup github -webhook-url URL [-org ORG]
                           create patbot's GitHub App from a manifest
  patbot audit [flags]     export decisions and revocations (JSON lines or CSV)
  patbot bench [flags]     measure intake, latency, memory and store size against fakes
  patbot version           print the version
  patbot help              show this help

Run "patbot serve -h" for the flags; the README lists the environment variables.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
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
		return audit(args, getenv, stdout, stderr)
	case "bench":
		return bench(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "patbot", buildVersion())
		return exitOK
	case "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "patbot: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := loadConfig(args, getenv, stderr)
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
