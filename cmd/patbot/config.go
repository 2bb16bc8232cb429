package main

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/calendar"
	"github.com/patbot/patbot/bot/identity"
	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/github"
)

// Config is everything patbot serve needs. Fields holding secrets are never
// printed or logged.
type Config struct {
	AppID         int64
	PrivateKey    []byte // secret
	WebhookSecret []byte // secret
	GitHubAPIURL  string
	// GitHubWebURL is where users sign in and where cards link to, ending
	// in /; derived from GitHubAPIURL unless GITHUB_WEB_URL sets it.
	GitHubWebURL string

	// Linking Slack users to GitHub accounts: on when GitHubClientID is
	// set; then the rest are required too.
	GitHubClientID     string
	GitHubClientSecret string // secret
	// PublicURL is where browsers reach patbot, ending in /.
	PublicURL         string
	SecretKey         []byte // secret
	SecretKeyPrevious []byte // secret; nil unless rotating

	SlackBotToken      string // secret
	SlackSigningSecret string // secret
	SlackAppToken      string // secret
	SlackAPIURL        string
	// SlackResponseURLPrefixes are the response URLs patbot answers through.
	SlackResponseURLPrefixes []string

	ConfigPath string
	DBPath     string
	// AdminSocket is where patbot serves admin commands (patbot audit).
	AdminSocket string
	// AuditStream is where the audit trail is streamed as JSON lines: a
	// file, "-" for standard output, or "" for nowhere.
	AuditStream string
	Addr        string
	LogFormat   string // json or text
	LogLevel    string // debug, info, warn or error
	// ReconcileInterval is how often patbot compares its records with
	// GitHub; 0 turns it off.
	ReconcileInterval time.Duration
	// JobLease is how long a job stays claimed without renewal: a job
	// whose replica died is taken over after it.
	JobLease time.Duration

	// Bot is what the policy file says: the orgs patbot serves and the people it knows.
	Bot bot.Config
}

// configError lists every configuration problem at once.
type configError struct{ problems []string }

func (e *configError) Error() string { return strings.Join(e.problems, "; ") }

// Defaults.
const (
	defaultSlackAPIURL = "https://slack.com/api/"
	defaultConfigPath  = "./patbot.yaml"
	defaultDBPath      = "./patbot.db"
	defaultAddr        = ":8080"
)

var (
	orgLoginRE   = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	userLoginRE  = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	teamSlugRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	channelIDRE  = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
	slackUserRE  = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	mentionIDRE  = regexp.MustCompile(`^[UWS][A-Z0-9]{2,}$`)
	yamlFieldsRE = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

// loadConfig reads flags, then the environment, then the policy file, and
// reports every problem it finds in one error.
// name is the subcommand whose flags these are (serve, check).
func loadConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	env := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	cfg := &Config{}
	fs := commandFlags(name, stderr)
	fs.StringVar(&cfg.ConfigPath, "config", env("PATBOT_CONFIG", defaultConfigPath), "policy file (YAML); env PATBOT_CONFIG")
	fs.StringVar(&cfg.DBPath, "db", env("PATBOT_DB", defaultDBPath), "the store: a bbolt file, or a postgres:// URL for PostgreSQL; env PATBOT_DB")
	fs.StringVar(&cfg.Addr, "addr", env("PATBOT_ADDR", defaultAddr), "listen address; env PATBOT_ADDR")
	reconcile := fs.String("reconcile-interval", env("PATBOT_RECONCILE_INTERVAL", "10m"), "how often to compare with GitHub's pending requests (0 turns it off); env PATBOT_RECONCILE_INTERVAL")
	fs.StringVar(&cfg.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &configError{[]string{err.Error()}}
	}
	if fs.NArg() > 0 {
		return nil, &configError{[]string{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}}
	}

	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	if raw := env("GITHUB_APP_ID", ""); raw == "" {
		add("GITHUB_APP_ID is required")
	} else if id, err := strconv.ParseInt(raw, 10, 64); err != nil || id <= 0 {
		add("GITHUB_APP_ID must be a positive integer")
	} else {
		cfg.AppID = id
	}

	key, keyProblems := loadAppKey(getenv)
	cfg.PrivateKey = key
	problems = append(problems, keyProblems...)

	if s := getenv("GITHUB_WEBHOOK_SECRET"); s == "" {
		add("GITHUB_WEBHOOK_SECRET is required")
	} else {
		cfg.WebhookSecret = []byte(s)
	}
	cfg.GitHubAPIURL = env("GITHUB_API_URL", github.DefaultBaseURL)
	if u, err := github.NormalizeBaseURL(cfg.GitHubAPIURL); err != nil {
		add("GITHUB_API_URL: %v", err)
	} else {
		cfg.GitHubAPIURL = u.String()
	}

	cfg.GitHubWebURL = env("GITHUB_WEB_URL", github.WebURL(cfg.GitHubAPIURL)+"/")
	if u, err := github.NormalizeBaseURL(cfg.GitHubWebURL); err != nil {
		add("GITHUB_WEB_URL: %v", err)
	} else {
		cfg.GitHubWebURL = u.String()
	}
	problems = append(problems, loadLinking(cfg, getenv)...)

	cfg.SlackBotToken = env("SLACK_BOT_TOKEN", "")
	cfg.SlackSigningSecret = env("SLACK_SIGNING_SECRET", "")
	cfg.SlackAppToken = env("SLACK_APP_TOKEN", "")
	switch {
	case cfg.SlackBotToken == "":
		add("SLACK_BOT_TOKEN is required")
	case !strings.HasPrefix(cfg.SlackBotToken, "xoxb-"):
		add("SLACK_BOT_TOKEN must be a bot token (it starts with xoxb-)")
	}
	if cfg.SlackAppToken != "" && !strings.HasPrefix(cfg.SlackAppToken, "xapp-") {
		add("SLACK_APP_TOKEN must be an app-level token (it starts with xapp-)")
	}
	if cfg.SlackSigningSecret == "" && cfg.SlackAppToken == "" {
		add("SLACK_SIGNING_SECRET is required unless SLACK_APP_TOKEN is set (Socket Mode)")
	}
	cfg.SlackAPIURL = env("SLACK_API_URL", defaultSlackAPIURL)
	if u, err := github.NormalizeBaseURL(cfg.SlackAPIURL); err != nil {
		add("SLACK_API_URL: %v", err)
	} else {
		cfg.SlackAPIURL = u.String()
	}

	cfg.SlackResponseURLPrefixes = bot.DefaultResponseURLPrefixes
	if raw := env("SLACK_RESPONSE_URL_PREFIXES", ""); raw != "" {
		cfg.SlackResponseURLPrefixes = nil
		for _, p := range strings.Split(raw, ",") {
			p = strings.TrimSpace(p)
			if err := checkResponseURLPrefix(p); err != nil {
				add("SLACK_RESPONSE_URL_PREFIXES: %q %v", p, err)
			}
			cfg.SlackResponseURLPrefixes = append(cfg.SlackResponseURLPrefixes, p)
		}
	}

	cfg.AdminSocket = adminSocketPath(getenv, cfg.DBPath)
	if len(cfg.AdminSocket) > maxSocketPath {
		add("PATBOT_ADMIN_SOCKET %s is longer than a Unix socket path may be (%d bytes): name a shorter path", cfg.AdminSocket, maxSocketPath)
	}
	cfg.AuditStream = env("PATBOT_AUDIT_STREAM", "")

	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		add("listen address %q: %v", cfg.Addr, err)
	}
	if d, err := time.ParseDuration(*reconcile); err != nil || d < 0 || d > 0 && d < time.Minute {
		add("PATBOT_RECONCILE_INTERVAL must be a duration of at least 1m (like 10m), or 0 to turn reconciliation off")
	} else {
		cfg.ReconcileInterval = d
	}
	if raw := env("PATBOT_JOB_LEASE", "30s"); raw != "" {
		if d, err := time.ParseDuration(raw); err != nil || d < time.Second {
			add("PATBOT_JOB_LEASE must be a duration of at least 1s (like 30s)")
		} else {
			cfg.JobLease = d
		}
	}
	if cfg.LogFormat != "json" && cfg.LogFormat != "text" {
		add("-log-format must be json or text")
	}
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		add("-log-level: %v", err)
	}

	policy, policyProblems := loadPolicy(cfg.ConfigPath)
	cfg.Bot = policy
	problems = append(problems, policyProblems...)
	problems = append(problems, linkingProblems(policy, cfg.GitHubClientID != "")...)

	if len(problems) > 0 {
		return nil, &configError{problems}
	}
	return cfg, nil
}

// maxSocketPath is the longest path a Unix socket may have on Linux.
const maxSocketPath = 107

// checkResponseURLPrefix accepts an https URL with a host, ending in "/"
// (so that the host cannot be extended); http only on a loopback address.
func checkResponseURLPrefix(p string) error {
	u, err := url.Parse(p)
	switch {
	case err != nil || u.Host == "":
		return errors.New("is not a URL")
	case !strings.HasSuffix(p, "/"):
		return errors.New("must end in /")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return errors.New("must be https (http only on a loopback address)")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func describeFileError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Sprintf("%s: %v", pe.Path, pe.Err)
	}
	return err.Error()
}

// policyFile is the YAML policy file.
type policyFile struct {
	Orgs  map[string]policyOrg `yaml:"orgs"`
	Users map[string]string    `yaml:"users"`
}

type policyOrg struct {
	Channel       string       `yaml:"channel"`
	ApproverTeams []string     `yaml:"approver_teams"`
	Identity      string       `yaml:"identity"`
	DecideAs      string       `yaml:"decide_as"`
	Policy        *policy.Spec `yaml:"policy"`
	Timezone      string       `yaml:"timezone"`
	QuietHours    *struct {
		From     string `yaml:"from"`
		To       string `yaml:"to"`
		Weekends bool   `yaml:"weekends"`
	} `yaml:"quiet_hours"`
	Remind *struct {
		After     string   `yaml:"after"`
		Every     string   `yaml:"every"`
		Times     int      `yaml:"times"`
		Mention   []string `yaml:"mention"`
		Broadcast bool     `yaml:"broadcast"`
	} `yaml:"remind"`
	Escalate *struct {
		After   string `yaml:"after"`
		Channel string `yaml:"channel"`
	} `yaml:"escalate"`
	Hygiene *struct {
		Every       string `yaml:"every"`
		UnusedAfter string `yaml:"unused_after"`
	} `yaml:"hygiene"`
	Digest *struct {
		At string `yaml:"at"`
	} `yaml:"digest"`
}

// loadPolicy reads and checks the policy file. Unknown keys are errors: a
// typo must not silently switch policy off.
func loadPolicy(path string) (bot.Config, []string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return bot.Config{}, []string{"policy file: " + describeFileError(err)}
	}
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	var f policyFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		var typeErr *yaml.TypeError
		if !errors.As(err, &typeErr) {
			return bot.Config{}, []string{fmt.Sprintf("policy file %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))}
		}
		// The rest of the file was decoded: report its problems too.
		for _, e := range typeErr.Errors {
			add("policy file %s: %s", path, yamlFieldsRE.ReplaceAllString(e, `unknown key "$1"`))
		}
	}

	p := bot.Config{Orgs: map[string]bot.Org{}, Users: map[string]string{}}
	if len(f.Orgs) == 0 {
		add("orgs is empty: name at least one organization")
	}
	for _, login := range slices.Sorted(maps.Keys(f.Orgs)) {
		o := f.Orgs[login]
		if !orgLoginRE.MatchString(login) {
			add("orgs.%s: not a GitHub organization login", login)
			continue
		}
		switch {
		case o.Channel == "":
			add("orgs.%s.channel is empty", login)
		case !channelIDRE.MatchString(o.Channel):
			add("orgs.%s.channel %q is not a Slack channel ID (like C0123456789)", login, o.Channel)
		}
		for _, team := range o.ApproverTeams {
			if !teamSlugRE.MatchString(team) {
				add("orgs.%s.approver_teams: %q is not a team slug", login, team)
			}
		}
		if o.Identity != "" && o.Identity != bot.IdentityLinked {
			add("orgs.%s.identity %q: the only value is %q (or leave it out)", login, o.Identity, bot.IdentityLinked)
		}
		if o.DecideAs != "" && o.DecideAs != bot.DecideAsApp && o.DecideAs != bot.DecideAsApprover {
			add("orgs.%s.decide_as %q: must be %q or %q", login, o.DecideAs, bot.DecideAsApp, bot.DecideAsApprover)
		}
		key := strings.ToLower(login)
		if _, dup := p.Orgs[key]; dup {
			add("orgs.%s: listed twice (org logins ignore case)", login)
		}
		org := bot.Org{Login: login, Channel: o.Channel, ApproverTeams: o.ApproverTeams, Identity: o.Identity,
			DecideAs: cmp.Or(o.DecideAs, bot.DecideAsApp)}
		if o.Policy != nil {
			compiled, policyProblems := o.Policy.Compile("orgs." + login + ".policy")
			problems = append(problems, policyProblems...)
			org.Policy = &compiled
		}
		problems = append(problems, followThrough(login, o, &org)...)
		p.Orgs[key] = org
	}
	for _, slackID := range slices.Sorted(maps.Keys(f.Users)) {
		login := f.Users[slackID]
		if !slackUserRE.MatchString(slackID) {
			add("users.%s: not a Slack user ID (like U0123456789)", slackID)
		}
		if !userLoginRE.MatchString(login) {
			add("users.%s: %q is not a GitHub login", slackID, login)
		}
		p.Users[slackID] = login
	}
	return p, problems
}

// loadLinking reads the settings of linking Slack users to GitHub
// accounts. Linking is on when GITHUB_APP_CLIENT_ID is set; then the
// client secret, the public URL and the secret key are required.
func loadLinking(cfg *Config, getenv func(string) string) []string {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	get := func(name string) string {
		v, err := secretSetting(getenv, name)
		if err != nil {
			add("%v", err)
		}
		return v
	}
	cfg.GitHubClientID = get("GITHUB_APP_CLIENT_ID")
	cfg.GitHubClientSecret = get("GITHUB_APP_CLIENT_SECRET")
	public := get("PATBOT_PUBLIC_URL")
	key := get("PATBOT_SECRET_KEY")
	previous := get("PATBOT_SECRET_KEY_PREVIOUS")
	if cfg.GitHubClientID == "" {
		if cfg.GitHubClientSecret != "" || public != "" || key != "" {
			add("GITHUB_APP_CLIENT_ID is required to link GitHub accounts (GITHUB_APP_CLIENT_SECRET, PATBOT_PUBLIC_URL or PATBOT_SECRET_KEY is set)")
		}
		return problems
	}
	if cfg.GitHubClientSecret == "" {
		add("GITHUB_APP_CLIENT_SECRET is required with GITHUB_APP_CLIENT_ID (the App's settings: Client secrets)")
	}
	switch u, err := url.Parse(public); {
	case public == "":
		add("PATBOT_PUBLIC_URL is required with GITHUB_APP_CLIENT_ID: the base URL browsers reach patbot at, like https://patbot.example.com/")
	case err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "":
		add("PATBOT_PUBLIC_URL %q is not a base URL (like https://patbot.example.com/)", public)
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())):
		add("PATBOT_PUBLIC_URL %q must be https (http only on a loopback address)", public)
	default:
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		cfg.PublicURL = u.String()
	}
	if key == "" {
		add("PATBOT_SECRET_KEY is required with GITHUB_APP_CLIENT_ID: 32 random bytes, hex or base64 (openssl rand -hex 32)")
	} else if k, err := identity.ParseKey(key); err != nil {
		add("PATBOT_SECRET_KEY: %v", err)
	} else {
		cfg.SecretKey = k
	}
	if previous != "" {
		k, err := identity.ParseKey(previous)
		switch {
		case err != nil:
			add("PATBOT_SECRET_KEY_PREVIOUS: %v", err)
		case bytes.Equal(k, cfg.SecretKey):
			add("PATBOT_SECRET_KEY_PREVIOUS is the same key as PATBOT_SECRET_KEY")
		default:
			cfg.SecretKeyPrevious = k
		}
	}
	return problems
}

// secretSetting reads the setting name from the environment, or from the
// file that name_FILE names (one of the two); a file's trailing newline
// is not part of the value. Errors never quote the value.
func secretSetting(getenv func(string) string, name string) (string, error) {
	value, file := strings.TrimSpace(getenv(name)), strings.TrimSpace(getenv(name+"_FILE"))
	switch {
	case file == "":
		return value, nil
	case value != "":
		return "", fmt.Errorf("set only one of %s and %s_FILE", name, name)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %s", name, describeFileError(err))
	}
	return strings.TrimSpace(string(raw)), nil
}

// linkingProblems are the org settings that need linking when it is off.
func linkingProblems(p bot.Config, linking bool) []string {
	if linking {
		return nil
	}
	var problems []string
	for _, o := range p.Orgs {
		if o.Identity == bot.IdentityLinked {
			problems = append(problems, fmt.Sprintf("orgs.%s.identity: linked needs linking GitHub accounts: set GITHUB_APP_CLIENT_ID (and its companions)", o.Login))
		}
		if o.DecideAs == bot.DecideAsApprover {
			problems = append(problems, fmt.Sprintf("orgs.%s.decide_as: approver needs linking GitHub accounts: set GITHUB_APP_CLIENT_ID (and its companions)", o.Login))
		}
	}
	slices.Sort(problems)
	return problems
}

// loadAppKey reads the App's private key from GITHUB_APP_PRIVATE_KEY_FILE
// or GITHUB_APP_PRIVATE_KEY (one of them), checking that it is an RSA key
// in PEM form. Its problems never quote the key.
func loadAppKey(getenv func(string) string) ([]byte, []string) {
	keyFile, keyText := strings.TrimSpace(getenv("GITHUB_APP_PRIVATE_KEY_FILE")), getenv("GITHUB_APP_PRIVATE_KEY")
	switch {
	case keyFile == "" && strings.TrimSpace(keyText) == "":
		return nil, []string{"GITHUB_APP_PRIVATE_KEY_FILE or GITHUB_APP_PRIVATE_KEY is required"}
	case keyFile != "" && strings.TrimSpace(keyText) != "":
		return nil, []string{"set only one of GITHUB_APP_PRIVATE_KEY_FILE and GITHUB_APP_PRIVATE_KEY"}
	case keyFile != "":
		pem, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, []string{"GITHUB_APP_PRIVATE_KEY_FILE: " + describeFileError(err)}
		}
		if _, err := github.ParsePrivateKey(pem); err != nil {
			return nil, []string{fmt.Sprintf("GITHUB_APP_PRIVATE_KEY_FILE %s is not an RSA private key in PEM form (%v)", keyFile, err)}
		}
		return pem, nil
	}
	// Env files often hold the PEM on one line with \n escapes.
	if !strings.Contains(keyText, "\n") {
		keyText = strings.ReplaceAll(keyText, `\n`, "\n")
	}
	if _, err := github.ParsePrivateKey([]byte(keyText)); err != nil {
		return nil, []string{fmt.Sprintf("GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM form (%v)", err)}
	}
	return []byte(keyText), nil
}

// followThrough reads an org's time zone, quiet hours, reminders and
// escalation into org, and says what is wrong with them.
func followThrough(login string, o policyOrg, org *bot.Org) []string {
	var problems []string
	add := func(format string, a ...any) {
		problems = append(problems, fmt.Sprintf("orgs.%s.", login)+fmt.Sprintf(format, a...))
	}
	duration := func(key, raw string) time.Duration {
		if raw == "" {
			add("%s is required", key)
			return 0
		}
		d, err := policy.ParseDuration(raw)
		if err != nil {
			add("%s: %v", key, err)
		}
		return d
	}
	if o.Timezone != "" {
		loc, err := time.LoadLocation(o.Timezone)
		if err != nil {
			add("timezone %q is not a time zone (like Europe/Berlin or America/New_York)", o.Timezone)
		}
		org.Location = loc
	}
	if q := o.QuietHours; q != nil {
		from, err1 := calendar.ParseTimeOfDay(q.From)
		to, err2 := calendar.ParseTimeOfDay(q.To)
		if err1 != nil {
			add("quiet_hours.from: %v", err1)
		}
		if err2 != nil {
			add("quiet_hours.to: %v", err2)
		}
		org.Quiet = &calendar.Quiet{From: from, To: to, Weekends: q.Weekends}
	}
	if r := o.Remind; r != nil {
		org.Remind = &bot.Remind{After: duration("remind.after", r.After), Times: max(r.Times, 1), Mention: r.Mention, Broadcast: r.Broadcast}
		if r.Times < 0 || r.Times > 100 {
			add("remind.times %d: must be 1 to 100", r.Times)
		}
		if r.Times > 1 || r.Every != "" {
			org.Remind.Every = duration("remind.every", r.Every)
		}
		for _, m := range r.Mention {
			if !mentionIDRE.MatchString(m) {
				add("remind.mention: %q is not a Slack user (U…) or user group (S…) ID", m)
			}
		}
	}
	if e := o.Escalate; e != nil {
		org.Escalate = &bot.Escalate{After: duration("escalate.after", e.After), Channel: e.Channel}
		switch {
		case !channelIDRE.MatchString(e.Channel):
			add("escalate.channel %q is not a Slack channel ID (like C0123456789)", e.Channel)
		case e.Channel == o.Channel:
			add("escalate.channel is the org's own channel: name another")
		}
	}
	if d := o.Digest; d != nil {
		at, err := calendar.ParseTimeOfDay(d.At)
		if err != nil {
			add("digest.at: %v", err)
		}
		org.DigestAt = &at
	}
	if h := o.Hygiene; h != nil {
		org.Hygiene = &bot.Hygiene{Every: duration("hygiene.every", h.Every), UnusedAfter: duration("hygiene.unused_after", h.UnusedAfter)}
	}
	return problems
}
