package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/auditstream"
	"github.com/patbot/patbot/bot/identity"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// shutdownTimeout bounds how long requests in progress may take to finish
// when patbot stops.
const shutdownTimeout = 10 * time.Second

// App is patbot serve, wired: the store, the GitHub client, the bot and the
// HTTP server. Tests drive it exactly as main does.
type App struct {
	log        *slog.Logger
	policyPath string
	linking    bool // Slack users can link GitHub accounts
	// admin serves patbot audit on a local socket.
	admin   *http.Server
	adminLn net.Listener
	// stream, when set, copies the audit trail to streamOut.
	stream    *auditstream.Stream
	streamOut *os.File
	db        store.Store
	dbName    string // for logs: a URL without its password
	bot       *bot.Bot
	server    *http.Server
	listener  net.Listener
}

// newApp opens the store, builds every part and binds the listen address.
// tune, when not nil, adjusts the bot's dependencies (tests use it to shorten
// timeouts).
func newApp(cfg *Config, log *slog.Logger, tune func(*bot.Deps)) (*App, error) {
	db, err := openStore(context.Background(), cfg.DBPath, false)
	if err != nil {
		return nil, err
	}
	app, err := wire(cfg, log, db, tune)
	if err != nil {
		db.Close()
		return nil, err
	}
	return app, nil
}

func wire(cfg *Config, log *slog.Logger, db store.Store, tune func(*bot.Deps)) (*App, error) {
	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "patbot_build_info",
		Help: "Always 1; its labels say which patbot runs, built with which Go.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(buildVersion(), runtime.Version()).Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo)
	api, err := bot.NewAPIMetrics(reg)
	if err != nil {
		return nil, err
	}
	gh, err := github.New(github.Config{
		AppID:      cfg.AppID,
		PrivateKey: cfg.PrivateKey,
		BaseURL:    cfg.GitHubAPIURL,
		UserAgent:  "patbot/" + buildVersion(),
		Transport:  api.Transport("github", nil),
	})
	if err != nil {
		return nil, err
	}
	linking, err := linkingDeps(cfg)
	if err != nil {
		return nil, err
	}
	slackTransport := api.Transport("slack", nil) // Web API calls and response URLs alike
	deps := bot.Deps{
		Store:  db,
		GitHub: gh,
		Slack: bot.NewSlackClient(bot.SlackConfig{BotToken: cfg.SlackBotToken, APIURL: cfg.SlackAPIURL,
			Transport: slackTransport}),
		SlackTransport:      slackTransport,
		ResponseURLPrefixes: cfg.SlackResponseURLPrefixes,
		Config:              cfg.Bot,
		WebhookSecret:       cfg.WebhookSecret,
		SlackSigningSecret:  cfg.SlackSigningSecret,
		GitHubWebURL:        cmp.Or(cfg.GitHubWebURL, github.WebURL(cfg.GitHubAPIURL)),
		Linking:             linking,
		Logger:              log,
		Metrics:             reg,
	}
	deps.ReconcileInterval = cfg.ReconcileInterval
	deps.JobLease = cfg.JobLease
	if cfg.ReconcileInterval == 0 {
		deps.ReconcileInterval = -1 // off
	}
	if cfg.SlackAppToken != "" {
		deps.SocketMode = &bot.SocketModeConfig{AppToken: cfg.SlackAppToken, BotToken: cfg.SlackBotToken, APIURL: cfg.SlackAPIURL}
	}
	app := &App{log: log, policyPath: cfg.ConfigPath, db: db, dbName: storeName(cfg.DBPath), linking: linking != nil}
	if cfg.AuditStream != "" {
		out, floor, err := openAuditStream(cfg.AuditStream)
		if err != nil {
			return nil, err
		}
		app.stream, app.streamOut = auditstream.New(db, out, floor, log, time.After), out
		deps.OnAudit = app.stream.Notify
	}
	if tune != nil {
		tune(&deps)
	}
	b, err := bot.New(deps)
	if err != nil {
		app.closeStream()
		return nil, err
	}
	app.bot = b

	if app.listener, err = net.Listen("tcp", cfg.Addr); err != nil {
		app.closeStream()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if app.adminLn, err = listenAdmin(cfg.AdminSocket); err != nil {
		app.listener.Close()
		app.closeStream()
		return nil, err
	}
	app.admin = &http.Server{Handler: adminHandler(db, gh, log), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	app.server = &http.Server{
		Handler:           app.routes(reg, deps.SocketMode == nil),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second, // a 25 MiB webhook on a slow link
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return app, nil
}

// routes serves patbot's HTTP API; Slack's routes only in HTTP mode (in
// Socket Mode Slack sends nothing over HTTP, and there is no signing secret
// to check requests with).
func (a *App) routes(reg *prometheus.Registry, slackHTTP bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /github/webhook", a.bot.WebhookHandler())
	if slackHTTP {
		mux.Handle("POST /slack/interactions", a.bot.InteractionsHandler())
		mux.Handle("POST /slack/commands", a.bot.CommandsHandler())
		mux.Handle("POST /slack/events", a.bot.EventsHandler())
	}
	if signIn := a.bot.SignInHandler(); signIn != nil {
		mux.Handle("GET /"+identity.CallbackPath, signIn)
		mux.Handle("POST /"+identity.ConfirmPath, signIn)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := a.bot.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelError)}))
	return mux
}

// ReloadPolicy reads the policy file again and puts it in force, once it
// is checked: a file with problems changes nothing, and the log says why.
func (a *App) ReloadPolicy() {
	p, problems := loadPolicy(a.policyPath)
	problems = append(problems, linkingProblems(p, a.linking)...)
	if len(problems) > 0 {
		a.log.Error("policy file not reloaded; the policy in force stays", "path", a.policyPath, "problems", strings.Join(problems, "; "))
		return
	}
	a.bot.SetConfig(p)
	a.log.Info("policy file reloaded", "path", a.policyPath, "orgs", len(p.Orgs), "users", len(p.Users))
}

// linkingDeps is what the bot needs to link GitHub accounts, or nil when
// linking is off.
func linkingDeps(cfg *Config) (*bot.Linking, error) {
	if cfg.GitHubClientID == "" {
		return nil, nil
	}
	keys, err := identity.NewKeyring(cfg.SecretKey, cfg.SecretKeyPrevious)
	if err != nil {
		return nil, err
	}
	return &bot.Linking{Keys: keys, Flow: github.WebFlow{ClientID: cfg.GitHubClientID, ClientSecret: cfg.GitHubClientSecret,
		WebURL: cfg.GitHubWebURL, RedirectURL: cfg.PublicURL + identity.CallbackPath}}, nil
}

// openAuditStream opens where the audit stream goes: "-" for standard
// output, else a file, appended to and made whole after a stop.
func openAuditStream(path string) (*os.File, uint64, error) {
	if path == "-" {
		return os.Stdout, 0, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("audit stream: %w", err)
	}
	floor, err := auditstream.Recover(f)
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("audit stream %s: %w", path, err)
	}
	return f, floor, nil
}

func (a *App) closeStream() {
	if a.streamOut != nil && a.streamOut != os.Stdout {
		a.streamOut.Close()
	}
}

// Close releases an App that was never run: its listeners, audit stream
// and store.
func (a *App) Close() {
	a.listener.Close()
	a.adminLn.Close()
	a.closeStream()
	a.db.Close()
}

// Addr is the address the server listens on.
func (a *App) Addr() string { return a.listener.Addr().String() }

// Run serves until ctx is cancelled, then stops in order: no new requests,
// requests in progress finished, jobs in progress drained, store closed.
func (a *App) Run(ctx context.Context) error {
	botCtx, stopBot := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBot()
	botDone := make(chan error, 1)
	go func() { botDone <- a.bot.Run(botCtx) }()

	// SIGHUP reloads the policy file.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloaderDone := make(chan struct{})
	go func() {
		defer close(reloaderDone)
		for {
			select {
			case <-botCtx.Done():
				return
			case <-hup:
				a.ReloadPolicy()
			}
		}
	}()

	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		if a.stream != nil {
			a.stream.Run(botCtx)
		}
	}()
	adminDone := make(chan struct{})
	go func() {
		defer close(adminDone)
		if err := a.admin.Serve(a.adminLn); !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin socket stopped", "err", err)
		}
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- a.server.Serve(a.listener) }()
	a.log.Info("patbot listening", "addr", a.Addr(), "admin_socket", a.adminLn.Addr().String(), "version", buildVersion(), "db", a.dbName)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	}
	a.log.Info("patbot stopping")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := a.server.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		a.log.Warn("requests still in progress at shutdown", "err", serr)
	}
	if serr := a.admin.Shutdown(sctx); serr != nil {
		a.log.Warn("admin requests still in progress at shutdown", "err", serr)
	}
	<-adminDone
	stopBot()
	<-reloaderDone
	<-streamDone
	a.closeStream()
	if berr := <-botDone; berr != nil {
		err = errors.Join(err, berr)
	}
	if cerr := a.db.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	a.log.Info("patbot stopped")
	return err
}
