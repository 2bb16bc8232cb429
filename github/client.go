// Package github is patbot's GitHub App adapter: webhook verification and
// parsing, App and installation authentication, and the REST calls patbot
// makes. It is the only package that knows go-github and ghinstallation; its
// own small types are what the rest of patbot sees.
package github

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v60/github"
)

// DefaultBaseURL is the REST base URL of github.com.
const DefaultBaseURL = "https://api.github.com/"

// DefaultTimeout bounds one API call, including any installation token
// refresh it needs.
const DefaultTimeout = 10 * time.Second

// Config configures a Client.
type Config struct {
	AppID      int64
	PrivateKey []byte // the App's private key, PEM
	// BaseURL is the REST base URL; for GitHub Enterprise Server
	// https://HOST/api/v3/. Default DefaultBaseURL.
	BaseURL string
	// Timeout bounds each call. Default DefaultTimeout.
	Timeout time.Duration
	// Transport is the underlying HTTP transport. Default a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	UserAgent string
}

// Client calls GitHub's REST API as a GitHub App. It is safe for concurrent
// use.
type Client struct {
	baseURL    *url.URL
	timeout    time.Duration
	userAgent  string
	transport  http.RoundTripper
	appsTr     *ghinstallation.AppsTransport
	app        *gh.Client // authenticated with the App's JWT
	installsMu sync.Mutex
	installs   map[string]int64     // lower-case org login -> installation ID
	clients    map[int64]*gh.Client // installation ID -> client with its token
}

// ParsePrivateKey checks that pemBytes is an RSA private key in PEM form
// (PKCS #1 or PKCS #8). Its errors never quote the key.
func ParsePrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("not a PEM-encoded key")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PEM block %q is not an RSA private key", block.Type)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("PEM block %q is a %T, not an RSA private key", block.Type, k)
	}
	return rk, nil
}

// NormalizeBaseURL parses a REST base URL and gives it the trailing slash
// go-github needs.
func NormalizeBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, nil
}

// New returns a Client for the App.
func New(cfg Config) (*Client, error) {
	if cfg.AppID <= 0 {
		return nil, errors.New("github: app id must be positive")
	}
	key, err := ParsePrivateKey(cfg.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("github: private key: %w", err)
	}
	base, err := NormalizeBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("github: base URL: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "patbot"
	}
	c := &Client{
		baseURL:   base,
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		transport: cfg.Transport,
		installs:  map[string]int64{},
		clients:   map[int64]*gh.Client{},
	}
	c.appsTr = ghinstallation.NewAppsTransportFromPrivateKey(cfg.Transport, cfg.AppID, key)
	c.appsTr.BaseURL = strings.TrimSuffix(base.String(), "/")
	c.app = c.newGitHubClient(c.appsTr)
	return c, nil
}

func (c *Client) newGitHubClient(rt http.RoundTripper) *gh.Client {
	g := gh.NewClient(&http.Client{Transport: rt, Timeout: c.timeout})
	u := *c.baseURL
	g.BaseURL = &u
	g.UserAgent = c.userAgent
	return g
}

// RememberInstallation records the installation ID of an org, as a webhook
// tells it, so that no lookup is needed.
func (c *Client) RememberInstallation(org string, installationID int64) {
	if installationID <= 0 {
		return
	}
	c.installsMu.Lock()
	c.installs[strings.ToLower(org)] = installationID
	c.installsMu.Unlock()
}

// forOrg returns a client authenticated as the App's installation on org,
// looking the installation up (with the App's JWT) the first time.
func (c *Client) forOrg(ctx context.Context, org string) (*gh.Client, error) {
	key := strings.ToLower(org)
	c.installsMu.Lock()
	id, ok := c.installs[key]
	c.installsMu.Unlock()
	if !ok {
		inst, err := c.OrgInstallation(ctx, org)
		if err != nil {
			return nil, err
		}
		id = inst.ID
		c.RememberInstallation(org, id)
	}
	c.installsMu.Lock()
	defer c.installsMu.Unlock()
	if g, ok := c.clients[id]; ok {
		return g, nil
	}
	// The transport caches the installation token and refreshes it a
	// minute before it expires.
	g := c.newGitHubClient(ghinstallation.NewFromAppsTransport(c.appsTr, id))
	c.clients[id] = g
	return g, nil
}

// OrgInstallation returns the App's installation on org (GET
// /orgs/{org}/installation, authenticated as the App).
func (c *Client) OrgInstallation(ctx context.Context, org string) (Installation, error) {
	var inst Installation
	err := c.do(ctx, c.app, "find installation of "+org, http.MethodGet, "orgs/"+url.PathEscape(org)+"/installation", nil, &inst)
	return inst, err
}

// call runs one API call against org's installation.
func (c *Client) call(ctx context.Context, org, op, method, path string, body, out any) error {
	g, err := c.forOrg(ctx, org)
	if err != nil {
		return err
	}
	return c.do(ctx, g, op, method, path, body, out)
}

// do runs one API call, retried as retry allows; each attempt's timeout
// covers any token refresh it needs.
func (c *Client) do(ctx context.Context, g *gh.Client, op, method, path string, body, out any) error {
	_, err := c.retry(ctx, method == http.MethodGet, func(ctx context.Context) (*gh.Response, error) {
		req, err := g.NewRequest(method, path, body)
		if err != nil {
			return nil, err
		}
		return g.Do(ctx, req, out)
	}, op)
	return err
}

// Retry policy. GitHub asks clients to back off on errors and to honour
// rate limits: a call refused for a rate limit was not processed, so any
// call may be repeated after the wait GitHub names, if it is short; a
// read is also repeated after a 5xx, a timeout or a refused connection. A
// write that failed otherwise may have taken effect and is never repeated.
const (
	maxAttempts      = 3
	firstBackoff     = 250 * time.Millisecond
	maxRateLimitWait = 20 * time.Second
)

// retry runs call (each attempt with the call timeout) until it succeeds,
// fails for good, or the attempts run out.
func (c *Client) retry(ctx context.Context, idempotent bool, call func(context.Context) (*gh.Response, error), op string) (*gh.Response, error) {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, c.timeout)
		resp, err := call(actx)
		cancel()
		err = wrapError(op, resp, err)
		if err == nil || attempt == maxAttempts {
			return resp, err
		}
		var apiErr *APIError
		var wait time.Duration
		switch {
		case errors.As(err, &apiErr) && apiErr.RateLimited:
			if apiErr.RetryAfter <= 0 || apiErr.RetryAfter > maxRateLimitWait {
				return resp, err
			}
			wait = apiErr.RetryAfter
		case !idempotent || ctx.Err() != nil:
			return resp, err
		case errors.As(err, &apiErr) && apiErr.StatusCode < 500:
			return resp, err
		default:
			wait = backoff
			backoff *= 2
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return resp, err
		case <-t.C:
		}
	}
}

// ErrNotFound matches an APIError with status 404 (errors.Is).
var ErrNotFound = errors.New("not found")

// ErrRateLimited matches an APIError caused by a primary or secondary rate
// limit (errors.Is).
var ErrRateLimited = errors.New("rate limited")

// APIError is an error answer from GitHub.
type APIError struct {
	Op         string
	StatusCode int
	Message    string
	// RateLimited is true when GitHub refused the call for a rate limit;
	// RetryAfter then says how long to wait (0 when GitHub did not say).
	RateLimited bool
	RetryAfter  time.Duration
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("github: %s: %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RateLimited {
		msg += fmt.Sprintf(" (rate limited, retry after %s)", e.RetryAfter)
	}
	return msg
}

// Is makes errors.Is(err, ErrNotFound) and errors.Is(err, ErrRateLimited)
// work.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrRateLimited:
		return e.RateLimited
	}
	return false
}

// StatusCode is the HTTP status of a GitHub error answer, or 0 when err is
// not one (a timeout, a refused connection).
func StatusCode(err error) int {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

func wrapError(op string, resp *gh.Response, err error) error {
	if err == nil {
		return nil
	}
	var accepted *gh.AcceptedError
	if errors.As(err, &accepted) {
		return nil // 202: GitHub took the job
	}
	var rl *gh.RateLimitError
	if errors.As(err, &rl) {
		return &APIError{Op: op, StatusCode: statusOf(rl.Response, http.StatusForbidden), Message: rl.Message,
			RateLimited: true, RetryAfter: max(time.Until(rl.Rate.Reset.Time), 0)}
	}
	var abuse *gh.AbuseRateLimitError
	if errors.As(err, &abuse) {
		e := &APIError{Op: op, StatusCode: statusOf(abuse.Response, http.StatusForbidden), Message: abuse.Message, RateLimited: true}
		if abuse.RetryAfter != nil {
			e.RetryAfter = *abuse.RetryAfter
		}
		return e
	}
	var er *gh.ErrorResponse
	if errors.As(err, &er) {
		e := &APIError{Op: op, StatusCode: statusOf(er.Response, 0), Message: er.Message}
		if e.StatusCode == http.StatusTooManyRequests {
			// go-github v60 does not recognise 429; GitHub sends it with
			// Retry-After or the x-ratelimit-reset header.
			e.RateLimited = true
			e.RetryAfter = retryAfter(er.Response.Header)
		}
		return e
	}
	// An installation token refresh that GitHub refused.
	var he *ghinstallation.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		return &APIError{Op: op, StatusCode: he.Response.StatusCode, Message: "installation token: " + he.Response.Status}
	}
	return fmt.Errorf("github: %s: %w", op, err)
}

func statusOf(r *http.Response, fallback int) int {
	if r == nil {
		return fallback
	}
	return r.StatusCode
}

func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if reset, err := strconv.ParseInt(h.Get("X-Ratelimit-Reset"), 10, 64); err == nil {
		return max(time.Until(time.Unix(reset, 0)), 0)
	}
	return 0
}

// WebURL returns the web address that goes with a REST base URL:
// https://github.com for api.github.com, the host itself for GitHub
// Enterprise Server (https://HOST/api/v3/ -> https://HOST).
func WebURL(apiBase string) string {
	u, err := NormalizeBaseURL(apiBase)
	if err != nil {
		return "https://github.com"
	}
	if u.Host == "api.github.com" {
		return "https://github.com"
	}
	return u.Scheme + "://" + u.Host
}

// App is the GitHub App patbot runs as.
type App struct {
	ID   int64  `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

// App returns the App the private key belongs to (GET /app, authenticated
// with the App's JWT): the check that the App ID and key work.
func (c *Client) App(ctx context.Context) (App, error) {
	var app App
	err := c.do(ctx, c.app, "get the app", http.MethodGet, "app", nil, &app)
	return app, err
}
