package github

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// DefaultWebURL is where github.com's users sign in.
const DefaultWebURL = "https://github.com/"

// UserToken is a user access token: the App acting on a signed-in user's
// behalf. It prints as a placeholder, so that it cannot reach a log or an
// error by accident.
type UserToken string

func (UserToken) String() string                 { return "[user token]" }
func (UserToken) GoString() string               { return "[user token]" }
func (UserToken) LogValue() slog.Value           { return slog.StringValue("[user token]") }
func (t UserToken) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UserTokens are what GitHub hands out when a user authorizes the App, or
// when a refresh token is spent. ExpiresIn and RefreshExpiresIn are zero
// when the App's user tokens do not expire. They print without the tokens.
type UserTokens struct {
	Access           UserToken
	Refresh          UserToken // "" when the App's user tokens do not expire
	ExpiresIn        time.Duration
	RefreshExpiresIn time.Duration
}

func (t UserTokens) String() string {
	return fmt.Sprintf("user tokens (expire in %s, refresh in %s)", t.ExpiresIn, t.RefreshExpiresIn)
}

// OAuthError is an error GitHub's sign-in endpoints answer (with status
// 200): bad_verification_code, bad_refresh_token, incorrect_client_credentials…
type OAuthError struct {
	Code        string
	Description string
}

func (e *OAuthError) Error() string {
	if e.Description == "" {
		return "github: " + e.Code
	}
	return "github: " + e.Code + ": " + e.Description
}

// ErrBadRefreshToken matches the OAuthError GitHub answers to a refresh
// token that is spent, expired or revoked: the user must sign in again.
var ErrBadRefreshToken = errors.New("bad_refresh_token")

// Is makes errors.Is(err, ErrBadRefreshToken) work.
func (e *OAuthError) Is(target error) bool {
	return target == ErrBadRefreshToken && e.Code == "bad_refresh_token"
}

// WebFlow is the App's user authorization through the browser (GitHub's
// web flow, with PKCE).
type WebFlow struct {
	ClientID     string
	ClientSecret string
	// WebURL is where users sign in: https://github.com/, or
	// https://HOST/ for GitHub Enterprise Server. Default DefaultWebURL.
	WebURL string
	// RedirectURL is patbot's callback: one of the App's callback URLs.
	RedirectURL string
}

// Challenge is the PKCE S256 challenge of verifier.
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (f WebFlow) webURL(path string) string {
	base := f.WebURL
	if base == "" {
		base = DefaultWebURL
	}
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + path
}

// AuthorizeURL is where a browser goes to let the App act for its user:
// GitHub asks the user, then sends the browser to RedirectURL with a code
// and state.
func (f WebFlow) AuthorizeURL(state, verifier string) string {
	q := url.Values{
		"client_id":             {f.ClientID},
		"redirect_uri":          {f.RedirectURL},
		"state":                 {state},
		"code_challenge":        {Challenge(verifier)},
		"code_challenge_method": {"S256"},
		"allow_signup":          {"false"},
	}
	return f.webURL("login/oauth/authorize") + "?" + q.Encode()
}

// ExchangeCode trades the code GitHub sent to the callback, and the PKCE
// verifier its challenge was made from, for the user's tokens.
func (c *Client) ExchangeCode(ctx context.Context, f WebFlow, code, verifier string) (UserTokens, error) {
	return c.tokenRequest(ctx, f, "exchange the sign-in code", url.Values{
		"code": {code}, "code_verifier": {verifier}, "redirect_uri": {f.RedirectURL},
	})
}

// RefreshUserToken spends a refresh token for a new pair. A refresh token
// works once: store the new pair before anything else. A spent, expired or
// revoked one gives an error matching ErrBadRefreshToken.
func (c *Client) RefreshUserToken(ctx context.Context, f WebFlow, refresh UserToken) (UserTokens, error) {
	return c.tokenRequest(ctx, f, "refresh a user token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {string(refresh)},
	})
}

// tokenRequest posts to GitHub's token endpoint. It is not retried: a
// code and a refresh token work once.
func (c *Client) tokenRequest(ctx context.Context, f WebFlow, op string, form url.Values) (UserTokens, error) {
	form.Set("client_id", f.ClientID)
	form.Set("client_secret", f.ClientSecret)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.webURL("login/oauth/access_token"), strings.NewReader(form.Encode()))
	if err != nil {
		return UserTokens{}, fmt.Errorf("github: %s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := (&http.Client{Transport: c.transport, CheckRedirect: noRedirects}).Do(req)
	if err != nil {
		// The URL carries nothing secret; the form is not in the error.
		return UserTokens{}, fmt.Errorf("github: %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return UserTokens{}, &APIError{Op: op, StatusCode: resp.StatusCode}
	}
	var body struct {
		AccessToken           string `json:"access_token"`
		RefreshToken          string `json:"refresh_token"`
		ExpiresIn             int64  `json:"expires_in"`
		RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
		TokenType             string `json:"token_type"`
		Error                 string `json:"error"`
		ErrorDescription      string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return UserTokens{}, fmt.Errorf("github: %s: unreadable answer", op)
	}
	switch {
	case body.Error != "":
		return UserTokens{}, &OAuthError{Code: body.Error, Description: body.ErrorDescription}
	case body.AccessToken == "" || !strings.EqualFold(body.TokenType, "bearer"):
		return UserTokens{}, fmt.Errorf("github: %s: the answer carries no bearer token", op)
	}
	return UserTokens{Access: UserToken(body.AccessToken), Refresh: UserToken(body.RefreshToken),
		ExpiresIn: time.Duration(body.ExpiresIn) * time.Second, RefreshExpiresIn: time.Duration(body.RefreshTokenExpiresIn) * time.Second}, nil
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// forUser returns a client that acts with a user's token.
func (c *Client) forUser(token UserToken) *gh.Client {
	return c.newGitHubClient(c.transport).WithAuthToken(string(token))
}

// AuthenticatedUser returns the account a user token belongs to (GET
// /user). An invalid or expired token gives an APIError with status 401.
func (c *Client) AuthenticatedUser(ctx context.Context, token UserToken) (User, error) {
	var u User
	err := c.do(ctx, c.forUser(token), "get the signed-in user", http.MethodGet, "user", nil, &u)
	return u, err
}

// DeleteGrant revokes the user's authorization of the App, every token
// of it included (DELETE /applications/{client_id}/grant, authenticated
// with the App's client id and secret).
func (c *Client) DeleteGrant(ctx context.Context, f WebFlow, token UserToken) error {
	tr := &gh.BasicAuthTransport{Username: f.ClientID, Password: f.ClientSecret, Transport: c.transport}
	g := c.newGitHubClient(tr)
	return c.do(ctx, g, "revoke the user's authorization", http.MethodDelete,
		"applications/"+url.PathEscape(f.ClientID)+"/grant", map[string]string{"access_token": string(token)}, nil)
}

// clientFor is the client that makes a call on org: the user's when a
// user token is given, else the App's installation.
func (c *Client) clientFor(ctx context.Context, org string, as UserToken) (*gh.Client, error) {
	if as != "" {
		return c.forUser(as), nil
	}
	return c.forOrg(ctx, org)
}

// ErrClientCredentials is returned by CheckClientCredentials when GitHub
// does not accept the App's client id and secret.
var ErrClientCredentials = errors.New("GitHub does not accept the App's client id and secret")

// CheckClientCredentials asks GitHub's token endpoint whether it accepts
// the App's client id and secret, with a code that cannot work: good
// credentials get bad_verification_code, bad ones
// incorrect_client_credentials.
func (c *Client) CheckClientCredentials(ctx context.Context, f WebFlow) error {
	_, err := c.ExchangeCode(ctx, f, "patbot-check-not-a-code", "patbot-check-not-a-verifier-patbot-check-not-a-verifier")
	var oauthErr *OAuthError
	switch {
	case errors.As(err, &oauthErr) && oauthErr.Code == "bad_verification_code":
		return nil
	case errors.As(err, &oauthErr) && oauthErr.Code == "incorrect_client_credentials":
		return ErrClientCredentials
	case err == nil:
		return errors.New("GitHub took a made-up code")
	}
	return err
}
