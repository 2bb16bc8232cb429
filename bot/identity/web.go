package identity

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// Stages of a sign-in.
const (
	stageAuthorize = "authorize" // on its way to GitHub and back: keyed by the OAuth state
	stageConfirm   = "confirm"   // signed in, awaiting confirmation: keyed by the form token
)

// Paths patbot serves for the web flow, under PATBOT_PUBLIC_URL.
const (
	CallbackPath = "github/callback"
	ConfirmPath  = "github/confirm"
)

// Start begins a sign-in for a Slack user and returns the URL to open in a
// browser: GitHub's authorize page, with a state and PKCE challenge that
// work once, for SignInTTL.
func (s *Service) Start(slackUser, slackName, team string) (string, error) {
	state, verifier := randomString(32), randomString(48)
	secret, err := s.cfg.Keys.Seal([]byte(verifier), "sign-in", stageAuthorize, slackUser)
	if err != nil {
		return "", err
	}
	err = s.cfg.Store.PutSignIn(store.SignIn{Key: hashKey(state), Stage: stageAuthorize, SlackUser: slackUser, SlackName: slackName,
		SlackTeam: team, Expires: s.cfg.Now().Add(SignInTTL), Secret: secret})
	if err != nil {
		return "", err
	}
	return s.cfg.Flow.AuthorizeURL(state, verifier), nil
}

// Handler serves GitHub's callback and the confirmation. Its pages are not
// cached, send no referrer, and take no return URL from the request.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /"+CallbackPath, s.callback)
	mux.HandleFunc("POST /"+ConfirmPath, s.confirm)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
		mux.ServeHTTP(w, r)
	})
}

// cookie is the name of the cookie that ties a confirmation to the browser
// that signed in; over https it is a __Host- cookie.
func (s *Service) cookie() (name, path string) {
	if s.secure {
		return "__Host-patbot_sign_in", "/"
	}
	return "patbot_sign_in", "/"
}

// callback is where GitHub sends the browser back: the code is exchanged
// and the account looked up, but nothing is linked until the user
// confirms, in this browser, that the account is theirs.
func (s *Service) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		s.page(w, http.StatusBadRequest, "This sign-in link is not valid", "It carries no state. Run /pat link in Slack for a new link.")
		return
	}
	si, ok := s.take(w, state, stageAuthorize)
	if !ok {
		return
	}
	if e := q.Get("error"); e != "" {
		s.page(w, http.StatusBadRequest, "GitHub did not authorize patbot",
			"GitHub answered "+e+": "+q.Get("error_description")+". Nothing was linked; run /pat link in Slack to try again.")
		return
	}
	code := q.Get("code")
	if code == "" {
		s.page(w, http.StatusBadRequest, "GitHub sent no code", "Nothing was linked; run /pat link in Slack to try again.")
		return
	}
	verifier, _, err := s.cfg.Keys.Open(si.Secret, "sign-in", stageAuthorize, si.SlackUser)
	if err != nil {
		s.log.Error("sign-in: cannot open the PKCE verifier", "slack_user", si.SlackUser, "err", err)
		s.page(w, http.StatusInternalServerError, "patbot could not finish the sign-in", "Nothing was linked; run /pat link in Slack to try again.")
		return
	}
	ctx := r.Context()
	tokens, err := s.cfg.GitHub.ExchangeCode(ctx, s.cfg.Flow, code, string(verifier))
	if err != nil {
		s.log.Warn("sign-in: GitHub refused the code", "slack_user", si.SlackUser, "err", err)
		s.page(w, http.StatusBadGateway, "GitHub refused the sign-in", githubRefusal(err)+" Nothing was linked; run /pat link in Slack to try again.")
		return
	}
	user, err := s.cfg.GitHub.AuthenticatedUser(ctx, tokens.Access)
	if err != nil {
		s.log.Warn("sign-in: cannot ask GitHub who signed in", "slack_user", si.SlackUser, "err", err)
		s.page(w, http.StatusBadGateway, "GitHub did not say who signed in", describe(err)+". Nothing was linked; run /pat link in Slack to try again.")
		return
	}
	if problem := s.conflict(si.SlackUser, user); problem != "" {
		s.page(w, http.StatusConflict, "This account cannot be linked", problem)
		return
	}
	formToken, browser := randomString(32), randomString(32)
	secret, err := s.sealPair(tokenPair{Access: tokens.Access, Refresh: tokens.Refresh}, "sign-in", stageConfirm, si.SlackUser)
	if err == nil {
		now := s.cfg.Now()
		err = s.cfg.Store.PutSignIn(store.SignIn{Key: hashKey(formToken), Stage: stageConfirm, SlackUser: si.SlackUser, SlackName: si.SlackName,
			SlackTeam: si.SlackTeam, Expires: now.Add(SignInTTL), Secret: secret, Browser: hashKey(browser),
			GitHubID: user.ID, GitHubLogin: user.Login, TokenExpires: expiry(now, tokens.ExpiresIn), RefreshExpires: expiry(now, tokens.RefreshExpiresIn)})
	}
	if err != nil {
		s.log.Error("sign-in: cannot keep the sign-in for its confirmation", "slack_user", si.SlackUser, "err", err)
		s.page(w, http.StatusServiceUnavailable, "patbot could not finish the sign-in", "Nothing was linked; run /pat link in Slack to try again.")
		return
	}
	name, path := s.cookie()
	http.SetCookie(w, &http.Cookie{Name: name, Value: browser, Path: path, MaxAge: int(SignInTTL.Seconds()),
		Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	s.render(w, http.StatusOK, pageView{Title: "Link your accounts?", Confirm: &confirmView{
		SlackUser: si.SlackUser, SlackName: si.SlackName, Workspace: si.SlackTeam, Login: user.Login, Token: formToken}})
}

// confirm records the link the user confirmed, in the browser that signed
// in, and tells them in Slack.
func (s *Service) confirm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		s.page(w, http.StatusBadRequest, "This confirmation is not valid", "Nothing was linked; run /pat link in Slack to start again.")
		return
	}
	si, ok := s.take(w, r.PostForm.Get("token"), stageConfirm)
	if !ok {
		return
	}
	name, _ := s.cookie()
	if c, err := r.Cookie(name); err != nil || hashKey(c.Value) != si.Browser {
		s.page(w, http.StatusForbidden, "This confirmation belongs to another browser",
			"Confirm in the browser that signed in to GitHub. Nothing was linked; run /pat link in Slack to start again.")
		return
	}
	pair, _, err := s.openPair(si.Secret, "sign-in", stageConfirm, si.SlackUser)
	if err != nil {
		s.log.Error("sign-in: cannot open the token awaiting confirmation", "slack_user", si.SlackUser, "err", err)
		s.page(w, http.StatusInternalServerError, "patbot could not finish the sign-in", "Nothing was linked; run /pat link in Slack to start again.")
		return
	}
	user := github.User{ID: si.GitHubID, Login: si.GitHubLogin}
	if problem := s.conflict(si.SlackUser, user); problem != "" {
		s.page(w, http.StatusConflict, "This account cannot be linked", problem)
		return
	}
	token, err := s.sealPair(pair, linkAAD(si.SlackUser, si.GitHubID)...)
	if err == nil {
		err = s.cfg.Store.PutLink(store.Link{SlackUser: si.SlackUser, SlackTeam: si.SlackTeam, GitHubID: si.GitHubID, GitHubLogin: si.GitHubLogin,
			LinkedAt: s.cfg.Now(), Token: token, TokenExpires: si.TokenExpires, RefreshExpires: si.RefreshExpires})
	}
	if errors.Is(err, store.ErrConflict) {
		s.page(w, http.StatusConflict, "This account cannot be linked", "The GitHub account or the Slack user was linked to another meanwhile. Nothing was changed.")
		return
	}
	if err != nil {
		s.log.Error("sign-in: cannot record the link", "slack_user", si.SlackUser, "err", err)
		s.page(w, http.StatusServiceUnavailable, "patbot could not record the link", "Nothing was linked; run /pat link in Slack to start again.")
		return
	}
	cookieName, path := s.cookie()
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: path, MaxAge: -1, Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	l, _ := s.cfg.Store.Link(si.SlackUser)
	s.log.Info("Slack user linked to a GitHub account", "slack_user", si.SlackUser, "github_login", si.GitHubLogin, "github_id", si.GitHubID)
	s.cfg.Linked(context.WithoutCancel(r.Context()), l)
	s.page(w, http.StatusOK, "Linked", "Your Slack account is now linked to the GitHub account "+si.GitHubLogin+". You can close this page.")
}

// take claims a sign-in by the value the browser brought, once; it
// answers the browser itself when there is none to take.
func (s *Service) take(w http.ResponseWriter, value, stage string) (store.SignIn, bool) {
	si, err := s.cfg.Store.TakeSignIn(hashKey(value))
	switch {
	case errors.Is(err, store.ErrNotFound) || err == nil && si.Stage != stage:
		s.page(w, http.StatusBadRequest, "This link was used already, or is not patbot's",
			"Each sign-in link works once. Nothing was linked; run /pat link in Slack for a new one.")
		return store.SignIn{}, false
	case err != nil:
		s.log.Error("sign-in: cannot read the store", "err", err)
		s.page(w, http.StatusServiceUnavailable, "patbot could not read its records", "Nothing was linked; try again in a moment.")
		return store.SignIn{}, false
	case !s.cfg.Now().Before(si.Expires):
		s.page(w, http.StatusBadRequest, "This link has expired", "Sign-in links work for 10 minutes. Nothing was linked; run /pat link in Slack for a new one.")
		return store.SignIn{}, false
	}
	return si, true
}

// conflict says why user's account cannot be linked to slackUser, or "".
func (s *Service) conflict(slackUser string, user github.User) string {
	if login, ok := s.cfg.Configured(slackUser); ok && !strings.EqualFold(login, user.Login) {
		return "patbot's configuration maps your Slack account to the GitHub login " + login + ", and you signed in as " + user.Login +
			". Sign in to GitHub as " + login + ", or ask whoever runs patbot to change your entry under users. Nothing was linked."
	}
	links, err := s.cfg.Store.Links()
	if err != nil {
		return "patbot could not read its records. Nothing was linked; try again in a moment."
	}
	for _, l := range links {
		switch {
		case l.SlackUser == slackUser && l.GitHubID != user.ID:
			return "Your Slack account is linked to the GitHub account " + l.GitHubLogin + ". Run /pat unlink in Slack first to link another. Nothing was changed."
		case l.SlackUser != slackUser && l.GitHubID == user.ID:
			return "The GitHub account " + user.Login + " is linked to another Slack user: a GitHub account can be linked to one Slack user only. Nothing was linked."
		}
	}
	return ""
}

// githubRefusal says what GitHub refused, without anything secret.
func githubRefusal(err error) string {
	var oauthErr *github.OAuthError
	if errors.As(err, &oauthErr) {
		return "GitHub answered " + oauthErr.Code + "."
	}
	return describe(err) + "."
}

type pageView struct {
	Title   string
	Message string
	Confirm *confirmView
}

type confirmView struct {
	SlackUser, SlackName, Workspace, Login, Token string
}

func (s *Service) page(w http.ResponseWriter, status int, title, message string) {
	s.render(w, status, pageView{Title: title, Message: message})
}

func (s *Service) render(w http.ResponseWriter, status int, v pageView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pageTemplate.Execute(w, v); err != nil {
		s.log.Warn("sign-in: cannot write the page", "err", err)
	}
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>patbot: {{.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}button{font-size:1em;padding:.5em 1.5em}</style>
</head><body><h1>{{.Title}}</h1>
{{with .Confirm}}<p>Link the Slack user <strong>{{if .SlackName}}{{.SlackName}} ({{.SlackUser}}){{else}}{{.SlackUser}}{{end}}</strong>
{{if .Workspace}}in the workspace <strong>{{.Workspace}}</strong>{{end}} to the GitHub account <strong>{{.Login}}</strong>?</p>
<p>patbot will then act as <strong>{{.Login}}</strong> when this Slack user approves, denies or revokes a token.
If you did not ask for this link in Slack yourself, or that is not your Slack account, close this page: nothing is linked without your confirmation.</p>
<form method="post" action="confirm"><input type="hidden" name="token" value="{{.Token}}"><button type="submit">Confirm</button></form>
{{else}}<p>{{.Message}}</p>{{end}}
</body></html>
`))
