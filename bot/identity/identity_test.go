package identity

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/clocktest"
	"github.com/patbot/patbot/bot/logtest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
)

// rig is patbot's sign-in pages, served over HTTP, against a fake GitHub
// and a real store.
type rig struct {
	fake   *githubtest.Server
	gh     *github.Client
	db     *bolt.DB
	svc    *Service
	site   *httptest.Server
	clock  *clocktest.Clock
	logs   *logtest.Buffer
	users  map[string]string // the configuration's users map
	mu     sync.Mutex
	linked []store.Link
}

func newRig(t *testing.T) *rig {
	t.Helper()
	fake, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	gh, err := github.New(github.Config{AppID: fake.AppID, PrivateKey: fake.PrivateKeyPEM, BaseURL: fake.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clock := clocktest.New(clocktest.Epoch)
	db, err := bolt.Open(filepath.Join(t.TempDir(), "patbot.db"), bolt.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{fake: fake, gh: gh, db: db, clock: clock, logs: &logtest.Buffer{}, users: map[string]string{}}
	r.site = httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(r.site.Close)
	r.svc = r.service(t, mustKeyring(t, testKey(1), nil))
	r.site.Config.Handler = r.svc.Handler()
	fake.SetCallbackURLs(r.site.URL + "/" + CallbackPath)
	t.Cleanup(func() {
		if logs := r.logs.String(); strings.Contains(logs, "ghu_") || strings.Contains(logs, "ghr_") || strings.Contains(logs, githubtest.ClientSecret) {
			t.Errorf("a secret reached the log:\n%s", logs)
		}
	})
	return r
}

func mustKeyring(t *testing.T, current, previous []byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(current, previous)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (r *rig) service(t *testing.T, keys *Keyring) *Service {
	t.Helper()
	svc, err := New(Config{Store: r.db, GitHub: r.gh, Keys: keys, Now: r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(r.logs, nil)),
		Flow: github.WebFlow{ClientID: githubtest.ClientID, ClientSecret: githubtest.ClientSecret, WebURL: r.fake.WebURL,
			RedirectURL: r.site.URL + "/" + CallbackPath},
		Configured: func(u string) (string, bool) { l, ok := r.users[u]; return l, ok },
		Linked: func(_ context.Context, l store.Link) {
			r.mu.Lock()
			r.linked = append(r.linked, l)
			r.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// page is one answer of patbot's sign-in pages.
type page struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, c *http.Client, u string) page {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(body)}
}

var formToken = regexp.MustCompile(`name="token" value="([^"]+)"`)

func (r *rig) confirm(t *testing.T, c *http.Client, p page) page {
	t.Helper()
	m := formToken.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no confirmation form in %d %s", p.status, p.body)
	}
	resp, err := c.PostForm(r.site.URL+"/"+ConfirmPath, url.Values{"token": {m[1]}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(body)}
}

// authorize follows a sign-in link in browser up to GitHub's redirect,
// and returns the callback URL it leads to.
func (r *rig) authorize(t *testing.T, browser *http.Client, link string) string {
	t.Helper()
	p := get(t, browser, link)
	if p.status != http.StatusFound {
		t.Fatalf("GitHub's authorize page answered %d: %s", p.status, p.body)
	}
	return p.header.Get("Location")
}

// signIn runs /pat link's flow for slackUser, signed in to GitHub as
// login, up to the confirmation page.
func (r *rig) signIn(t *testing.T, slackUser, login string) (*http.Client, page) {
	t.Helper()
	link, err := r.svc.Start(slackUser, "alice.s", "acme-corp")
	if err != nil {
		t.Fatal(err)
	}
	browser := r.fake.Browser(login)
	return browser, get(t, browser, r.authorize(t, browser, link))
}

func (r *rig) link(t *testing.T, slackUser, login string) store.Link {
	t.Helper()
	browser, p := r.signIn(t, slackUser, login)
	if done := r.confirm(t, browser, p); done.status != http.StatusOK || !strings.Contains(done.body, "linked to the GitHub account "+login) {
		t.Fatalf("confirm = %d %s", done.status, done.body)
	}
	l, err := r.db.Link(slackUser)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (r *rig) linkedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.linked)
}

// Linking takes a sign-in at GitHub and a confirmation, and records the
// account by id with its token sealed.
func TestLinkAfterConfirmation(t *testing.T) {
	r := newRig(t)
	link, err := r.svc.Start("U1", "alice.s", "acme-corp")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(link)
	if !strings.HasPrefix(link, r.fake.WebURL+"login/oauth/authorize?") || u.Query().Get("code_challenge_method") != "S256" ||
		u.Query().Get("redirect_uri") != r.site.URL+"/github/callback" {
		t.Fatalf("link = %s", link)
	}
	browser := r.fake.Browser("alice")
	p := get(t, browser, r.authorize(t, browser, link))
	if p.status != http.StatusOK || !strings.Contains(p.body, "alice.s (U1)") || !strings.Contains(p.body, "acme-corp") ||
		!strings.Contains(p.body, "<strong>alice</strong>") || !strings.Contains(p.body, `method="post"`) {
		t.Fatalf("confirmation page = %d %s", p.status, p.body)
	}
	for _, h := range [][2]string{{"Cache-Control", "no-store"}, {"Referrer-Policy", "no-referrer"}} {
		if got := p.header.Get(h[0]); got != h[1] {
			t.Errorf("%s = %q, want %q", h[0], got, h[1])
		}
	}
	if _, err := r.db.Link("U1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("linked before the confirmation")
	}
	done := r.confirm(t, browser, p)
	if done.status != http.StatusOK || done.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("confirm = %d %s", done.status, done.body)
	}
	l, err := r.db.Link("U1")
	if left := l.TokenExpires.Sub(r.clock.Now()); err != nil || l.GitHubID != r.fake.UserID("alice") || l.GitHubLogin != "alice" ||
		l.SlackTeam != "acme-corp" || left < 7*time.Hour || left > 8*time.Hour {
		t.Fatalf("link = %+v, %v", l, err)
	}
	if strings.Contains(string(l.Token.Data), "ghu_") || l.Token.KeyID != KeyID(testKey(1)) {
		t.Errorf("token not sealed: %+v", l.Token)
	}
	if r.linkedCount() != 1 {
		t.Errorf("told of %d links, want 1", r.linkedCount())
	}
	cred, err := r.svc.Token(context.Background(), "U1")
	if err != nil {
		t.Fatal(err)
	}
	if me, err := r.gh.AuthenticatedUser(context.Background(), cred.Token); err != nil || me.Login != "alice" {
		t.Errorf("the stored token: %+v, %v", me, err)
	}
	// The confirmation works once.
	if again := r.confirm(t, browser, p); again.status != http.StatusBadRequest {
		t.Errorf("second confirmation = %d", again.status)
	}
}

// A replayed, forged or expired state, GitHub's refusal and a missing
// code each show a page and link nothing.
func TestCallbackRefusals(t *testing.T) {
	r := newRig(t)
	browser := r.fake.Browser("alice")
	start := func() string {
		link, err := r.svc.Start("U1", "", "")
		if err != nil {
			t.Fatal(err)
		}
		return link
	}
	callback := r.authorize(t, browser, start())
	if p := get(t, browser, callback); p.status != http.StatusOK {
		t.Fatalf("first use = %d %s", p.status, p.body)
	}
	if p := get(t, browser, callback); p.status != http.StatusBadRequest || !strings.Contains(p.body, "used already") {
		t.Errorf("replayed state = %d %s", p.status, p.body)
	}
	forged, _ := url.Parse(callback)
	q := forged.Query()
	q.Set("state", "forged-state")
	forged.RawQuery = q.Encode()
	if p := get(t, browser, forged.String()); p.status != http.StatusBadRequest {
		t.Errorf("forged state = %d", p.status)
	}
	expired := r.authorize(t, browser, start())
	r.clock.Advance(SignInTTL + time.Second)
	if p := get(t, browser, expired); p.status != http.StatusBadRequest || !strings.Contains(p.body, "expired") {
		t.Errorf("expired state = %d %s", p.status, p.body)
	}
	denied, _ := url.Parse(r.authorize(t, browser, start()))
	q = denied.Query()
	q.Del("code")
	q.Set("error", "access_denied")
	q.Set("error_description", "The user has denied your application access.")
	denied.RawQuery = q.Encode()
	if p := get(t, browser, denied.String()); p.status != http.StatusBadRequest || !strings.Contains(p.body, "access_denied") {
		t.Errorf("GitHub's refusal = %d %s", p.status, p.body)
	}
	noCode, _ := url.Parse(r.authorize(t, browser, start()))
	q = noCode.Query()
	q.Del("code")
	noCode.RawQuery = q.Encode()
	if p := get(t, browser, noCode.String()); p.status != http.StatusBadRequest {
		t.Errorf("no code = %d", p.status)
	}
	badCode, _ := url.Parse(r.authorize(t, browser, start()))
	q = badCode.Query()
	q.Set("code", "not-a-code")
	badCode.RawQuery = q.Encode()
	if p := get(t, browser, badCode.String()); p.status != http.StatusBadGateway || !strings.Contains(p.body, "bad_verification_code") {
		t.Errorf("a code GitHub refuses = %d %s", p.status, p.body)
	}
	if all, _ := r.db.Links(); len(all) != 0 {
		t.Errorf("links = %+v", all)
	}
}

// A sign-in link forwarded to someone else leads them to a page that
// names the Slack user who asked; without their confirmation, in the
// browser that signed in, nothing is linked.
func TestForwardedLinkNeedsConfirmation(t *testing.T) {
	r := newRig(t)
	link, _ := r.svc.Start("U1", "alice.s", "acme-corp")
	bob := r.fake.Browser("bob")
	p := get(t, bob, r.authorize(t, bob, link))
	if !strings.Contains(p.body, "alice.s (U1)") || !strings.Contains(p.body, "<strong>bob</strong>") {
		t.Fatalf("page does not say whose Slack account: %s", p.body)
	}
	// Someone else's browser cannot confirm it either.
	other := r.fake.Browser("mallory")
	if done := r.confirm(t, other, p); done.status != http.StatusForbidden {
		t.Errorf("confirmation from another browser = %d %s", done.status, done.body)
	}
	if all, _ := r.db.Links(); len(all) != 0 || r.linkedCount() != 0 {
		t.Errorf("linked without confirmation: %+v", all)
	}
}

// One GitHub account per Slack user and back; a Slack user the
// configuration maps to a login may link that login only.
func TestLinkConflicts(t *testing.T) {
	r := newRig(t)
	r.link(t, "U1", "alice")
	if _, p := r.signIn(t, "U2", "alice"); p.status != http.StatusConflict || !strings.Contains(p.body, "linked to another Slack user") {
		t.Errorf("a second Slack user for alice = %d %s", p.status, p.body)
	}
	if _, p := r.signIn(t, "U1", "bob"); p.status != http.StatusConflict || !strings.Contains(p.body, "/pat unlink") {
		t.Errorf("a second account for U1 = %d %s", p.status, p.body)
	}
	r.users["U3"] = "carol"
	if _, p := r.signIn(t, "U3", "dave"); p.status != http.StatusConflict || !strings.Contains(p.body, "GitHub login carol") {
		t.Errorf("a mapped user signing in as another = %d %s", p.status, p.body)
	}
	r.link(t, "U3", "Carol") // logins compare without case
	// Linking the same account again (after its token broke) replaces it.
	r.link(t, "U1", "alice")
	if all, _ := r.db.Links(); len(all) != 2 {
		t.Errorf("links = %+v", all)
	}
}

// A token about to expire is refreshed once, however many ask at once; a
// token GitHub refuses early (401) is refreshed once too.
func TestRefresh(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.link(t, "U1", "alice")
	r.clock.Advance(8*time.Hour - time.Minute)
	var wg sync.WaitGroup
	tokens := make([]github.UserToken, 10)
	for i := range tokens {
		wg.Go(func() {
			cred, err := r.svc.Token(ctx, "U1")
			if err != nil {
				t.Error(err)
			}
			tokens[i] = cred.Token
		})
	}
	wg.Wait()
	if n := r.fake.Refreshes(); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	for _, tok := range tokens[1:] {
		if tok != tokens[0] {
			t.Fatal("callers got different tokens")
		}
	}
	l, _ := r.db.Link("U1")
	if l.TokenExpires.Sub(r.clock.Now()) < 7*time.Hour || !l.RefreshingUntil.IsZero() {
		t.Errorf("after the refresh: %+v", l)
	}

	r.fake.ExpireUserTokens("alice")
	if _, me, err := r.svc.Me(ctx, "U1"); err != nil || me.Login != "alice" {
		t.Fatalf("after a 401: %+v, %v", me, err)
	}
	if n := r.fake.Refreshes(); n != 2 {
		t.Errorf("%d refreshes, want 2", n)
	}
}

// A refresh token GitHub refuses ends the link's use: the user must sign
// in again; unless another patbot refreshed it meanwhile.
func TestBadRefreshToken(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	l := r.link(t, "U1", "alice")
	r.fake.RevokeUserAuthorization("alice")
	r.clock.Advance(8 * time.Hour)
	if _, err := r.svc.Token(ctx, "U1"); !errors.Is(err, ErrRelink) {
		t.Fatalf("token after the authorization was revoked = %v, want ErrRelink", err)
	}
	if got, _ := r.db.Link("U1"); !strings.Contains(got.Broken, "bad_refresh_token") {
		t.Errorf("link = %+v", got)
	}
	st, err := r.svc.Check(ctx, "U1")
	if err != nil || st.Valid || st.Problem == "" {
		t.Errorf("check = %+v, %v", st, err)
	}

	// Linked again; another patbot's refresh wins the race for the
	// refresh token: this one's bad_refresh_token finds the new pair.
	l = r.link(t, "U1", "alice")
	spent := store.Sealed{KeyID: l.Token.KeyID, Nonce: []byte("spent"), Data: []byte("spent")}
	cred, err := r.svc.breakLink("U1", spent, "GitHub refused the refresh token (bad_refresh_token)")
	if err != nil || cred.Link.Broken != "" || cred.Token == "" {
		t.Errorf("breakLink with a newer pair in the store = %+v, %v", cred, err)
	}
}

// Unlinking removes the link and revokes the authorization at GitHub.
func TestUnlink(t *testing.T) {
	r := newRig(t)
	r.link(t, "U1", "alice")
	if r.fake.UserTokensLive("alice") != 1 {
		t.Fatal("no live token")
	}
	l, revoked, err := r.svc.Unlink(context.Background(), "U1")
	if err != nil || !revoked || l.GitHubLogin != "alice" {
		t.Fatalf("unlink = %+v, %v, %v", l, revoked, err)
	}
	if _, err := r.db.Link("U1"); !errors.Is(err, store.ErrNotFound) {
		t.Error("the link survived")
	}
	if n := r.fake.UserTokensLive("alice"); n != 0 {
		t.Errorf("%d tokens live after unlink", n)
	}
	if calls := r.fake.CallsTo(http.MethodDelete, "/applications/"+githubtest.ClientID+"/grant"); len(calls) != 1 || calls[0].Status != http.StatusNoContent {
		t.Errorf("grant deletion calls = %+v", calls)
	}
	if _, _, err := r.svc.Unlink(context.Background(), "U1"); !errors.Is(err, ErrNotLinked) {
		t.Errorf("unlink twice = %v", err)
	}
}

// Rotating the key seals every token again under the new one; a token
// under a key patbot lacks stops it with the key's id, never the key.
func TestRekey(t *testing.T) {
	r := newRig(t)
	r.link(t, "U1", "alice")
	r.link(t, "U2", "bob")
	rotated := r.service(t, mustKeyring(t, testKey(2), testKey(1)))
	if n, err := rotated.Rekey(); err != nil || n != 2 {
		t.Fatalf("rekey = %d, %v", n, err)
	}
	if l, _ := r.db.Link("U1"); l.Token.KeyID != KeyID(testKey(2)) {
		t.Errorf("still under %s", l.Token.KeyID)
	}
	if n, err := rotated.Rekey(); err != nil || n != 0 {
		t.Errorf("second rekey = %d, %v", n, err)
	}
	if _, err := rotated.Token(context.Background(), "U2"); err != nil {
		t.Errorf("token under the new key: %v", err)
	}
	lost := r.service(t, mustKeyring(t, testKey(3), nil))
	_, err := lost.Rekey()
	if err == nil || !strings.Contains(err.Error(), KeyID(testKey(2))) || !strings.Contains(err.Error(), "PATBOT_SECRET_KEY_PREVIOUS") {
		t.Errorf("rekey with neither key = %v", err)
	}
}

// User tokens that do not expire (an App setting) need no refresh; one
// GitHub refuses cannot be refreshed, and the user must sign in again.
func TestNonExpiringTokens(t *testing.T) {
	r := newRig(t)
	r.fake.SetUserTokenTTL(0)
	l := r.link(t, "U1", "alice")
	if !l.TokenExpires.IsZero() || !l.RefreshExpires.IsZero() {
		t.Fatalf("link = %+v", l)
	}
	r.clock.Advance(365 * 24 * time.Hour)
	ctx := context.Background()
	if _, me, err := r.svc.Me(ctx, "U1"); err != nil || me.Login != "alice" {
		t.Fatalf("a year later: %+v, %v", me, err)
	}
	r.fake.RevokeUserAuthorization("alice")
	if _, _, err := r.svc.Me(ctx, "U1"); !errors.Is(err, ErrRelink) {
		t.Errorf("after the authorization was revoked: %v, want ErrRelink", err)
	}
	if r.fake.Refreshes() != 0 {
		t.Errorf("%d refreshes", r.fake.Refreshes())
	}
}
