package github_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
)

const callback = "https://patbot.example.com/github/callback"

func webFlow(fake *githubtest.Server) github.WebFlow {
	fake.SetCallbackURLs(callback)
	return github.WebFlow{ClientID: githubtest.ClientID, ClientSecret: githubtest.ClientSecret, WebURL: fake.WebURL, RedirectURL: callback}
}

// signIn follows the authorize URL as login's browser and returns the code
// GitHub sends to the callback.
func signIn(t *testing.T, fake *githubtest.Server, f github.WebFlow, login, state, verifier string) string {
	t.Helper()
	resp, err := fake.Browser(login).Get(f.AuthorizeURL(state, verifier))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize answered %d, want a redirect", resp.StatusCode)
	}
	to, _ := url.Parse(resp.Header.Get("Location"))
	if got := to.Scheme + "://" + to.Host + to.Path; got != callback || to.Query().Get("state") != state {
		t.Fatalf("redirected to %s", to)
	}
	return to.Query().Get("code")
}

// The web flow end to end against the fake, as GitHub runs it: PKCE,
// a code that works once, a user token that acts as its owner, a refresh
// token that works once, and a grant that can be revoked.
func TestWebFlow(t *testing.T) {
	fake, c := setup(t)
	f := webFlow(fake)
	ctx := context.Background()
	fake.SetMembership("acme", "alice", "admin", "active")
	fake.SetMembership("acme", "bob", "member", "active")

	u, _ := url.Parse(f.AuthorizeURL("st4te", "verifier-verifier-verifier-verifier-verifier"))
	q := u.Query()
	if !strings.HasPrefix(u.String(), fake.WebURL+"login/oauth/authorize?") || q.Get("client_id") != githubtest.ClientID ||
		q.Get("redirect_uri") != callback || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		t.Fatalf("authorize URL %s", u)
	}

	verifier := "verifier-verifier-verifier-verifier-verifier"
	code := signIn(t, fake, f, "alice", "st4te", verifier)
	if _, err := c.ExchangeCode(ctx, f, code, "another-verifier-another-verifier-another"); err == nil {
		t.Fatal("a code was exchanged with the wrong PKCE verifier")
	}
	code = signIn(t, fake, f, "alice", "st4te", verifier)
	tokens, err := c.ExchangeCode(ctx, f, code, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExchangeCode(ctx, f, code, verifier); err == nil {
		t.Error("a code worked twice")
	}
	if tokens.ExpiresIn.Hours() != 8 || tokens.Refresh == "" || tokens.RefreshExpiresIn == 0 {
		t.Errorf("tokens = %v", tokens)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", tokens, tokens, tokens, tokens.Access); strings.Contains(s, "ghu_") || strings.Contains(s, "ghr_") {
		t.Errorf("a token prints: %s", s)
	}
	me, err := c.AuthenticatedUser(ctx, tokens.Access)
	if err != nil || me.Login != "alice" || me.ID != fake.UserID("alice") {
		t.Fatalf("user = %+v, %v", me, err)
	}

	// The review carries alice's token, and GitHub records her.
	fake.AddRequest("acme", github.PendingRequest{ID: 1, Owner: github.User{Login: "carol"}})
	if err := c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, tokens.Access); err != nil {
		t.Fatal(err)
	}
	if d, _ := fake.Review("acme", 1); d.By != "alice" {
		t.Errorf("review by %q, want alice", d.By)
	}
	calls := fake.CallsTo(http.MethodPost, "/orgs/acme/personal-access-token-requests/1")
	if len(calls) != 1 || calls[0].Auth != "user" || calls[0].User != "alice" {
		t.Errorf("review call = %+v", calls)
	}

	// A member who is not an owner is refused by GitHub.
	bobTokens, err := c.ExchangeCode(ctx, f, signIn(t, fake, f, "bob", "s", verifier), verifier)
	if err != nil {
		t.Fatal(err)
	}
	fake.AddRequest("acme", github.PendingRequest{ID: 2, Owner: github.User{Login: "carol"}})
	if err := c.ReviewRequest(ctx, "acme", 2, github.Review{Action: github.ActionDeny}, bobTokens.Access); github.StatusCode(err) != http.StatusForbidden {
		t.Errorf("a member's review = %v, want 403", err)
	}
	fake.AddGrant("acme", github.Grant{ID: 9, Owner: github.User{Login: "carol"}})
	if err := c.RevokeGrant(ctx, "acme", 9, bobTokens.Access); github.StatusCode(err) != http.StatusForbidden {
		t.Errorf("a member's revocation = %v, want 403", err)
	}
	if err := c.RevokeGrant(ctx, "acme", 9, tokens.Access); err != nil {
		t.Errorf("an owner's revocation = %v", err)
	}

	// A refresh gives a new pair; the old access and refresh tokens die.
	fresh, err := c.RefreshUserToken(ctx, f, tokens.Refresh)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthenticatedUser(ctx, tokens.Access); github.StatusCode(err) != http.StatusUnauthorized {
		t.Errorf("the old access token after a refresh: %v, want 401", err)
	}
	if _, err := c.RefreshUserToken(ctx, f, tokens.Refresh); !errors.Is(err, github.ErrBadRefreshToken) {
		t.Errorf("a refresh token spent twice: %v, want bad_refresh_token", err)
	}
	if _, err := c.AuthenticatedUser(ctx, fresh.Access); err != nil {
		t.Errorf("the new access token: %v", err)
	}

	// Revoking the grant ends every token.
	if err := c.DeleteGrant(ctx, f, fresh.Access); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthenticatedUser(ctx, fresh.Access); github.StatusCode(err) != http.StatusUnauthorized {
		t.Errorf("a token after its grant was revoked: %v, want 401", err)
	}
	if _, err := c.RefreshUserToken(ctx, f, fresh.Refresh); !errors.Is(err, github.ErrBadRefreshToken) {
		t.Errorf("a refresh token after its grant was revoked: %v", err)
	}
	bad := f
	bad.ClientSecret = "wrong"
	if _, err := c.RefreshUserToken(ctx, bad, bobTokens.Refresh); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong client secret: %v", err)
	}
}

// An App whose user tokens do not expire gets no refresh token.
func TestWebFlowNonExpiringTokens(t *testing.T) {
	fake, c := setup(t)
	f := webFlow(fake)
	fake.SetUserTokenTTL(0)
	v := "a-verifier-long-enough-for-pkce-a-verifier"
	tokens, err := c.ExchangeCode(context.Background(), f, signIn(t, fake, f, "alice", "s", v), v)
	if err != nil || tokens.Refresh != "" || tokens.ExpiresIn != 0 {
		t.Fatalf("tokens = %v, %v", tokens, err)
	}
}

func TestCheckClientCredentials(t *testing.T) {
	fake, c := setup(t)
	f := webFlow(fake)
	if err := c.CheckClientCredentials(context.Background(), f); err != nil {
		t.Errorf("good credentials: %v", err)
	}
	f.ClientSecret = "wrong"
	if err := c.CheckClientCredentials(context.Background(), f); !errors.Is(err, github.ErrClientCredentials) {
		t.Errorf("bad credentials: %v", err)
	}
}
