// Package identity ties Slack users to the GitHub accounts they prove to
// be theirs by signing in to GitHub (the App's web flow, with PKCE, and a
// confirmation page), and keeps each user's token for acting on their
// behalf: sealed at rest, refreshed before it expires by one patbot at a
// time, revoked on unlink. It knows neither Slack nor the decisions the
// tokens serve.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// GitHub is what identity needs of GitHub; *github.Client has it.
type GitHub interface {
	ExchangeCode(ctx context.Context, f github.WebFlow, code, verifier string) (github.UserTokens, error)
	RefreshUserToken(ctx context.Context, f github.WebFlow, refresh github.UserToken) (github.UserTokens, error)
	AuthenticatedUser(ctx context.Context, token github.UserToken) (github.User, error)
	DeleteGrant(ctx context.Context, f github.WebFlow, token github.UserToken) error
}

var _ GitHub = (*github.Client)(nil)

// Config is what New needs. Store, GitHub, Flow (with its RedirectURL) and
// Keys are required.
type Config struct {
	Store  store.Links
	GitHub GitHub
	Flow   github.WebFlow
	Keys   *Keyring
	// Now is patbot's clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Configured gives the GitHub login patbot's configuration maps a
	// Slack user to, if any: such a user may link that account only.
	Configured func(slackUser string) (login string, ok bool)
	// Linked is called once a link is confirmed and recorded.
	Linked func(ctx context.Context, l store.Link)
}

// Service links Slack users to GitHub accounts and hands out their tokens.
type Service struct {
	cfg    Config
	holder string // names this patbot in refresh leases
	log    *slog.Logger
	secure bool // the callback is https: cookies are Secure
	// refreshing serializes refreshes within this patbot (the store's
	// lease does it between patbots), striped by Slack user.
	refreshing [64]sync.Mutex
	seed       maphash.Seed
}

// Lifetimes and margins.
const (
	// SignInTTL is how long a sign-in link, and then its confirmation
	// page, works.
	SignInTTL = 10 * time.Minute
	// refreshBefore is how long before its expiry a token is refreshed.
	refreshBefore = 5 * time.Minute
	// refreshLease is how long one patbot may take to refresh a token
	// before another may try.
	refreshLease = 30 * time.Second
	// maxLeaseWaits bounds the waits for another patbot's refresh.
	maxLeaseWaits = 40
	leaseWait     = 250 * time.Millisecond
)

// Errors of Token and its kin.
var (
	// ErrNotLinked: the Slack user has not linked a GitHub account.
	ErrNotLinked = errors.New("not linked to a GitHub account")
	// ErrRelink: the user's token can no longer be refreshed; they must
	// sign in again.
	ErrRelink = errors.New("GitHub no longer accepts the link's token: sign in again")
)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.GitHub == nil || cfg.Keys == nil || cfg.Flow.ClientID == "" || cfg.Flow.RedirectURL == "" {
		return nil, errors.New("identity: Store, GitHub, Keys and a web flow with a client id and redirect URL are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Configured == nil {
		cfg.Configured = func(string) (string, bool) { return "", false }
	}
	if cfg.Linked == nil {
		cfg.Linked = func(context.Context, store.Link) {}
	}
	return &Service{cfg: cfg, holder: randomString(9), log: cfg.Logger, seed: maphash.MakeSeed(),
		secure: len(cfg.Flow.RedirectURL) > 8 && cfg.Flow.RedirectURL[:8] == "https://"}, nil
}

// Credential is a user's live token and the link it belongs to.
type Credential struct {
	Token github.UserToken
	Link  store.Link
}

// tokenPair is what a link seals.
type tokenPair struct {
	Access  github.UserToken `json:"access"`
	Refresh github.UserToken `json:"refresh,omitempty"`
}

// MarshalJSON writes the tokens themselves: only sealing calls it.
func (p tokenPair) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Access  string `json:"access"`
		Refresh string `json:"refresh,omitempty"`
	}{string(p.Access), string(p.Refresh)})
}

func linkAAD(slackUser string, githubID int64) []string {
	return []string{"link", slackUser, strconv.FormatInt(githubID, 10)}
}

func (s *Service) sealPair(p tokenPair, additional ...string) (store.Sealed, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return store.Sealed{}, err
	}
	return s.cfg.Keys.Seal(raw, additional...)
}

func (s *Service) openPair(sealed store.Sealed, additional ...string) (tokenPair, bool, error) {
	raw, current, err := s.cfg.Keys.Open(sealed, additional...)
	if err != nil {
		return tokenPair{}, false, err
	}
	var p tokenPair
	if err := json.Unmarshal(raw, &p); err != nil {
		return tokenPair{}, false, errors.New("sealed token: unreadable")
	}
	return p, current, nil
}

// Link returns a Slack user's link (store.ErrNotFound when none).
func (s *Service) Link(slackUser string) (store.Link, error) { return s.cfg.Store.Link(slackUser) }

// Token returns a Slack user's token, refreshed first when it expires
// soon. It returns ErrNotLinked or ErrRelink when there is none to use.
func (s *Service) Token(ctx context.Context, slackUser string) (Credential, error) {
	l, err := s.cfg.Store.Link(slackUser)
	if errors.Is(err, store.ErrNotFound) {
		return Credential{}, ErrNotLinked
	}
	if err != nil {
		return Credential{}, err
	}
	if l.Broken != "" {
		return Credential{}, ErrRelink
	}
	if !l.TokenExpires.IsZero() && !s.cfg.Now().Before(l.TokenExpires.Add(-refreshBefore)) {
		return s.refresh(ctx, slackUser, l.Token)
	}
	p, _, err := s.openPair(l.Token, linkAAD(l.SlackUser, l.GitHubID)...)
	if err != nil {
		return Credential{}, fmt.Errorf("the link of %s: %w", slackUser, err)
	}
	return Credential{Token: p.Access, Link: l}, nil
}

// Refresh is for a token GitHub refused (401) though it should still
// work: it is refreshed once, unless another caller has done so since.
func (s *Service) Refresh(ctx context.Context, stale Credential) (Credential, error) {
	return s.refresh(ctx, stale.Link.SlackUser, stale.Link.Token)
}

// refresh spends the link's refresh token for a new pair, unless the
// stored token is no longer seen (someone else refreshed it). Refreshes of
// one user are serialized: in this patbot by a mutex, between patbots by
// a lease in the store, because a refresh token works once.
func (s *Service) refresh(ctx context.Context, slackUser string, seen store.Sealed) (Credential, error) {
	mu := &s.refreshing[maphash.String(s.seed, slackUser)%uint64(len(s.refreshing))]
	mu.Lock()
	defer mu.Unlock()

	var l store.Link
	for waits := 0; ; waits++ {
		now := s.cfg.Now()
		var busy, done bool
		var err error
		l, err = s.cfg.Store.UpdateLink(slackUser, func(l *store.Link) error {
			busy, done = false, false
			switch {
			case l.Broken != "":
				return ErrRelink
			case !sameSealed(l.Token, seen) && (l.TokenExpires.IsZero() || now.Before(l.TokenExpires.Add(-refreshBefore))):
				done = true // refreshed meanwhile
				return errDone
			case l.RefreshingUntil.After(now) && l.RefreshingBy != s.holder:
				busy = true
				return errDone
			}
			l.RefreshingUntil, l.RefreshingBy = now.Add(refreshLease), s.holder
			return nil
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
			return Credential{}, ErrNotLinked
		case errors.Is(err, ErrRelink):
			return Credential{}, ErrRelink
		case done:
			return s.Token(ctx, slackUser)
		case busy && waits < maxLeaseWaits:
			// Another patbot is refreshing: its result will be in the store.
			t := time.NewTimer(leaseWait)
			select {
			case <-ctx.Done():
				t.Stop()
				return Credential{}, ctx.Err()
			case <-t.C:
			}
			continue
		case busy:
			return Credential{}, errors.New("another patbot is still refreshing the token")
		case err != nil:
			return Credential{}, err
		}
		break
	}

	aad := linkAAD(l.SlackUser, l.GitHubID)
	old, _, err := s.openPair(l.Token, aad...)
	if err != nil {
		s.release(slackUser)
		return Credential{}, fmt.Errorf("the link of %s: %w", slackUser, err)
	}
	if old.Refresh == "" {
		// A token that does not expire has nothing to refresh with.
		return s.breakLink(slackUser, l.Token, "GitHub refused the token, and it has no refresh token")
	}
	tokens, err := s.cfg.GitHub.RefreshUserToken(ctx, s.cfg.Flow, old.Refresh)
	if errors.Is(err, github.ErrBadRefreshToken) {
		return s.breakLink(slackUser, l.Token, "GitHub refused the refresh token (bad_refresh_token)")
	}
	if err != nil {
		s.release(slackUser)
		return Credential{}, fmt.Errorf("refresh the token of %s: %w", l.GitHubLogin, err)
	}
	sealed, err := s.sealPair(tokenPair{Access: tokens.Access, Refresh: tokens.Refresh}, aad...)
	if err != nil {
		// The spent refresh token is gone: the user must sign in again.
		return s.breakLink(slackUser, l.Token, "patbot could not seal the refreshed token")
	}
	now := s.cfg.Now()
	l, err = s.cfg.Store.UpdateLink(slackUser, func(l *store.Link) error {
		l.Token, l.TokenExpires, l.RefreshExpires = sealed, expiry(now, tokens.ExpiresIn), expiry(now, tokens.RefreshExpiresIn)
		l.RefreshingUntil, l.RefreshingBy = time.Time{}, ""
		return nil
	})
	if err != nil {
		return Credential{}, fmt.Errorf("record the refreshed token of %s: %w", slackUser, err)
	}
	s.log.Info("user token refreshed", "slack_user", slackUser, "github_login", l.GitHubLogin)
	return Credential{Token: tokens.Access, Link: l}, nil
}

var errDone = errors.New("nothing to do")

func sameSealed(a, b store.Sealed) bool {
	return a.KeyID == b.KeyID && string(a.Nonce) == string(b.Nonce) && string(a.Data) == string(b.Data)
}

// release gives up a refresh lease.
func (s *Service) release(slackUser string) {
	s.cfg.Store.UpdateLink(slackUser, func(l *store.Link) error {
		if l.RefreshingBy == s.holder {
			l.RefreshingUntil, l.RefreshingBy = time.Time{}, ""
		}
		return nil
	})
}

// breakLink records that the link's token can no longer be used, unless
// the store shows a token other than the one that failed: then someone
// refreshed it meanwhile, and that one is used.
func (s *Service) breakLink(slackUser string, failed store.Sealed, why string) (Credential, error) {
	refreshed := false
	_, err := s.cfg.Store.UpdateLink(slackUser, func(l *store.Link) error {
		refreshed = !sameSealed(l.Token, failed)
		if !refreshed {
			l.Broken = why
		}
		l.RefreshingUntil, l.RefreshingBy = time.Time{}, ""
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Credential{}, ErrNotLinked
	case err != nil:
		return Credential{}, err
	case refreshed:
		return s.Token(context.Background(), slackUser)
	}
	s.log.Warn("user token can no longer be used; the user must link again", "slack_user", slackUser, "why", why)
	return Credential{}, ErrRelink
}

func expiry(now time.Time, in time.Duration) time.Time {
	if in <= 0 {
		return time.Time{}
	}
	return now.Add(in)
}

// Status is where a Slack user's link stands.
type Status struct {
	Link store.Link
	// Valid says GitHub accepts the token now; Problem says why not.
	Valid   bool
	Problem string
}

// Check asks GitHub whether a Slack user's token works, refreshing it if
// need be, and notes a renamed login. It returns ErrNotLinked when there is
// no link.
func (s *Service) Check(ctx context.Context, slackUser string) (Status, error) {
	l, err := s.cfg.Store.Link(slackUser)
	if errors.Is(err, store.ErrNotFound) {
		return Status{}, ErrNotLinked
	}
	if err != nil {
		return Status{}, err
	}
	cred, user, err := s.Me(ctx, slackUser)
	switch {
	case errors.Is(err, ErrRelink):
		l, _ = s.cfg.Store.Link(slackUser)
		return Status{Link: l, Problem: l.Broken}, nil
	case err != nil:
		return Status{Link: l, Problem: describe(err)}, nil
	case user.ID != l.GitHubID:
		return Status{Link: l, Problem: "the token belongs to another GitHub account"}, nil
	}
	return Status{Link: cred.Link, Valid: true}, nil
}

// Me asks GitHub who a Slack user's token belongs to (refreshing it once
// after a 401), and records a renamed login.
func (s *Service) Me(ctx context.Context, slackUser string) (Credential, github.User, error) {
	cred, err := s.Token(ctx, slackUser)
	if err != nil {
		return Credential{}, github.User{}, err
	}
	user, err := s.cfg.GitHub.AuthenticatedUser(ctx, cred.Token)
	if github.StatusCode(err) == http.StatusUnauthorized {
		if cred, err = s.Refresh(ctx, cred); err != nil {
			return Credential{}, github.User{}, err
		}
		user, err = s.cfg.GitHub.AuthenticatedUser(ctx, cred.Token)
	}
	if err != nil {
		return Credential{}, github.User{}, err
	}
	if user.ID == cred.Link.GitHubID && user.Login != cred.Link.GitHubLogin {
		if l, err := s.cfg.Store.UpdateLink(slackUser, func(l *store.Link) error { l.GitHubLogin = user.Login; return nil }); err == nil {
			cred.Link = l
		}
	}
	return cred, user, nil
}

func describe(err error) string {
	if code := github.StatusCode(err); code != 0 {
		return fmt.Sprintf("GitHub answered %d %s", code, http.StatusText(code))
	}
	return "GitHub could not be reached"
}

// Unlink removes a Slack user's link, then revokes their authorization of
// the App at GitHub. It reports whether GitHub confirmed the revocation;
// the link is gone either way.
func (s *Service) Unlink(ctx context.Context, slackUser string) (store.Link, bool, error) {
	cred, tokenErr := s.Token(ctx, slackUser)
	if errors.Is(tokenErr, ErrNotLinked) {
		return store.Link{}, false, ErrNotLinked
	}
	l, err := s.cfg.Store.DeleteLink(slackUser)
	if errors.Is(err, store.ErrNotFound) {
		return store.Link{}, false, ErrNotLinked
	}
	if err != nil {
		return store.Link{}, false, err
	}
	if tokenErr != nil {
		s.log.Warn("unlinked without revoking the authorization at GitHub: no usable token", "slack_user", slackUser, "why", tokenErr)
		return l, false, nil
	}
	if err := s.cfg.GitHub.DeleteGrant(ctx, s.cfg.Flow, cred.Token); err != nil {
		s.log.Warn("unlinked, but GitHub did not revoke the authorization", "slack_user", slackUser, "err", err)
		return l, false, nil
	}
	return l, true, nil
}

// Rekey opens every link's token at start: one sealed under the previous
// key is sealed again under the current one; one under a key patbot does
// not have is an error that stops patbot, naming the key id. It returns
// how many were sealed again.
func (s *Service) Rekey() (int, error) {
	links, err := s.cfg.Store.Links()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range links {
		aad := linkAAD(l.SlackUser, l.GitHubID)
		p, current, err := s.openPair(l.Token, aad...)
		if errors.Is(err, ErrUnknownKey) {
			return n, fmt.Errorf("the GitHub link of Slack user %s is sealed under key %s, which is neither PATBOT_SECRET_KEY (%s) nor PATBOT_SECRET_KEY_PREVIOUS: "+
				"set PATBOT_SECRET_KEY_PREVIOUS to the key it was sealed under", l.SlackUser, l.Token.KeyID, s.cfg.Keys.CurrentID())
		}
		if err != nil {
			return n, fmt.Errorf("the GitHub link of Slack user %s: %w", l.SlackUser, err)
		}
		if current {
			continue
		}
		sealed, err := s.sealPair(p, aad...)
		if err != nil {
			return n, err
		}
		if _, err := s.cfg.Store.UpdateLink(l.SlackUser, func(x *store.Link) error {
			if sameSealed(x.Token, l.Token) { // not refreshed meanwhile
				x.Token = sealed
			}
			return nil
		}); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashKey is how a value only the browser holds is stored: a database
// reader cannot use it.
func hashKey(v string) string {
	sum := sha256.Sum256([]byte("patbot sign-in\x00" + v))
	return hex.EncodeToString(sum[:])
}
