// Package githubtest is a fake of the GitHub REST endpoints patbot calls,
// served by httptest under the /api/v3/ prefix that GitHub Enterprise Server
// uses, so a client that drops its base path fails.
//
// It checks what GitHub checks (the App's JWT, installation tokens, the
// installation's permissions), keeps state (pending requests, grants, org
// owners, teams), paginates with Link headers the way GitHub does (absolute
// /organizations/{id}/ URLs), records every call, and can be told to fail.
// It does not depend on package testing, so patbot's demo can use it too.
package githubtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patbot/patbot/github"
)

// Prefix is the path under which the fake API is mounted.
const Prefix = "/api/v3"

// Options configure New. The zero value is usable.
type Options struct {
	AppID int64           // default 1001
	Key   *rsa.PrivateKey // the App's key; generated when nil
	// TokenTTL is the lifetime of installation tokens (GitHub: 1 hour).
	TokenTTL time.Duration
}

// Server is a running fake GitHub API.
type Server struct {
	// URL is the REST base URL to configure clients with, ending in
	// /api/v3/; WebURL is where users sign in, ending in /.
	URL           string
	WebURL        string
	AppID         int64
	PrivateKeyPEM []byte

	srv *httptest.Server
	key *rsa.PrivateKey

	// callsMu guards calls apart from the state's mu: a call is completed
	// while its handler may hold mu.
	callsMu sync.Mutex
	calls   []Call

	mu       sync.Mutex
	tokenTTL time.Duration
	orgs     map[string]*org // lower-case login
	tokens   map[string]issuedToken
	issued   int
	faults   []*Fault
	nextID   int64
	codes    map[string]bool // manifest codes not yet converted
	auth     userAuth
	// WebhookSecret is what a manifest conversion hands back.
	WebhookSecret string
}

// Call is one request the fake received.
type Call struct {
	Method string
	Path   string // without the /api/v3 prefix
	Query  url.Values
	Body   []byte
	// Auth is "jwt", "installation", "user", "client" (the App's client
	// id and secret) or "" for what the Authorization header carried;
	// InstallationID is the installation of a valid installation token,
	// User the account of a valid user token.
	Auth           string
	InstallationID int64
	User           string
	Status         int
	// OutsidePrefix marks a call that missed /api/v3: a client that
	// dropped its base path or followed an absolute URL it built itself.
	OutsidePrefix bool
	// Web marks a call to the web flow (/login/oauth/...), outside the
	// API.
	Web bool
	// At is when the call arrived.
	At time.Time
}

// Fault makes matching calls fail.
type Fault struct {
	Method string // "" matches any method
	Path   string // prefix of the path without /api/v3, e.g. "/orgs/acme/personal-access-token-requests/42"
	Status int
	// RetryAfter, when set, is sent as the Retry-After header (seconds).
	RetryAfter int
	Header     http.Header // extra headers, e.g. X-RateLimit-Remaining: 0
	Message    string
	Delay      time.Duration // wait before answering (for timeouts)
	// Hold, when set, keeps the answer back until it is closed or the
	// caller gives up: a test decides when GitHub answers, not a timer.
	Hold <-chan struct{}
	// Apply, when set, has GitHub carry the call out before the fault
	// answers: the change is made, and the answer says otherwise (or never
	// comes).
	Apply bool
	Times int // how many calls fail; 0 means every call
	// Body, when set, is the whole answer instead of an error document:
	// garbage, a proxy's error page.
	Body string
}

type issuedToken struct {
	installationID int64
	expires        time.Time
}

type org struct {
	login          string
	id             int64
	installationID int64
	permissions    map[string]string
	members        map[string]github.Membership            // login -> membership
	teams          map[string]map[string]github.Membership // slug -> login -> membership
	requests       []github.PendingRequest
	grants         []github.Grant
	grantRepos     map[int64][]github.Repository
	requestRepos   map[int64][]github.Repository
	reviews        map[int64]Decision
}

// Decision is a review the fake accepted.
type Decision struct {
	Action string
	Reason string
	At     time.Time // when the fake accepted it
	By     string    // the owner whose user token made it; "" for the App
}

// New starts a fake GitHub API. Close it when done.
func New(opts Options) (*Server, error) {
	if opts.AppID == 0 {
		opts.AppID = 1001
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.Key == nil {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		opts.Key = k
	}
	s := &Server{
		AppID:         opts.AppID,
		PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(opts.Key)}),
		key:           opts.Key,
		tokenTTL:      opts.TokenTTL,
		orgs:          map[string]*org{},
		tokens:        map[string]issuedToken{},
		nextID:        900000,
		codes:         map[string]bool{},
		auth:          newUserAuth(),
		WebhookSecret: "whsec_githubtest",
	}
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL + Prefix + "/"
	s.WebURL = s.srv.URL + "/"
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetTokenTTL changes the lifetime of installation tokens issued from now
// on. A lifetime under a minute makes clients refresh on every call.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// AddOrg creates an organization with the App installed, with every
// permission patbot needs.
func (s *Server) AddOrg(login string, installationID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.orgs[strings.ToLower(login)] = &org{
		login:          login,
		id:             s.nextID,
		installationID: installationID,
		permissions: map[string]string{
			"organization_personal_access_token_requests": "write",
			"organization_personal_access_tokens":         "write",
			"members":                                     "read",
		},
		members:      map[string]github.Membership{},
		teams:        map[string]map[string]github.Membership{},
		reviews:      map[int64]Decision{},
		grantRepos:   map[int64][]github.Repository{},
		requestRepos: map[int64][]github.Repository{},
	}
}

// SetPermissions replaces the installation's permissions on org.
func (s *Server) SetPermissions(orgLogin string, perms map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustOrg(orgLogin).permissions = perms
}

// SetMembership makes login a member of org with role (admin, member) and
// state (active, pending).
func (s *Server) SetMembership(orgLogin, login, role, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustOrg(orgLogin).members[strings.ToLower(login)] = github.Membership{Role: role, State: state}
}

// SetTeamMembership makes login a member of org's team slug.
func (s *Server) SetTeamMembership(orgLogin, slug, login, role, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.mustOrg(orgLogin)
	if o.teams[slug] == nil {
		o.teams[slug] = map[string]github.Membership{}
	}
	o.teams[slug][strings.ToLower(login)] = github.Membership{Role: role, State: state}
}

// AddRequest adds a pending request, with the repositories of a subset
// request. Zero fields get plausible values.
func (s *Server) AddRequest(orgLogin string, r github.PendingRequest, repos ...github.Repository) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.mustOrg(orgLogin)
	if r.ID == 0 {
		s.nextID++
		r.ID = s.nextID
	}
	if r.RepositorySelection == "" {
		r.RepositorySelection = github.SelectionNone
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now().UTC().Truncate(time.Second)
	}
	o.requests = append(o.requests, r)
	o.requestRepos[r.ID] = repos
}

// AddGrant adds an approved token; repos are the repositories of a subset
// grant.
func (s *Server) AddGrant(orgLogin string, g github.Grant, repos ...github.Repository) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.mustOrg(orgLogin)
	if g.ID == 0 {
		s.nextID++
		g.ID = s.nextID
	}
	if g.RepositorySelection == "" {
		g.RepositorySelection = github.SelectionNone
	}
	if g.AccessGrantedAt.IsZero() {
		g.AccessGrantedAt = time.Now().UTC().Truncate(time.Second)
	}
	o.grants = append(o.grants, g)
	o.grantRepos[g.ID] = repos
}

// Pending returns org's pending requests.
func (s *Server) Pending(orgLogin string) []github.PendingRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustOrg(orgLogin).requests)
}

// Grants returns org's approved tokens.
func (s *Server) Grants(orgLogin string) []github.Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustOrg(orgLogin).grants)
}

// Review returns the review the fake accepted for a request, if any.
func (s *Server) Review(orgLogin string, requestID int64) (Decision, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.mustOrg(orgLogin).reviews[requestID]
	return d, ok
}

// Fail adds a fault. Faults are matched in the order they were added.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Heal removes every fault: the outage is over.
func (s *Server) Heal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// record adds a call that is complete on arrival.
func (s *Server) record(c Call) {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	s.calls = append(s.calls, c)
}

// Calls returns every call received so far.
func (s *Server) Calls() []Call {
	s.callsMu.Lock()
	defer s.callsMu.Unlock()
	return slices.Clone(s.calls)
}

// CallsTo returns the calls with the given method whose path is path.
func (s *Server) CallsTo(method, path string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method && c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

// TokensIssued counts the installation tokens handed out.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued
}

func (s *Server) mustOrg(login string) *org {
	o := s.orgs[strings.ToLower(login)]
	if o == nil {
		panic("githubtest: unknown org " + login + ": call AddOrg first")
	}
	return o
}

// routes serves the API under Prefix. Anything else is a client bug (an
// absolute URL, a dropped base path) and gets a 404 that says so.
func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	api.HandleFunc("POST /app/installations/{id}/access_tokens", s.app(s.createToken))
	api.HandleFunc("GET /orgs/{org}/installation", s.app(s.getInstallation))
	api.HandleFunc("GET /app", s.app(s.getApp))
	api.HandleFunc("POST /app-manifests/{code}/conversions", s.convertManifest)

	for _, base := range []string{"/orgs/{org}", "/organizations/{orgid}"} {
		api.HandleFunc("GET "+base+"/personal-access-token-requests", s.installation("organization_personal_access_token_requests", "read", s.listRequests))
		api.HandleFunc("POST "+base+"/personal-access-token-requests/{id}", s.installation("organization_personal_access_token_requests", "write", s.reviewRequest))
		api.HandleFunc("POST "+base+"/personal-access-token-requests", s.installation("organization_personal_access_token_requests", "write", s.reviewRequests))
		api.HandleFunc("GET "+base+"/personal-access-tokens", s.installation("organization_personal_access_tokens", "read", s.listGrants))
		api.HandleFunc("POST "+base+"/personal-access-tokens/{id}", s.installation("organization_personal_access_tokens", "write", s.revokeGrant))
		api.HandleFunc("POST "+base+"/personal-access-tokens", s.installation("organization_personal_access_tokens", "write", s.revokeGrants))
		api.HandleFunc("GET "+base+"/personal-access-tokens/{id}/repositories", s.installation("organization_personal_access_tokens", "read", s.listGrantRepositories))
		api.HandleFunc("GET "+base+"/personal-access-token-requests/{id}/repositories", s.installation("organization_personal_access_token_requests", "read", s.listRequestRepositories))
	}
	api.HandleFunc("GET /orgs/{org}/memberships/{user}", s.installation("members", "read", s.getMembership))
	api.HandleFunc("GET /orgs/{org}/teams/{team}/memberships/{user}", s.installation("members", "read", s.getTeamMembership))
	api.HandleFunc("GET /user", s.getUser)
	api.HandleFunc("DELETE /applications/{client_id}/grant", s.deleteGrant)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found")
	})

	web := http.NewServeMux()
	s.webRoutes(web)

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		path, ok := strings.CutPrefix(r.URL.Path, Prefix)
		if !ok && strings.HasPrefix(r.URL.Path, "/login/oauth/") {
			// The web flow, where browsers and the token exchange go.
			s.record(Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body, Web: true, At: time.Now()})
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			web.ServeHTTP(w, r)
			return
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		call := Call{Method: r.Method, Path: path, Query: r.URL.Query(), Body: body, OutsidePrefix: !ok, At: time.Now()}
		// Recorded on arrival, so that calls still being answered count;
		// the status and credentials are filled in when it is answered.
		s.callsMu.Lock()
		s.calls = append(s.calls, call)
		index := len(s.calls) - 1
		s.callsMu.Unlock()
		rec.sent = func(status int) {
			s.callsMu.Lock()
			s.calls[index].Status = status
			s.calls[index].Auth, s.calls[index].InstallationID, s.calls[index].User = call.Auth, call.InstallationID, call.User
			s.callsMu.Unlock()
		}
		defer func() {
			if rec.sent != nil { // nothing written: net/http answers 200
				rec.sent(http.StatusOK)
			}
		}()
		if !ok {
			writeError(rec, http.StatusNotFound, "githubtest: path outside "+Prefix+" (did the client drop its base URL?)")
			return
		}
		serve := func(w http.ResponseWriter) {
			r2 := r.Clone(withAuth(r.Context(), &call))
			r2.URL.Path = path
			r2.Body = io.NopCloser(strings.NewReader(string(body)))
			api.ServeHTTP(w, r2)
		}
		if s.fault(r.Context(), rec, r.Method, path, func() { serve(httptest.NewRecorder()) }) {
			return
		}
		serve(rec)
	})
}

// AddManifestCode makes code redeemable, once, as GitHub's redirect after
// creating an App from a manifest would.
func (s *Server) AddManifestCode(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = true
}

// convertManifest answers POST /app-manifests/{code}/conversions with the
// App's credentials: this fake's App ID and key.
func (s *Server) convertManifest(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	s.mu.Lock()
	ok := s.codes[code]
	delete(s.codes, code)
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": s.AppID, "slug": "patbot", "node_id": "A_patbot", "name": "patbot",
		"owner":    map[string]any{"login": "acme", "type": "Organization"},
		"html_url": "https://github.com/apps/patbot", "client_id": ClientID, "client_secret": ClientSecret,
		"webhook_secret": s.WebhookSecret, "pem": string(s.PrivateKeyPEM),
		"created_at": time.Now().UTC().Format(time.RFC3339), "updated_at": time.Now().UTC().Format(time.RFC3339),
	})
}

// fault answers with the first matching fault, if any.
func (s *Server) fault(ctx context.Context, w http.ResponseWriter, method, path string, apply func()) bool {
	s.mu.Lock()
	var f *Fault
	for i, x := range s.faults {
		if (x.Method == "" || x.Method == method) && strings.HasPrefix(path, x.Path) {
			f = x
			if f.Times > 0 {
				f.Times--
				if f.Times == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
			}
			break
		}
	}
	s.mu.Unlock()
	if f == nil {
		return false
	}
	if f.Apply {
		apply()
	}
	time.Sleep(f.Delay)
	if f.Hold != nil {
		select {
		case <-f.Hold:
		case <-ctx.Done():
			return true
		}
	}
	for k, vs := range f.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
	}
	if f.Body != "" {
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
		return true
	}
	msg := f.Message
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	writeError(w, f.Status, msg)
	return true
}

// recorder notes the status of an answer, and calls sent before any of the
// answer leaves, so that a client that has its answer finds the call
// complete in Calls.
type recorder struct {
	http.ResponseWriter
	status int
	sent   func(status int)
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	if r.sent != nil {
		r.sent(code)
		r.sent = nil
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.sent != nil {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-GitHub-Media-Type", "github.v3; format=json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in the basic-error shape GitHub uses.
func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{
		"message":           message,
		"documentation_url": "https://docs.github.com/rest",
		"status":            strconv.Itoa(status),
	})
}

func writeValidationError(w http.ResponseWriter, field, message string) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message":           "Validation Failed",
		"documentation_url": "https://docs.github.com/rest",
		"errors":            []map[string]any{{"resource": "PersonalAccessTokenRequest", "field": field, "code": "invalid", "message": message}},
	})
}

// RemoveRequest takes a request off org's pending list, as a decision made
// elsewhere or a cancellation does.
func (s *Server) RemoveRequest(orgLogin string, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.mustOrg(orgLogin)
	o.requests = slices.DeleteFunc(o.requests, func(r github.PendingRequest) bool { return r.ID == id })
}
