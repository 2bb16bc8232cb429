package githubtest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
)

// spec is GitHub's OpenAPI extract for the PAT endpoints.
type spec struct {
	Paths      map[string]map[string]operation `json:"paths"`
	Components map[string]json.RawMessage      `json:"components"`
}

type operation struct {
	Responses map[string]json.RawMessage `json:"responses"`
}

type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Nullable             bool               `json:"nullable"`
	Required             []string           `json:"required"`
	Properties           map[string]*schema `json:"properties"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	Enum                 []any              `json:"enum"`
	OneOf                []*schema          `json:"oneOf"`
}

func loadSpec(t *testing.T) *spec {
	t.Helper()
	raw, err := os.ReadFile("testdata/pat-rest.json")
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func (s *spec) resolve(t *testing.T, ref string, v any) {
	t.Helper()
	raw, ok := s.Components[ref]
	if !ok {
		t.Fatalf("no component %s", ref)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

// responseSchema returns the JSON schema of one operation's answer with the
// given status.
func (s *spec) responseSchema(t *testing.T, path, method string, status int) *schema {
	t.Helper()
	op, ok := s.Paths[path][strings.ToLower(method)]
	if !ok {
		t.Fatalf("spec has no %s %s", method, path)
	}
	raw, ok := op.Responses[fmt.Sprint(status)]
	if !ok {
		t.Fatalf("spec: %s %s never answers %d", method, path, status)
	}
	var resp struct {
		Ref     string `json:"$ref"`
		Content map[string]struct {
			Schema *schema `json:"schema"`
		} `json:"content"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Ref != "" {
		s.resolve(t, resp.Ref, &resp)
	}
	c, ok := resp.Content["application/json"]
	if !ok {
		return nil // no body documented (204)
	}
	return c.Schema
}

// validate checks v against sc: types, nullability, required properties,
// enums, items, map values and oneOf; the parts of JSON Schema GitHub's
// extract uses.
func (s *spec) validate(t *testing.T, sc *schema, v any, at string) []string {
	t.Helper()
	if sc.Ref != "" {
		var target schema
		s.resolve(t, sc.Ref, &target)
		return s.validate(t, &target, v, at)
	}
	if v == nil {
		if sc.Nullable || sc.Type == "" {
			return nil
		}
		return []string{at + ": null, but not nullable"}
	}
	if len(sc.OneOf) > 0 {
		for _, alt := range sc.OneOf {
			if len(s.validate(t, alt, v, at)) == 0 {
				return nil
			}
		}
		return []string{at + ": matches no oneOf alternative"}
	}
	var errs []string
	switch sc.Type {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want object", at, v)}
		}
		for _, name := range sc.Required {
			if _, ok := obj[name]; !ok {
				errs = append(errs, at+"."+name+": required, missing")
			}
		}
		for name, val := range obj {
			if p, ok := sc.Properties[name]; ok {
				errs = append(errs, s.validate(t, p, val, at+"."+name)...)
			} else if len(sc.AdditionalProperties) > 0 && sc.AdditionalProperties[0] == '{' {
				var ap schema
				json.Unmarshal(sc.AdditionalProperties, &ap)
				errs = append(errs, s.validate(t, &ap, val, at+"."+name)...)
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %T, want array", at, v)}
		}
		for i, item := range arr {
			errs = append(errs, s.validate(t, sc.Items, item, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case "string":
		if _, ok := v.(string); !ok {
			return []string{fmt.Sprintf("%s: %T, want string", at, v)}
		}
	case "integer":
		if f, ok := v.(float64); !ok || f != float64(int64(f)) {
			return []string{fmt.Sprintf("%s: %v, want integer", at, v)}
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return []string{fmt.Sprintf("%s: %T, want boolean", at, v)}
		}
	}
	if len(sc.Enum) > 0 && !slices.Contains(sc.Enum, v) {
		errs = append(errs, fmt.Sprintf("%s: %v not in %v", at, v, sc.Enum))
	}
	return errs
}

// capture records every answer the fake gives, keyed by method and path.
type capture struct {
	mu      sync.Mutex
	answers map[string][]capturedResponse
}

type capturedResponse struct {
	status int
	header http.Header
	body   []byte
}

func (c *capture) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.mu.Lock()
	key := r.Method + " " + strings.TrimPrefix(r.URL.Path, githubtest.Prefix)
	c.answers[key] = append(c.answers[key], capturedResponse{resp.StatusCode, resp.Header, body})
	c.mu.Unlock()
	return resp, nil
}

func TestFakeAnswersMatchGitHubSchemas(t *testing.T) {
	s := loadSpec(t)
	fake, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.AddOrg("acme", 1)
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		fake.AddRequest("acme", github.PendingRequest{ID: int64(10 + i), Owner: github.User{Login: "octocat", ID: 1}, TokenID: 5,
			TokenName: "ci", TokenExpiresAt: &exp, RepositorySelection: "subset",
			Permissions: github.Permissions{Repository: map[string]string{"contents": "write"}, Organization: map[string]string{"members": "read"}}})
	}
	fake.AddRequest("acme", github.PendingRequest{ID: 20, Owner: github.User{Login: "hubot", ID: 2}, Reason: "deploys"})
	fake.AddGrant("acme", github.Grant{ID: 30, Owner: github.User{Login: "octocat", ID: 1}, TokenLastUsedAt: &exp, RepositorySelection: "subset"},
		github.Repository{ID: 7, Name: "api", FullName: "acme/api", Private: true})

	cap := &capture{answers: map[string][]capturedResponse{}}
	c, err := github.New(github.Config{AppID: fake.AppID, PrivateKey: fake.PrivateKeyPEM, BaseURL: fake.URL, Transport: cap})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.ListRequests(ctx, "acme", github.RequestFilter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListGrants(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := c.ReviewRequest(ctx, "acme", 10, github.Review{Action: github.ActionDeny, Reason: "too broad"}, ""); err != nil {
		t.Fatal(err)
	}
	_ = c.ReviewRequest(ctx, "acme", 10, github.Review{Action: github.ActionDeny}, "") // 404: no longer pending
	repos, err := c.ListGrantRepositories(ctx, "acme", 30)
	if err != nil || len(repos) != 1 || repos[0].FullName != "acme/api" || !repos[0].Private {
		t.Fatalf("grant repositories = %+v, %v", repos, err)
	}
	if err := c.RevokeGrant(ctx, "acme", 30, ""); err != nil {
		t.Fatal(err)
	}
	_ = c.RevokeGrant(ctx, "acme", 30, "") // 404

	checks := []struct {
		key, specPath, method string
	}{
		{"GET /orgs/acme/personal-access-token-requests", "/orgs/{org}/personal-access-token-requests", "GET"},
		{"GET /orgs/acme/personal-access-tokens", "/orgs/{org}/personal-access-tokens", "GET"},
		{"POST /orgs/acme/personal-access-token-requests/10", "/orgs/{org}/personal-access-token-requests/{pat_request_id}", "POST"},
		{"POST /orgs/acme/personal-access-tokens/30", "/orgs/{org}/personal-access-tokens/{pat_id}", "POST"},
		{"GET /orgs/acme/personal-access-tokens/30/repositories", "/orgs/{org}/personal-access-tokens/{pat_id}/repositories", "GET"},
	}
	for _, chk := range checks {
		answers := cap.answers[chk.key]
		if len(answers) == 0 {
			t.Errorf("%s: never called", chk.key)
			continue
		}
		for _, a := range answers {
			sc := s.responseSchema(t, chk.specPath, chk.method, a.status)
			if sc == nil {
				if len(a.body) != 0 {
					t.Errorf("%s %d: body %q where none is documented", chk.key, a.status, a.body)
				}
				continue
			}
			var v any
			if err := json.Unmarshal(a.body, &v); err != nil {
				t.Errorf("%s %d: not JSON: %v", chk.key, a.status, err)
				continue
			}
			for _, e := range s.validate(t, sc, v, "$") {
				t.Errorf("%s %d: %s", chk.key, a.status, e)
			}
		}
	}
}

func TestFakeLinkHeaderShape(t *testing.T) {
	fake, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	fake.AddOrg("acme", 1)
	for range 5 {
		fake.AddGrant("acme", github.Grant{Owner: github.User{Login: "a", ID: 1}})
	}
	cap := &capture{answers: map[string][]capturedResponse{}}
	c, err := github.New(github.Config{AppID: fake.AppID, PrivateKey: fake.PrivateKeyPEM, BaseURL: fake.URL, Transport: cap})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListGrants(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	// One page of 100 holds all five: no Link header.
	if l := cap.answers["GET /orgs/acme/personal-access-tokens"][0].header.Get("Link"); l != "" {
		t.Errorf("single page has Link %q", l)
	}
	// A request for page 2 of 3 gets every relation, in GitHub's shape.
	req, _ := http.NewRequest(http.MethodGet, fake.URL+"orgs/acme/personal-access-tokens?per_page=2&page=2", nil)
	tok := tokenFromCalls(t, fake)
	req.Header.Set("Authorization", "token "+tok)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	link := r.Header.Get("Link")
	re := regexp.MustCompile(`^<http://[^>]+/api/v3/organizations/\d+/personal-access-tokens\?page=1&per_page=2>; rel="prev", <[^>]+page=1[^>]*>; rel="first", <[^>]+page=3[^>]*>; rel="next", <[^>]+page=3[^>]*>; rel="last"$`)
	if !re.MatchString(link) {
		t.Errorf("Link = %q", link)
	}
}

// tokenFromCalls obtains an installation token the way a client does, by
// watching the Authorization header of a real call.
func tokenFromCalls(t *testing.T, fake *githubtest.Server) string {
	t.Helper()
	var tok string
	cap := &tokenSniffer{onToken: func(s string) { tok = s }}
	c, err := github.New(github.Config{AppID: fake.AppID, PrivateKey: fake.PrivateKeyPEM, BaseURL: fake.URL, Transport: cap})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListGrants(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	return tok
}

type tokenSniffer struct{ onToken func(string) }

func (s *tokenSniffer) RoundTrip(r *http.Request) (*http.Response, error) {
	if a, ok := strings.CutPrefix(r.Header.Get("Authorization"), "token "); ok {
		s.onToken(a)
	}
	return http.DefaultTransport.RoundTrip(r)
}
