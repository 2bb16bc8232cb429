package github_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
)

const installationID = 4242

func setup(t *testing.T) (*githubtest.Server, *github.Client) {
	t.Helper()
	fake, err := githubtest.New(githubtest.Options{Key: testKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddOrg("acme", installationID)
	c, err := github.New(github.Config{AppID: fake.AppID, PrivateKey: fake.PrivateKeyPEM, BaseURL: fake.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, call := range fake.Calls() {
			if call.OutsidePrefix {
				t.Errorf("call outside the API prefix: %+v", call)
			}
		}
	})
	return fake, c
}

var sharedKey *rsa.PrivateKey

// testKey shares one RSA key across tests: generating one takes long.
func testKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	if sharedKey == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		sharedKey = k
	}
	return sharedKey
}

func TestListRequestsFollowsLinkThroughEveryPage(t *testing.T) {
	fake, c := setup(t)
	for i := range 250 {
		fake.AddRequest("acme", github.PendingRequest{
			ID: int64(1000 + i), Owner: github.User{Login: "octocat", ID: 1}, TokenID: int64(5000 + i),
			TokenName: fmt.Sprintf("tok-%d", i), Reason: "ci",
		})
	}
	fake.AddRequest("acme", github.PendingRequest{ID: 7, Owner: github.User{Login: "hubot", ID: 2}})

	got, err := c.ListRequests(context.Background(), "acme", github.RequestFilter{Owners: []string{"octocat"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 {
		t.Fatalf("got %d requests, want 250", len(got))
	}
	for i, r := range got {
		if r.ID != int64(1000+i) || r.Owner.Login != "octocat" || r.Reason != "ci" {
			t.Fatalf("item %d = %+v", i, r)
		}
	}
	// Three pages of 100; the later ones through the Link header's
	// /organizations/{id}/ URLs, exactly as GitHub sends them.
	var pages []string
	for _, call := range fake.Calls() {
		if call.Auth == "installation" {
			pages = append(pages, call.Path+" page="+call.Query.Get("page")+" owner="+call.Query.Get("owner[]"))
			if call.Query.Get("per_page") != "100" {
				t.Errorf("per_page = %q, want 100", call.Query.Get("per_page"))
			}
		}
	}
	if len(pages) != 3 || !strings.HasPrefix(pages[0], "/orgs/acme/") || !strings.HasPrefix(pages[2], "/organizations/") ||
		!strings.HasSuffix(pages[2], "page=3 owner=octocat") {
		t.Errorf("pages fetched = %q", pages)
	}
}

func TestListRequestsByTokenIDAndNullReason(t *testing.T) {
	fake, c := setup(t)
	exp := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	fake.AddRequest("acme", github.PendingRequest{ID: 1, Owner: github.User{Login: "a", ID: 1}, TokenID: 11, TokenExpiresAt: &exp,
		Permissions: github.Permissions{Repository: map[string]string{"contents": "write"}}})
	fake.AddRequest("acme", github.PendingRequest{ID: 2, Owner: github.User{Login: "a", ID: 1}, TokenID: 12})
	got, err := c.ListRequests(context.Background(), "acme", github.RequestFilter{TokenIDs: []int64{11}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != 1 || got[0].Reason != "" || !got[0].TokenExpiresAt.Equal(exp) ||
		got[0].Permissions.Repository["contents"] != "write" || got[0].TokenLastUsedAt != nil {
		t.Fatalf("got %+v", got)
	}
	if _, err := c.ListRequests(context.Background(), "acme", github.RequestFilter{Owners: make([]string, 11)}); err == nil {
		t.Error("11 owners accepted; GitHub allows 10")
	}
}

func TestListGrantsEveryPage(t *testing.T) {
	fake, c := setup(t)
	for i := range 130 {
		fake.AddGrant("acme", github.Grant{Owner: github.User{Login: "octocat", ID: 1}, TokenID: int64(i + 1), TokenName: "t"})
	}
	fake.AddGrant("acme", github.Grant{Owner: github.User{Login: "hubot", ID: 2}})
	got, err := c.ListGrants(context.Background(), "acme", "octocat")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 130 {
		t.Fatalf("got %d grants, want 130", len(got))
	}
	if got[0].ID == got[0].TokenID || got[0].AccessGrantedAt.IsZero() {
		t.Errorf("grant = %+v", got[0])
	}
	all, err := c.ListGrants(context.Background(), "acme")
	if err != nil || len(all) != 131 {
		t.Fatalf("all grants = %d, %v", len(all), err)
	}
}

func TestJWTIsChecked(t *testing.T) {
	fake, _ := setup(t)
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(otherKey)})
	tests := map[string]github.Config{
		"wrong key":    {AppID: fake.AppID, PrivateKey: otherPEM, BaseURL: fake.URL},
		"wrong app id": {AppID: fake.AppID + 1, PrivateKey: fake.PrivateKeyPEM, BaseURL: fake.URL},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := github.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.OrgInstallation(context.Background(), "acme")
			if github.StatusCode(err) != http.StatusUnauthorized {
				t.Fatalf("got %v, want 401", err)
			}
			_, err = c.ListRequests(context.Background(), "acme", github.RequestFilter{})
			if github.StatusCode(err) != http.StatusUnauthorized {
				t.Fatalf("installation call: got %v, want 401", err)
			}
		})
	}
}

func TestInstallationTokenCachedAndRefreshed(t *testing.T) {
	fake, c := setup(t)
	ctx := context.Background()
	for range 3 {
		if _, err := c.ListGrants(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.TokensIssued(); n != 1 {
		t.Fatalf("tokens issued for 3 calls = %d, want 1 (cached)", n)
	}
	if n := len(fake.CallsTo(http.MethodGet, "/orgs/acme/installation")); n != 1 {
		t.Errorf("installation looked up %d times, want 1", n)
	}

	// Tokens that expire within a minute are refreshed before use.
	fake.SetTokenTTL(30 * time.Second)
	c3, err := github.New(github.Config{AppID: fake.AppID, PrivateKey: fake.PrivateKeyPEM, BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	before := fake.TokensIssued()
	for range 2 {
		if _, err := c3.ListGrants(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.TokensIssued() - before; n != 2 {
		t.Fatalf("tokens issued for 2 calls with short-lived tokens = %d, want 2", n)
	}
	calls := fake.CallsTo(http.MethodGet, "/orgs/acme/personal-access-tokens")
	for _, call := range calls {
		if call.Auth != "installation" || call.InstallationID != installationID || call.Status != http.StatusOK {
			t.Errorf("call authenticated as %q/%d: %d", call.Auth, call.InstallationID, call.Status)
		}
	}
	if len(calls) != 5 {
		t.Errorf("grant calls = %d, want 5", len(calls))
	}
}

func TestRememberedInstallationSkipsLookup(t *testing.T) {
	fake, c := setup(t)
	c.RememberInstallation("ACME", installationID)
	if _, err := c.ListGrants(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	if n := len(fake.CallsTo(http.MethodGet, "/orgs/acme/installation")); n != 0 {
		t.Errorf("installation looked up %d times, want 0", n)
	}
}

func TestReviewRequest(t *testing.T) {
	fake, c := setup(t)
	ctx := context.Background()
	fake.AddRequest("acme", github.PendingRequest{ID: 1, Owner: github.User{Login: "a", ID: 1}, TokenID: 9})
	fake.AddRequest("acme", github.PendingRequest{ID: 2, Owner: github.User{Login: "a", ID: 1}})

	if err := c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, ""); err != nil {
		t.Fatal(err)
	}
	d, ok := fake.Review("acme", 1)
	if !ok || d.Action != "approve" {
		t.Fatalf("review = %+v, %v", d, ok)
	}
	calls := fake.CallsTo(http.MethodPost, "/orgs/acme/personal-access-token-requests/1")
	if len(calls) != 1 || string(calls[0].Body) != "{\"action\":\"approve\"}\n" {
		t.Errorf("approve body = %q", calls[0].Body)
	}
	if g := fake.Grants("acme"); len(g) != 1 || g[0].TokenID != 9 {
		t.Errorf("grants after approval = %+v", g)
	}

	long := strings.Repeat("x", 2000)
	if err := c.ReviewRequest(ctx, "acme", 2, github.Review{Action: github.ActionDeny, Reason: long}, ""); err != nil {
		t.Fatal(err)
	}
	d, _ = fake.Review("acme", 2)
	if d.Action != "deny" || len(d.Reason) != github.MaxReasonLength {
		t.Errorf("deny = %q with %d-character reason", d.Action, len(d.Reason))
	}

	// Already reviewed: GitHub no longer has it pending.
	err := c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, "")
	if !errors.Is(err, github.ErrNotFound) {
		t.Fatalf("second review: %v, want ErrNotFound", err)
	}
	if err := c.ReviewRequest(ctx, "acme", 3, github.Review{Action: "maybe"}, ""); err == nil {
		t.Error("unknown action sent")
	}
}

func TestErrorsAreClassified(t *testing.T) {
	fake, c := setup(t)
	ctx := context.Background()
	fake.AddRequest("acme", github.PendingRequest{ID: 1, Owner: github.User{Login: "a", ID: 1}})
	path := "/orgs/acme/personal-access-token-requests/1"

	// A rate limit that lasts longer than patbot waits is returned.
	fake.Fail(githubtest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusTooManyRequests, RetryAfter: 60, Times: 1})
	err := c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, "")
	var apiErr *github.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, github.ErrRateLimited) || apiErr.RetryAfter != 60*time.Second {
		t.Fatalf("429: %#v", err)
	}

	fake.Fail(githubtest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusUnprocessableEntity, Times: 1})
	err = c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, "")
	if github.StatusCode(err) != http.StatusUnprocessableEntity || errors.Is(err, github.ErrRateLimited) {
		t.Fatalf("422: %v", err)
	}

	fake.Fail(githubtest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusBadGateway, Times: 1})
	err = c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, "")
	if github.StatusCode(err) != http.StatusBadGateway {
		t.Fatalf("502: %v", err)
	}
	if _, ok := fake.Review("acme", 1); ok {
		t.Fatal("a failed call reviewed the request")
	}

	// After the faults, the call goes through.
	if err := c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, ""); err != nil {
		t.Fatal(err)
	}
}

func TestTimeout(t *testing.T) {
	fake, _ := setup(t)
	c, err := github.New(github.Config{AppID: fake.AppID, PrivateKey: fake.PrivateKeyPEM, BaseURL: fake.URL, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.RememberInstallation("acme", installationID)
	fake.Fail(githubtest.Fault{Path: "/orgs/acme/personal-access-tokens", Status: 200, Delay: time.Second})
	_, err = c.ListGrants(context.Background(), "acme")
	if err == nil || github.StatusCode(err) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a timeout", err)
	}
	// Reads are retried, a bounded number of times.
	if n := len(fake.CallsTo(http.MethodGet, "/orgs/acme/personal-access-tokens")); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

func TestRevokeGrant(t *testing.T) {
	fake, c := setup(t)
	fake.AddGrant("acme", github.Grant{ID: 77, Owner: github.User{Login: "a", ID: 1}})
	if err := c.RevokeGrant(context.Background(), "acme", 77, ""); err != nil {
		t.Fatal(err)
	}
	if g := fake.Grants("acme"); len(g) != 0 {
		t.Errorf("grant not revoked: %+v", g)
	}
	calls := fake.CallsTo(http.MethodPost, "/orgs/acme/personal-access-tokens/77")
	var body map[string]string
	if len(calls) != 1 || json.Unmarshal(calls[0].Body, &body) != nil || body["action"] != "revoke" {
		t.Errorf("revoke calls = %+v", calls)
	}
	if err := c.RevokeGrant(context.Background(), "acme", 77, ""); !errors.Is(err, github.ErrNotFound) {
		t.Errorf("revoking twice: %v, want ErrNotFound", err)
	}
}

func TestMemberships(t *testing.T) {
	fake, c := setup(t)
	ctx := context.Background()
	fake.SetMembership("acme", "owner", "admin", "active")
	fake.SetMembership("acme", "invited", "admin", "pending")
	fake.SetMembership("acme", "dev", "member", "active")
	fake.SetTeamMembership("acme", "security", "dev", "member", "active")

	tests := []struct {
		login     string
		wantOwner bool
		wantErr   error
	}{
		{"owner", true, nil},
		{"invited", false, nil},
		{"dev", false, nil},
		{"stranger", false, github.ErrNotFound},
	}
	for _, tc := range tests {
		m, err := c.OrgMembership(ctx, "acme", tc.login)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("%s: err %v, want %v", tc.login, err, tc.wantErr)
		}
		if m.ActiveOwner() != tc.wantOwner {
			t.Errorf("%s: ActiveOwner = %v (%+v)", tc.login, m.ActiveOwner(), m)
		}
	}
	m, err := c.TeamMembership(ctx, "acme", "security", "dev")
	if err != nil || !m.Active() || m.Role != "member" {
		t.Errorf("team membership = %+v, %v", m, err)
	}
	if _, err := c.TeamMembership(ctx, "acme", "security", "owner"); !errors.Is(err, github.ErrNotFound) {
		t.Errorf("non-member of team: %v", err)
	}
	if _, err := c.TeamMembership(ctx, "acme", "nosuchteam", "dev"); !errors.Is(err, github.ErrNotFound) {
		t.Errorf("unknown team: %v", err)
	}
}

func TestOrgInstallation(t *testing.T) {
	fake, c := setup(t)
	inst, err := c.OrgInstallation(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if inst.ID != installationID || inst.AppID != fake.AppID || inst.Permissions["organization_personal_access_token_requests"] != "write" {
		t.Errorf("installation = %+v", inst)
	}
	if calls := fake.CallsTo(http.MethodGet, "/orgs/acme/installation"); len(calls) != 1 || calls[0].Auth != "jwt" {
		t.Errorf("lookup calls = %+v", calls)
	}
	if _, err := c.OrgInstallation(context.Background(), "elsewhere"); !errors.Is(err, github.ErrNotFound) {
		t.Errorf("org without the App: %v", err)
	}
	if _, err := c.ListGrants(context.Background(), "elsewhere"); !errors.Is(err, github.ErrNotFound) {
		t.Errorf("call to org without the App: %v", err)
	}
}

func TestMissingPermissionIs403(t *testing.T) {
	fake, c := setup(t)
	fake.SetPermissions("acme", map[string]string{"organization_personal_access_tokens": "read"})
	if _, err := c.ListGrants(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	err := c.RevokeGrant(context.Background(), "acme", 1, "")
	if github.StatusCode(err) != http.StatusForbidden {
		t.Fatalf("revoke with read permission: %v, want 403", err)
	}
}

func TestNextPageMustStayOnAPIHost(t *testing.T) {
	fake, _ := setup(t)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request sent to another host (with credentials: %v)", r.Header.Get("Authorization") != "")
	}))
	defer evil.Close()
	// A server on the API host whose Link header points elsewhere.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/access_tokens"):
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"token":"ghs_x","expires_at":%q}`, time.Now().Add(time.Hour).Format(time.RFC3339))
		default:
			w.Header().Set("Link", "<"+evil.URL+"/page2>; rel=\"next\"")
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `[]`)
		}
	}))
	defer api.Close()
	c, err := github.New(github.Config{AppID: fake.AppID, PrivateKey: fake.PrivateKeyPEM, BaseURL: api.URL + "/api/v3/"})
	if err != nil {
		t.Fatal(err)
	}
	c.RememberInstallation("acme", 1)
	_, err = c.ListGrants(context.Background(), "acme")
	if err == nil || !strings.Contains(err.Error(), "points away from the API host") {
		t.Fatalf("got %v", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	key := testKey(t)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	good := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	if _, err := github.New(github.Config{AppID: 1, PrivateKey: good}); err != nil {
		t.Errorf("PKCS #8 key refused: %v", err)
	}
	for name, cfg := range map[string]github.Config{
		"not PEM":  {AppID: 1, PrivateKey: []byte("hunter2-secret")},
		"no app":   {PrivateKey: good},
		"bad base": {AppID: 1, PrivateKey: good, BaseURL: "ftp://x"},
	} {
		_, err := github.New(cfg)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
}

func TestApp(t *testing.T) {
	fake, c := setup(t)
	app, err := c.App(context.Background())
	if err != nil || app.ID != fake.AppID || app.Slug != "patbot" {
		t.Fatalf("app = %+v, %v", app, err)
	}
}

func TestRetries(t *testing.T) {
	ctx := context.Background()
	t.Run("reads recover from 5xx", func(t *testing.T) {
		fake, c := setup(t)
		fake.Fail(githubtest.Fault{Method: http.MethodGet, Path: "/orgs/acme/personal-access-tokens", Status: http.StatusBadGateway, Times: 2})
		if _, err := c.ListGrants(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if n := len(fake.CallsTo(http.MethodGet, "/orgs/acme/personal-access-tokens")); n != 3 {
			t.Errorf("%d attempts, want 3", n)
		}
	})
	t.Run("writes are not repeated after 5xx", func(t *testing.T) {
		fake, c := setup(t)
		fake.AddRequest("acme", github.PendingRequest{ID: 1, Owner: github.User{Login: "a", ID: 1}})
		path := "/orgs/acme/personal-access-token-requests/1"
		fake.Fail(githubtest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusBadGateway, Times: 1})
		if err := c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, ""); github.StatusCode(err) != http.StatusBadGateway {
			t.Fatalf("got %v", err)
		}
		if n := len(fake.CallsTo(http.MethodPost, path)); n != 1 {
			t.Errorf("review sent %d times after a 502, want once", n)
		}
	})
	t.Run("a short rate limit is waited out, even for writes", func(t *testing.T) {
		fake, c := setup(t)
		fake.AddRequest("acme", github.PendingRequest{ID: 1, Owner: github.User{Login: "a", ID: 1}})
		path := "/orgs/acme/personal-access-token-requests/1"
		fake.Fail(githubtest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusTooManyRequests, RetryAfter: 1, Times: 1})
		if err := c.ReviewRequest(ctx, "acme", 1, github.Review{Action: github.ActionApprove}, ""); err != nil {
			t.Fatal(err)
		}
		if d, ok := fake.Review("acme", 1); !ok || d.Action != "approve" {
			t.Error("not reviewed after the wait")
		}
	})
	t.Run("a primary rate limit with its reset header", func(t *testing.T) {
		fake, c := setup(t)
		reset := time.Now().Add(time.Hour).Unix()
		fake.Fail(githubtest.Fault{Method: http.MethodGet, Path: "/orgs/acme/personal-access-tokens", Status: http.StatusForbidden,
			Message: "API rate limit exceeded for installation.",
			Header:  http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {fmt.Sprint(reset)}, "X-Ratelimit-Limit": {"5000"}}})
		_, err := c.ListGrants(ctx, "acme")
		var apiErr *github.APIError
		if !errors.As(err, &apiErr) || !apiErr.RateLimited || apiErr.RetryAfter < 59*time.Minute {
			t.Fatalf("got %#v", err)
		}
		if n := len(fake.CallsTo(http.MethodGet, "/orgs/acme/personal-access-tokens")); n != 1 {
			t.Errorf("%d attempts during an hour-long rate limit, want 1", n)
		}
	})
}
