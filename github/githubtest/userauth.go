package githubtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/patbot/patbot/github"
)

// The App's OAuth credentials, as a manifest conversion hands them out.
const (
	ClientID     = "Iv1.patbot"
	ClientSecret = "client-secret"
)

// SessionCookie is the cookie by which the fake knows who is signed in to
// GitHub in a browser; Browser sets it.
const SessionCookie = "githubtest_user"

const (
	userTokenPrefix    = "ghu_"
	refreshTokenPrefix = "ghr_"
	// refreshTTL is a refresh token's lifetime (GitHub: six months).
	refreshTTL = 184 * 24 * time.Hour
)

// userAuth is the state of GitHub's web flow: accounts, codes on their way
// to the callback, and the tokens handed out.
type userAuth struct {
	accounts     map[string]int64 // lower-case login -> user id
	callbacks    []string         // the App's callback URLs
	userTokenTTL time.Duration    // 0: user tokens do not expire
	codes        map[string]authCode
	access       map[string]userGrant
	refresh      map[string]userGrant
	refreshes    int
}

type authCode struct {
	login, redirect, challenge string
	expires                    time.Time
}

type userGrant struct {
	login   string
	expires time.Time // zero: never
}

func newUserAuth() userAuth {
	return userAuth{accounts: map[string]int64{}, userTokenTTL: 8 * time.Hour, codes: map[string]authCode{},
		access: map[string]userGrant{}, refresh: map[string]userGrant{}}
}

// SetCallbackURLs sets the App's callback URLs: the redirect_uri values
// the authorize page accepts.
func (s *Server) SetCallbackURLs(urls ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.callbacks = urls
}

// SetUserTokenTTL sets the lifetime of user tokens issued from now on
// (GitHub: 8 hours); 0 turns expiry off, as the App setting does: no
// refresh tokens then.
func (s *Server) SetUserTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth.userTokenTTL = d
}

// UserID is the account id of login, created on first use.
func (s *Server) UserID(login string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.account(login)
}

func (s *Server) account(login string) int64 {
	key := strings.ToLower(login)
	id, ok := s.auth.accounts[key]
	if !ok {
		s.nextID++
		id = s.nextID
		s.auth.accounts[key] = id
	}
	return id
}

// ExpireUserTokens makes every access token of login invalid now, as time
// does; its refresh tokens still work.
func (s *Server) ExpireUserTokens(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tok, g := range s.auth.access {
		if strings.EqualFold(g.login, login) {
			g.expires = time.Now().Add(-time.Second)
			s.auth.access[tok] = g
		}
	}
}

// RevokeUserAuthorization removes login's authorization of the App, as
// the user can in their GitHub settings: every token dies.
func (s *Server) RevokeUserAuthorization(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revokeUser(login)
}

func (s *Server) revokeUser(login string) {
	for _, m := range []map[string]userGrant{s.auth.access, s.auth.refresh} {
		for tok, g := range m {
			if strings.EqualFold(g.login, login) {
				delete(m, tok)
			}
		}
	}
}

// UserTokensLive counts login's access tokens that still work.
func (s *Server) UserTokensLive(login string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.auth.access {
		if strings.EqualFold(g.login, login) && (g.expires.IsZero() || time.Now().Before(g.expires)) {
			n++
		}
	}
	return n
}

// Refreshes counts the refresh tokens spent.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auth.refreshes
}

// Browser is an HTTP client that keeps cookies, signed in to this fake
// GitHub as login, and that does not follow redirects: a test follows
// them step by step.
func (s *Server) Browser(login string) *http.Client {
	jar, _ := cookiejar.New(nil)
	web, _ := url.Parse(s.WebURL)
	jar.SetCookies(web, []*http.Cookie{{Name: SessionCookie, Value: login, Path: "/"}})
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func randomToken(prefix string) string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// authorize is GitHub's authorize page, approved at once by whoever the
// session cookie names: it sends the browser to the callback with a code.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := func(status int, msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<!doctype html><title>GitHub</title><p>%s</p>", html.EscapeString(msg))
	}
	if q.Get("client_id") != ClientID {
		page(http.StatusNotFound, "The client_id is not that of a GitHub App.")
		return
	}
	redirect := q.Get("redirect_uri")
	s.mu.Lock()
	callbacks := slices.Clone(s.auth.callbacks)
	s.mu.Unlock()
	if redirect == "" && len(callbacks) > 0 {
		redirect = callbacks[0]
	}
	if !slices.Contains(callbacks, redirect) {
		page(http.StatusBadRequest, "The redirect_uri MUST match the registered callback URL for this application.")
		return
	}
	if q.Get("code_challenge") != "" && q.Get("code_challenge_method") != "S256" {
		page(http.StatusBadRequest, "code_challenge_method must be S256.")
		return
	}
	session, err := r.Cookie(SessionCookie)
	if err != nil || session.Value == "" {
		page(http.StatusOK, "Sign in to GitHub to continue to patbot.")
		return
	}
	code := randomToken("")[:20]
	s.mu.Lock()
	s.account(session.Value)
	s.auth.codes[code] = authCode{login: session.Value, redirect: redirect, challenge: q.Get("code_challenge"), expires: time.Now().Add(10 * time.Minute)}
	s.mu.Unlock()
	back, _ := url.Parse(redirect)
	bq := back.Query()
	bq.Set("code", code)
	if st := q.Get("state"); st != "" {
		bq.Set("state", st)
	}
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// accessToken is POST /login/oauth/access_token: a code (with its PKCE
// verifier) or a refresh token for a pair of user tokens. Errors come back
// with status 200, as GitHub sends them.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	answer := func(v map[string]any) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			writeJSON(w, http.StatusOK, v)
			return
		}
		form := url.Values{}
		for k, x := range v {
			form.Set(k, fmt.Sprint(x))
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		io.WriteString(w, form.Encode())
	}
	fail := func(code, desc string) {
		answer(map[string]any{"error": code, "error_description": desc, "error_uri": "https://docs.github.com/apps"})
	}
	if r.PostForm.Get("client_id") != ClientID || r.PostForm.Get("client_secret") != ClientSecret {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var login string
	if r.PostForm.Get("grant_type") == "refresh_token" {
		g, ok := s.auth.refresh[r.PostForm.Get("refresh_token")]
		if !ok || !g.expires.IsZero() && time.Now().After(g.expires) {
			fail("bad_refresh_token", "The refresh token passed is incorrect or expired.")
			return
		}
		// A refresh token works once, and takes the old access tokens with it.
		delete(s.auth.refresh, r.PostForm.Get("refresh_token"))
		for tok, a := range s.auth.access {
			if a.login == g.login {
				delete(s.auth.access, tok)
			}
		}
		s.auth.refreshes++
		login = g.login
	} else {
		c, ok := s.auth.codes[r.PostForm.Get("code")]
		delete(s.auth.codes, r.PostForm.Get("code"))
		switch {
		case !ok || time.Now().After(c.expires):
			fail("bad_verification_code", "The code passed is incorrect or expired.")
			return
		case r.PostForm.Get("redirect_uri") != "" && r.PostForm.Get("redirect_uri") != c.redirect:
			fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
			return
		case c.challenge != "" && github.Challenge(r.PostForm.Get("code_verifier")) != c.challenge:
			fail("bad_verification_code", "The code_verifier does not match the code_challenge.")
			return
		}
		login = c.login
	}
	access := randomToken(userTokenPrefix)
	out := map[string]any{"access_token": access, "token_type": "bearer", "scope": ""}
	var expires time.Time
	if ttl := s.auth.userTokenTTL; ttl > 0 {
		expires = time.Now().Add(ttl)
		refresh := randomToken(refreshTokenPrefix)
		s.auth.refresh[refresh] = userGrant{login: login, expires: time.Now().Add(refreshTTL)}
		out["expires_in"] = int(ttl.Seconds())
		out["refresh_token"] = refresh
		out["refresh_token_expires_in"] = int(refreshTTL.Seconds())
	}
	s.auth.access[access] = userGrant{login: login, expires: expires}
	answer(out)
}

// userFromToken is the account a live user token belongs to. s.mu must be
// held.
func (s *Server) userFromToken(tok string) (string, bool) {
	g, ok := s.auth.access[tok]
	if !ok || !g.expires.IsZero() && time.Now().After(g.expires) {
		return "", false
	}
	return g.login, true
}

func bearer(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(auth, "token "); ok {
		return tok
	}
	tok, _ := strings.CutPrefix(auth, "Bearer ")
	return tok
}

// getUser is GET /user with a user token.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	login, ok := s.userFromToken(bearer(r))
	id := s.account(login)
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	noteUser(r, login)
	writeJSON(w, http.StatusOK, s.wireUser(github.User{Login: login, ID: id}))
}

// deleteGrant is DELETE /applications/{client_id}/grant: the user's
// authorization of the App ends, every token with it.
func (s *Server) deleteGrant(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || user != ClientID || pass != ClientSecret || r.PathValue("client_id") != ClientID {
		writeError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	noteAuth(r, "client", 0)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.AccessToken == "" {
		writeValidationError(w, "access_token", "access_token is missing")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	login, ok := s.userFromToken(body.AccessToken)
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.revokeUser(login)
	w.WriteHeader(http.StatusNoContent)
}

// asOwner serves an org endpoint called with a user token: GitHub lets a
// user act there through the App only as an active owner of the org.
func (s *Server) asOwner(w http.ResponseWriter, r *http.Request, tok string, h func(w http.ResponseWriter, r *http.Request, o *org)) {
	s.mu.Lock()
	login, ok := s.userFromToken(tok)
	o := s.orgFromPath(r)
	var m github.Membership
	if o != nil {
		m = o.members[strings.ToLower(login)]
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	noteUser(r, login)
	switch {
	case o == nil || o.installationID == 0 || m.State == "":
		writeError(w, http.StatusNotFound, "Not Found")
	case !m.ActiveOwner():
		writeError(w, http.StatusForbidden, "You must be an organization owner to perform this action.")
	default:
		h(w, r, o)
	}
}

// WebURL-relative paths of the sign-in endpoints.
func (s *Server) webRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login/oauth/authorize", s.authorize)
	mux.HandleFunc("POST /login/oauth/access_token", s.accessToken)
}
