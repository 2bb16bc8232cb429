// Package bot is the patbot application: it turns GitHub's
// personal_access_token_request webhooks into durable work, keeps the record
// of every request, and (with Slack) lets approvers decide them.
//
// It consumes the github and store packages through the small interfaces
// declared here, so that cmd/patbot wires real implementations and tests
// wire the same ones against fakes.
package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patbot/patbot/bot/calendar"
	"github.com/patbot/patbot/bot/identity"
	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/bot/scheduler"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// Log attribute keys, shared by every log line that names these things.
const (
	LogDelivery = "delivery"
	LogEvent    = "event"
	LogAction   = "action"
	LogOrg      = "org"
	LogRequest  = "request_id"
	LogJob      = "job"
	LogActor    = "actor"
)

// Org is one organization patbot serves.
type Org struct {
	Login         string   // as configured
	Channel       string   // Slack channel ID that receives its requests
	ApproverTeams []string // team slugs whose members may decide, besides owners
	// Identity is IdentityLinked when only Slack users who signed in to
	// GitHub may decide or see others' tokens; "" lets the users map
	// serve those who have not.
	Identity string
	// DecideAs is whom GitHub sees decide and revoke: DecideAsApp (the
	// App's installation, the default) or DecideAsApprover (the
	// approver's own token: only owners then).
	DecideAs string
	// Policy is the org's rules; nil when it has none (people decide
	// everything, one approval each).
	Policy *policy.Policy
	// Location is the org's time zone, for quiet hours; default UTC.
	Location *time.Location
	// Quiet, when set, holds reminders back until quiet hours end.
	Quiet *calendar.Quiet
	// Remind, when set, reminds approvers of a request that waits.
	Remind *Remind
	// Escalate, when set, posts a request that waits long to a second
	// channel.
	Escalate *Escalate
	// Hygiene, when set, reports stale grants to the org's channel.
	Hygiene *Hygiene
	// DigestAt, when set, is the local time of the daily digest of
	// pending requests in the org's channel.
	DigestAt *calendar.TimeOfDay
}

// Hygiene is the grant hygiene report: Every so often, tokens unused for
// UnusedAfter among its sections.
type Hygiene struct {
	Every, UnusedAfter time.Duration
}

// Remind is when and how a waiting request is recalled: a thread reply on
// its card After it arrived, then Every, Times in all, mentioning Mention
// (Slack user and user group IDs).
type Remind struct {
	After, Every time.Duration
	Times        int
	Mention      []string
	// Broadcast also shows the thread reply in the channel.
	Broadcast bool
}

// Escalate posts a second card for a request still pending After it
// arrived, in Channel.
type Escalate struct {
	After   time.Duration
	Channel string
}

// location is the org's time zone.
func (o Org) location() *time.Location {
	if o.Location == nil {
		return time.UTC
	}
	return o.Location
}

// Org settings' values.
const (
	IdentityLinked   = "linked"
	DecideAsApp      = "app"
	DecideAsApprover = "approver"
)

// asApprover reports whether o's decisions are made with the approver's
// own token.
func (o Org) asApprover() bool { return o.DecideAs == DecideAsApprover }

// Config is who and what patbot serves: the orgs and the people it knows.
type Config struct {
	Orgs  map[string]Org    // lower-case org login -> org
	Users map[string]string // Slack user ID -> GitHub login
}

// loadedConfig is a Config in use, with what is derived from it.
type loadedConfig struct {
	Config
	slackByLogin map[string]string // lower-case GitHub login -> Slack user ID
}

// SetConfig puts p in force for everything patbot does from now on (a
// reload); work in progress finishes under the configuration it began
// with.
func (b *Bot) SetConfig(p Config) {
	lp := &loadedConfig{Config: p, slackByLogin: map[string]string{}}
	// Several Slack users may map to one login; the smallest ID wins, so
	// that mentions do not change from run to run.
	for _, slackID := range slices.Sorted(maps.Keys(p.Users)) {
		login := strings.ToLower(p.Users[slackID])
		if _, dup := lp.slackByLogin[login]; !dup {
			lp.slackByLogin[login] = slackID
		}
	}
	b.current.Store(lp)
	if b.running.Load() {
		// An org given a digest or a hygiene report by a reload gets its
		// schedule now.
		b.scheduleHygiene()
		b.scheduleDigests()
	}
}

// config is the configuration in force.
func (b *Bot) config() *loadedConfig { return b.current.Load() }

// Org returns the configured org whose login is login, ignoring case.
func (p Config) Org(login string) (Org, bool) {
	o, ok := p.Orgs[strings.ToLower(login)]
	return o, ok
}

// GitHub is what bot needs of GitHub; *github.Client has it.
type GitHub interface {
	RememberInstallation(org string, installationID int64)
	ListRequests(ctx context.Context, org string, f github.RequestFilter) ([]github.PendingRequest, error)
	ReviewRequest(ctx context.Context, org string, requestID int64, r github.Review, as github.UserToken) error
	OrgMembership(ctx context.Context, org, login string) (github.Membership, error)
	TeamMembership(ctx context.Context, org, team, login string) (github.Membership, error)
	ListGrants(ctx context.Context, org string, owners ...string) ([]github.Grant, error)
	QueryGrants(ctx context.Context, org string, f github.GrantFilter) ([]github.Grant, error)
	ListGrantRepositories(ctx context.Context, org string, patID int64) ([]github.Repository, error)
	ListRequestRepositories(ctx context.Context, org string, requestID int64) ([]github.Repository, error)
	RevokeGrant(ctx context.Context, org string, patID int64, as github.UserToken) error
	RevokeGrants(ctx context.Context, org string, patIDs []int64, as github.UserToken) error
	ReviewRequests(ctx context.Context, org string, requestIDs []int64, r github.Review, as github.UserToken) error
	App(ctx context.Context) (github.App, error)
	identity.GitHub
}

var _ GitHub = (*github.Client)(nil)

// Deps are what New needs. Store, GitHub, Slack, WebhookSecret and
// SlackSigningSecret are required.
type Deps struct {
	Store         store.Store
	GitHub        GitHub
	Slack         Slack
	Config        Config
	WebhookSecret []byte
	// SlackSigningSecret verifies Slack's HTTP requests; required unless
	// SocketMode is set.
	SlackSigningSecret string
	// SocketMode, when set, receives Slack's interactions and commands
	// over Socket Mode instead of HTTP.
	SocketMode *SocketModeConfig
	// ResponseURLPrefixes are where patbot posts the answers Slack asks for
	// through a response_url; any other URL is refused, so that a forged
	// payload cannot make patbot post elsewhere. Each ends in "/". Default
	// DefaultResponseURLPrefixes (GovSlack and tests name their own).
	ResponseURLPrefixes []string
	// SlackTransport carries the calls to response URLs (APIMetrics measures
	// them as Slack calls); default http.DefaultTransport.
	SlackTransport http.RoundTripper
	// GitHubWebURL is where links on cards point: https://github.com, or a
	// GitHub Enterprise Server host. Default https://github.com.
	GitHubWebURL string
	// Linking, when set, lets Slack users link their GitHub accounts
	// (/pat link) and approvers decide as themselves.
	Linking *Linking
	Logger  *slog.Logger
	Metrics prometheus.Registerer

	// SmallBodyBudget and LargeBodyBudget bound, in bytes, the webhook
	// bodies read before their signature is checked (see bodyBudget).
	// Defaults DefaultSmallBodyBudget and DefaultLargeBodyBudget.
	SmallBodyBudget int64
	LargeBodyBudget int64

	Workers   int // concurrent jobs; default 4
	QueueSize int // unfinished jobs accepted before intake answers 503; default DefaultQueueSize
	// InteractionWorkers run approvers' decisions after Slack is
	// acknowledged; default 8. At most 256 wait; beyond that clicks
	// answer 503.
	InteractionWorkers int
	// JobTimeout bounds one attempt at a job. Default 60s.
	JobTimeout time.Duration
	// JobLease is how long a job stays claimed by this patbot without
	// renewal: with several replicas, a job whose replica died is taken
	// over once it passes. Default 30s.
	JobLease time.Duration
	// MaxAttempts is how many times a failing job is tried before it is
	// parked until the next start. Default 10.
	MaxAttempts int
	// RetryBackoff is the wait after a job's first failure; it doubles
	// with each further one, up to 5 minutes. Default 1s.
	RetryBackoff time.Duration
	// DrainTimeout bounds how long Run waits for jobs in progress when it
	// is stopped. Default 10s.
	DrainTimeout time.Duration
	// MaxYieldToIntake bounds how long a job waits for webhook intake to
	// pause (see intakeGate). Default 500ms.
	MaxYieldToIntake time.Duration
	// ReconcileInterval is how often patbot compares its records with
	// GitHub's pending requests (and once at start). Default 10 minutes;
	// negative turns it off.
	ReconcileInterval time.Duration
	// DeliveryRetention is how long delivery markers are kept. It must
	// outlast GitHub's redelivery window (3 days, 7 on Enterprise Server).
	// Default 8 days.
	DeliveryRetention time.Duration
	// RequestRetention is how long a request's record is kept once it is
	// final (the audit trail keeps the decision). Default 90 days.
	RequestRetention time.Duration
	// AuditRetention is how long audit events are kept. Default 2 years.
	AuditRetention time.Duration

	// OnAudit, when set, is called after each event joins the audit trail
	// (the audit stream's cue).
	OnAudit func()
	// Clock is patbot's time, for its timers too; default the system's.
	Clock Clock
}

// Linking is what linking Slack users to GitHub accounts needs.
type Linking struct {
	// Flow is the App's web flow; its RedirectURL is patbot's callback
	// (PATBOT_PUBLIC_URL + identity.CallbackPath).
	Flow github.WebFlow
	// Keys seal user tokens at rest.
	Keys *identity.Keyring
}

// Clock tells the time and waits by it. Tests inject one they can move.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// DefaultResponseURLPrefixes is where Slack's response URLs point.
var DefaultResponseURLPrefixes = []string{"https://hooks.slack.com/"}

// maxWaitingInteractions is how many approvers' clicks wait for a worker;
// beyond it they are answered 503.
const maxWaitingInteractions = 256

// DefaultQueueSize is how many unfinished jobs intake accepts, by default,
// before it answers 503.
const DefaultQueueSize = 10_000

// Bot is the running application.
type Bot struct {
	store         store.Store
	gh            GitHub
	slack         Slack
	current       atomic.Pointer[loadedConfig] // replaced whole by SetConfig
	secret        []byte
	signingSecret string
	webURL        string
	authz         *authorizer
	teams         *teamCache        // requesters' team memberships, for rules
	identity      *identity.Service // nil when linking is off
	homes         *homes            // the Home tabs opened here
	cardLocks     cardLocks
	// responseClient posts to Slack response URLs, with a timeout and
	// without following redirects; responsePrefixes are the URLs allowed.
	responseClient   *http.Client
	responsePrefixes []string
	log              *slog.Logger
	onAudit          func()
	metrics          *metrics
	now              func() time.Time
	clock            Clock

	// interactions runs approvers' work after Slack is acknowledged; jobs
	// runs the store's unfinished work.
	interactions *scheduler.Pool
	jobs         *scheduler.Pool
	// timers runs the store's durable timers, by kind.
	timers            *scheduler.Timers
	jobTimeout        time.Duration
	jobLease          time.Duration
	holder            string // names this patbot in job claims
	inHandMu          sync.Mutex
	inHand            map[uint64]struct{} // jobs queued, running or waiting to retry here
	dbJobs            atomic.Int64        // unfinished jobs in the store, all replicas', as last counted
	maxAttempts       int
	retryBackoff      time.Duration
	drainTimeout      time.Duration
	deliveryRetention time.Duration
	requestRetention  time.Duration
	auditRetention    time.Duration

	// reserved counts unfinished jobs (queued, running, waiting to retry,
	// or parked); intake reserves a place before committing, so that the
	// jobs pool always has room for what it accepted.
	capacity    int64
	reserved    atomic.Int64
	running     atomic.Bool
	appAuth     atomic.Int32                    // appAuthUnknown, appAuthOK or appAuthRefused
	stopping    atomic.Pointer[context.Context] // Run's context, for timers started by handlers
	retryTimers sync.WaitGroup
	// wake is closed, and replaced, to send jobs waiting to retry to the
	// queue at once: when Slack answers again after failing.
	wakeMu       sync.Mutex
	wake         chan struct{}
	slackFailing atomic.Bool
	intake       *intakeGate
	bodies       *bodyBudget
	maxYield     time.Duration

	socketMode      *SocketModeConfig
	socketConnected atomic.Bool

	reconcileInterval time.Duration
	started           time.Time // when Run began: claims older than it are not in flight
}

// New builds a Bot and queues the work a previous run left unfinished.
func New(d Deps) (*Bot, error) {
	if d.Store == nil || d.GitHub == nil || d.Slack == nil {
		return nil, errors.New("bot: Store, GitHub and Slack are required")
	}
	if len(d.WebhookSecret) == 0 || d.SlackSigningSecret == "" && d.SocketMode == nil {
		return nil, errors.New("bot: WebhookSecret, and SlackSigningSecret or SocketMode, are required")
	}
	if d.GitHubWebURL == "" {
		d.GitHubWebURL = "https://github.com"
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = prometheus.NewRegistry()
	}
	if d.Clock == nil {
		d.Clock = systemClock{}
	}
	if len(d.ResponseURLPrefixes) == 0 {
		d.ResponseURLPrefixes = DefaultResponseURLPrefixes
	}
	for _, p := range d.ResponseURLPrefixes {
		if !strings.HasSuffix(p, "/") {
			return nil, fmt.Errorf("bot: response URL prefix %q must end in /", p)
		}
	}
	b := &Bot{
		store:         d.Store,
		gh:            d.GitHub,
		wake:          make(chan struct{}),
		secret:        d.WebhookSecret,
		signingSecret: d.SlackSigningSecret,
		webURL:        strings.TrimSuffix(d.GitHubWebURL, "/"),
		authz:         newAuthorizer(d.GitHub, d.Clock.Now),
		teams:         &teamCache{gh: d.GitHub, now: d.Clock.Now, entries: map[string]teamEntry{}},
		homes:         newHomes(),
		responseClient: &http.Client{Timeout: 10 * time.Second, Transport: d.SlackTransport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		responsePrefixes:  d.ResponseURLPrefixes,
		log:               d.Logger,
		onAudit:           d.OnAudit,
		now:               d.Clock.Now,
		clock:             d.Clock,
		intake:            newIntakeGate(),
		bodies:            newBodyBudget(orDefault(d.SmallBodyBudget, DefaultSmallBodyBudget), orDefault(d.LargeBodyBudget, DefaultLargeBodyBudget)),
		socketMode:        d.SocketMode,
		reconcileInterval: d.ReconcileInterval,
		jobTimeout:        orDefault(d.JobTimeout, 60*time.Second),
		jobLease:          orDefault(d.JobLease, 30*time.Second),
		holder:            holderName(),
		inHand:            map[uint64]struct{}{},
		maxAttempts:       orDefault(d.MaxAttempts, 10),
		retryBackoff:      orDefault(d.RetryBackoff, time.Second),
		drainTimeout:      orDefault(d.DrainTimeout, 10*time.Second),
		maxYield:          orDefault(d.MaxYieldToIntake, 500*time.Millisecond),
		deliveryRetention: orDefault(d.DeliveryRetention, 8*24*time.Hour),
		requestRetention:  orDefault(d.RequestRetention, 90*24*time.Hour),
		auditRetention:    orDefault(d.AuditRetention, 2*365*24*time.Hour),
	}
	b.slack = observedSlack{Slack: d.Slack, result: b.slackResult}
	b.SetConfig(d.Config)
	if d.Linking != nil {
		var err error
		b.identity, err = identity.New(identity.Config{Store: d.Store, GitHub: d.GitHub, Flow: d.Linking.Flow, Keys: d.Linking.Keys,
			Now: d.Clock.Now, Logger: d.Logger, Linked: b.linked,
			Configured: func(slackUser string) (string, bool) { login, ok := b.config().Users[slackUser]; return login, ok }})
		if err != nil {
			return nil, fmt.Errorf("bot: %w", err)
		}
		n, err := b.identity.Rekey()
		if err != nil {
			return nil, fmt.Errorf("bot: %w", err)
		}
		if n > 0 {
			b.log.Info("user tokens sealed again under the current secret key", "count", n)
		}
	}
	unfinished, err := d.Store.JobIDs()
	if err != nil {
		return nil, fmt.Errorf("bot: load unfinished jobs: %w", err)
	}
	if b.reconcileInterval == 0 {
		b.reconcileInterval = 10 * time.Minute
	}
	b.capacity = int64(max(orDefault(d.QueueSize, DefaultQueueSize), len(unfinished)))
	b.interactions = scheduler.NewPool("interactions", orDefault(d.InteractionWorkers, 8), maxWaitingInteractions, b.jobTimeout, b.log)
	b.jobs = scheduler.NewPool("jobs", orDefault(d.Workers, 4), int(b.capacity), b.jobTimeout, b.log)
	b.jobs.Before(func(stop context.Context) { b.intake.wait(stop, b.maxYield) }) // webhook intake first
	b.timers = scheduler.NewTimers(d.Store, d.Clock, b.log)
	b.timers.Handle(timerSettle, b.settleClaim)
	b.timers.Handle(timerGrantEnd, b.endGrant)
	b.timers.Handle(timerGrantReminder, b.remindGrant)
	b.timers.Handle(timerRemind, b.remind)
	b.timers.Handle(timerEscalate, b.escalate)
	b.timers.Handle(timerHygiene, b.hygieneTimer)
	b.timers.Handle(timerDigest, b.digestTimer)
	b.timers.Handle(timerBulkConfirm, b.bulkConfirm)
	b.timers.Every(timerPrune, pruneInterval, 10*time.Minute, b.pruneAll)
	if b.reconcileInterval > 0 {
		b.timers.Every(timerReconcile, b.reconcileInterval, 10*time.Minute, func(ctx context.Context) { b.Reconcile(ctx) })
	} else {
		b.timers.Handle(timerReconcile, func(context.Context, store.Timer) error { return nil }) // off: a schedule left over ends
	}
	for _, id := range unfinished {
		b.queueJob(id)
	}
	b.reserved.Store(int64(len(unfinished)))
	b.dbJobs.Store(int64(len(unfinished)))
	if len(unfinished) > 0 {
		b.log.Info("resuming unfinished work", "jobs", len(unfinished))
	}
	m, err := newMetrics(d.Metrics, b)
	if err != nil {
		return nil, fmt.Errorf("bot: metrics: %w", err)
	}
	b.metrics = m
	return b, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Run runs the workers and housekeeping until ctx is cancelled, then waits
// up to the drain timeout for jobs in progress. Unfinished jobs stay in the
// store for the next start.
func (b *Bot) Run(ctx context.Context) error {
	// Jobs run on their own context so that stopping takes no new work but
	// lets work in progress finish, until the drain deadline.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	b.stopping.Store(&ctx)
	var loops sync.WaitGroup
	loops.Go(func() { b.jobs.Run(ctx, workCtx) })
	loops.Go(func() { b.interactions.Run(ctx, workCtx) })
	loops.Go(func() { b.timers.Run(ctx) })
	b.started = b.now()
	loops.Go(func() { scheduler.Every(ctx, b.clock, b.jobLease/2, b.log, b.adoptOrphans) })
	loops.Go(func() { scheduler.Every(ctx, b.clock, homeCheckEvery, b.log, b.refreshHomes) })
	b.scheduleHygiene()
	b.scheduleDigests()
	loops.Go(func() { b.checkAppAuth(ctx) })
	if b.socketMode != nil {
		loops.Go(func() { b.runSocketMode(ctx, *b.socketMode) })
	}
	b.running.Store(true)
	<-ctx.Done()
	b.running.Store(false)

	drained := make(chan struct{})
	go func() {
		loops.Wait()
		b.retryTimers.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(b.drainTimeout):
		b.log.Warn("stopping with jobs still running; they will be retried at the next start", "drain_timeout", b.drainTimeout)
		cancelWork()
		<-drained
	}
	return nil
}

// Ready reports whether the store is usable, the workers are running,
// GitHub has not refused the App's credentials and, in Socket Mode, the
// connection to Slack is up.
func (b *Bot) Ready() error {
	if err := b.store.Ping(); err != nil {
		return err
	}
	if !b.running.Load() {
		return errors.New("workers are not running")
	}
	if b.appAuth.Load() == appAuthRefused {
		return errors.New("GitHub refuses the App's credentials (401): check GITHUB_APP_ID and the private key")
	}
	if b.socketMode != nil && !b.socketConnected.Load() {
		return errors.New("not connected to Slack (Socket Mode)")
	}
	return nil
}

// pruneInterval is how often what is past its retention is deleted.
const pruneInterval = time.Hour

// Kinds of the timers of periodic work, which runs on one replica at a
// time.
const (
	timerPrune     = "prune"
	timerReconcile = "reconcile"
)

// pruneAll deletes what is past its retention: delivery markers, final
// requests' records, audit events. This is what bounds the store's size.
func (b *Bot) pruneAll(ctx context.Context) {
	now := b.now()
	b.prune(ctx, "delivery markers", now.Add(-b.deliveryRetention), b.store.PruneDeliveries)
	b.prune(ctx, "request records", now.Add(-b.requestRetention), b.store.PruneRequests)
	b.prune(ctx, "audit events", now.Add(-b.auditRetention), b.store.PruneAudit)
	b.prune(ctx, "expired sign-ins", now, b.store.PruneSignIns)
}

// prune deletes what is older than cutoff in batches, so that no single
// transaction grows large.
func (b *Bot) prune(ctx context.Context, what string, cutoff time.Time, prune func(time.Time, int) (int, error)) {
	const batch = 1000
	total := 0
	for range 10_000 { // bound: 10 million a round
		n, err := prune(cutoff, batch)
		total += n
		if err != nil {
			b.log.Error("pruning failed", "what", what, "err", err)
			break
		}
		if n < batch || ctx.Err() != nil {
			break
		}
	}
	if total > 0 {
		b.log.Info("pruned", "what", what, "count", total, "older_than", cutoff)
	}
}
