package bot_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/logtest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/clocktest"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/bolt"
)

const (
	secret        = "webhook-secret-do-not-log"
	signingSecret = "slack-signing-secret-do-not-log"
	slackToken    = "xoxb-test-token-do-not-log"
)

// Fixture orgs: the real created delivery is from github-ssh-authority, the
// synthetic approved one from test-org.
var policy = bot.Config{
	Orgs: map[string]bot.Org{
		"github-ssh-authority": {Login: "github-ssh-authority", Channel: "C0000000001"},
		"test-org":             {Login: "test-org", Channel: "C0000000002"},
	},
}

type harness struct {
	t      *testing.T
	dbPath string
	clock  *clocktest.Clock // the bot's and the store's
	db     *bolt.DB
	bot    *bot.Bot
	gh     *githubtest.Server
	slack  *slacktest.Server
	reg    *prometheus.Registry
	logs   *logtest.Buffer
	stop   func()
}

var (
	fakeKeyOnce sync.Once
	fakeKey     *rsa.PrivateKey
)

// newGitHub starts a fake GitHub with the fixture orgs installed and an
// owner, alice, in each.
func newGitHub(t *testing.T) *githubtest.Server {
	t.Helper()
	fakeKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		fakeKey = k
	})
	gh, err := githubtest.New(githubtest.Options{Key: fakeKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	for i, org := range []string{"github-ssh-authority", "test-org"} {
		gh.AddOrg(org, int64(49956902+i))
		gh.SetMembership(org, "alice", "admin", "active")
	}
	// GitHub lists the fixture's request as pending, with what the webhook
	// lacks.
	gh.AddRequest("github-ssh-authority", github.PendingRequest{
		ID: 415440, Owner: github.User{Login: "halain987", ID: 18029382}, TokenID: 98716, TokenName: "release-bot",
		Reason: "Publish releases from CI", RepositorySelection: "none",
	})
	return gh
}

func newHarness(t *testing.T, dbPath string, tune func(*bot.Deps)) *harness {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "patbot.db")
	}
	h := &harness{t: t, dbPath: dbPath, clock: clocktest.New(clocktest.Epoch), gh: newGitHub(t), slack: slacktest.New(slackToken), reg: prometheus.NewRegistry(), logs: &logtest.Buffer{}}
	t.Cleanup(h.slack.Close)
	client, err := github.New(github.Config{AppID: h.gh.AppID, PrivateKey: h.gh.PrivateKeyPEM, BaseURL: h.gh.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	deps := bot.Deps{
		GitHub: client, Config: policy, WebhookSecret: []byte(secret),
		Slack:               bot.NewSlackClient(bot.SlackConfig{BotToken: slackToken, APIURL: h.slack.URL, Timeout: 5 * time.Second}),
		SlackSigningSecret:  signingSecret,
		ResponseURLPrefixes: []string{h.slack.ResponseURL("")},
		Logger:              slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:             h.reg, RetryBackoff: 10 * time.Millisecond,
		ReconcileInterval: -1, // reconcile_test.go turns it on
		Clock:             h.clock,
	}
	if tune != nil {
		tune(&deps)
	}
	// The store reads the same clock as the bot: one time for the test.
	h.db, err = bolt.Open(dbPath, bolt.Options{Now: deps.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	deps.Store = h.db
	h.bot, err = bot.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

// start runs the workers until the test ends.
func (h *harness) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		h.bot.Run(ctx)
		close(done)
	}()
	h.stop = func() { cancel(); <-done }
	// Running, whether or not ready in every other way.
	h.eventually("workers running", func() bool { err := h.bot.Ready(); return err == nil || err.Error() != "workers are not running" })
}

func (h *harness) close() {
	if h.stop != nil {
		h.stop()
		h.stop = nil
	}
	if h.db != nil {
		if err := h.db.Check(); err != nil {
			h.t.Error(err)
		}
		h.db.Close()
		h.db = nil
	}
}

func (h *harness) deliver(event, delivery string, body []byte) *httptest.ResponseRecorder {
	h.t.Helper()
	return h.send(event, delivery, body, github.Sign([]byte(secret), body), "application/json")
}

func (h *harness) send(event, delivery string, body []byte, signature, contentType string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/github/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if event != "" {
		req.Header.Set(github.HeaderEvent, event)
	}
	if delivery != "" {
		req.Header.Set(github.HeaderDelivery, delivery)
	}
	if signature != "" {
		req.Header.Set(github.HeaderSignature, signature)
	}
	rec := httptest.NewRecorder()
	h.bot.WebhookHandler().ServeHTTP(rec, req)
	return rec
}

// eventually waits for cond, failing the test if it does not hold within
// 10 seconds. It synchronises with background work; it measures nothing.
func (h *harness) eventually(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) jobs() []uint64 {
	ids, err := h.db.JobIDs()
	if err != nil {
		h.t.Fatal(err)
	}
	return ids
}

func (h *harness) counter(event, action, outcome string) float64 {
	return metricValue(h.t, h.reg, "patbot_webhooks_total", "event", event, "action", action, "outcome", outcome)
}

// metricValue is the value of the counter or gauge name with the given
// label pairs, 0 when it has no such series.
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labelPairs ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labelPairs); i += 2 {
				if labels[labelPairs[i]] != labelPairs[i+1] {
					continue series
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "github", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// derived turns a fixture into another action's payload. GitHub publishes
// no denied or cancelled examples; these are labelled derived, not captured.
func derived(t *testing.T, name, fromAction, toAction string) []byte {
	t.Helper()
	b := fixture(t, name)
	return bytes.Replace(b, []byte(`"action": "`+fromAction+`"`), []byte(`"action": "`+toAction+`"`), 1)
}

func TestWebhookSignatureMatrix(t *testing.T) {
	body := fixture(t, "personal_access_token_request.created.json")
	good := github.Sign([]byte(secret), body)
	tests := map[string]struct {
		signature string
		want      int
	}{
		"missing":       {"", http.StatusUnauthorized},
		"wrong secret":  {github.Sign([]byte("guess"), body), http.StatusUnauthorized},
		"garbage":       {"sha256=nothex", http.StatusUnauthorized},
		"sha1 only":     {"sha1=" + strings.TrimPrefix(good, "sha256="), http.StatusUnauthorized},
		"other payload": {github.Sign([]byte(secret), []byte("{}")), http.StatusUnauthorized},
		"valid":         {good, http.StatusAccepted},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, "", nil)
			rec := h.send(github.EventPATRequest, "d-1", body, tc.signature, "application/json")
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.want, rec.Body)
			}
			if tc.want != http.StatusUnauthorized {
				return
			}
			if _, err := h.db.Delivery("d-1"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("rejected delivery recorded: %v", err)
			}
			if n := len(h.jobs()); n != 0 {
				t.Errorf("%d jobs after a rejected delivery", n)
			}
			logs := h.logs.String()
			if !strings.Contains(logs, `"level":"WARN"`) || !strings.Contains(logs, "webhook rejected") {
				t.Errorf("no warning logged: %s", logs)
			}
			if strings.Contains(logs, "halain987") || strings.Contains(logs, secret) {
				t.Errorf("log leaks the body or the secret: %s", logs)
			}
		})
	}
}

func TestWebhookTooLarge(t *testing.T) {
	h := newHarness(t, "", nil)
	body := bytes.Repeat([]byte(" "), github.MaxPayloadBytes+1)
	rec := h.deliver(github.EventPATRequest, "big", body)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", rec.Code)
	}
	if _, err := h.db.Delivery("big"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("oversized delivery recorded")
	}
}

func TestWebhookPingAndIgnoredEvents(t *testing.T) {
	h := newHarness(t, "", nil)
	if rec := h.deliver("ping", "p-1", []byte(`{"zen":"Keep it logically awesome."}`)); rec.Code != http.StatusOK {
		t.Errorf("ping: %d", rec.Code)
	}
	for i, ev := range []string{"push", "issues", "installation"} {
		rec := h.deliver(ev, "o-"+string(rune('a'+i)), []byte(`{"action":"opened"}`))
		if rec.Code != http.StatusAccepted {
			t.Errorf("%s: %d, want 202", ev, rec.Code)
		}
	}
	// An action GitHub may add later is ignored too.
	rec := h.deliver(github.EventPATRequest, "x-1", derived(t, "personal_access_token_request.created.json", "created", "edited"))
	if rec.Code != http.StatusAccepted {
		t.Errorf("unknown action: %d", rec.Code)
	}
	if n := len(h.jobs()); n != 0 {
		t.Errorf("%d jobs for ignored events", n)
	}
	if got := h.counter("other", "other", "ignored"); got != 3 {
		t.Errorf("ignored other events counted %v, want 3", got)
	}
	if got := h.counter(github.EventPATRequest, "other", "ignored"); got != 1 {
		t.Errorf("ignored actions counted %v, want 1", got)
	}
	if got := h.counter("ping", "other", "ping"); got != 1 {
		t.Errorf("pings counted %v, want 1", got)
	}
}

func TestWebhookMalformed(t *testing.T) {
	tests := map[string]struct {
		event, delivery string
		body            string
	}{
		"not JSON":         {github.EventPATRequest, "m", `{"action":"created",`},
		"no action":        {github.EventPATRequest, "m", `{"personal_access_token_request":{"id":1},"organization":{"login":"test-org"}}`},
		"no request id":    {github.EventPATRequest, "m", `{"action":"created","personal_access_token_request":{},"organization":{"login":"test-org"}}`},
		"no org":           {github.EventPATRequest, "m", `{"action":"created","personal_access_token_request":{"id":1}}`},
		"no event header":  {"", "m", `{"action":"created","personal_access_token_request":{"id":1},"organization":{"login":"test-org"}}`},
		"no delivery GUID": {github.EventPATRequest, "", `{"action":"created","personal_access_token_request":{"id":1},"organization":{"login":"test-org"}}`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, "", nil)
			rec := h.deliver(tc.event, tc.delivery, []byte(tc.body))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			if n := len(h.jobs()); n != 0 {
				t.Errorf("%d jobs after a malformed delivery", n)
			}
			if c, _ := h.db.CountDeliveries(); c != 0 {
				t.Errorf("%d deliveries recorded", c)
			}
		})
	}
}

func TestWebhookCreatedIsDurableThenProcessed(t *testing.T) {
	h := newHarness(t, "", nil)
	body := fixture(t, "personal_access_token_request.created.json")
	rec := h.deliver(github.EventPATRequest, "guid-created", body)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	// Committed before the answer, though no worker runs yet.
	marker, err := h.db.Delivery("guid-created")
	if err != nil || marker.Outcome != "queued" || marker.JobID == 0 {
		t.Fatalf("marker = %+v, %v", marker, err)
	}
	job, err := h.db.Job(marker.JobID)
	if err != nil || job.Org != "github-ssh-authority" || job.RequestID != 415440 {
		t.Fatalf("job = %+v, %v", job, err)
	}
	// The job holds the event in compact form.
	var ev github.RequestEvent
	if err := json.Unmarshal(job.Payload, &ev); err != nil || ev.Request.ID != 415440 || ev.InstallationID != 49956902 ||
		ev.Request.Owner.Login != "halain987" || len(job.Payload) > len(body)/2 {
		t.Fatalf("stored event = %+v (%d bytes, body %d), %v", ev, len(job.Payload), len(body), err)
	}

	h.start()
	h.eventually("job finished", func() bool { return len(h.jobs()) == 0 })
	r, err := h.db.Request("github-ssh-authority", 415440)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.StatePending || r.Owner != "halain987" || r.OwnerID != 18029382 || r.RepositorySelection != "none" ||
		r.InstallationID != 49956902 || r.TokenExpiresAt == nil || len(r.History) != 1 {
		t.Errorf("record = %+v", r)
	}
	// Completed from GitHub's list of pending requests.
	if r.Reason != "Publish releases from CI" || r.TokenID != 98716 || r.TokenName != "release-bot" {
		t.Errorf("not enriched: %+v", r)
	}
	if n := len(h.gh.CallsTo(http.MethodGet, "/orgs/github-ssh-authority/installation")); n != 0 {
		t.Errorf("installation looked up %d times; the webhook named it", n)
	}
	if got := h.counter(github.EventPATRequest, "created", "queued"); got != 1 {
		t.Errorf("queued counted %v", got)
	}
}

func TestWebhookRedeliveryHasNoEffect(t *testing.T) {
	h := newHarness(t, "", nil)
	h.start()
	body := fixture(t, "personal_access_token_request.created.json")
	if rec := h.deliver(github.EventPATRequest, "same-guid", body); rec.Code != http.StatusAccepted {
		t.Fatalf("first: %d", rec.Code)
	}
	h.eventually("job finished", func() bool { return len(h.jobs()) == 0 })
	before, _ := h.db.Request("github-ssh-authority", 415440)

	for range 3 {
		rec := h.deliver(github.EventPATRequest, "same-guid", body)
		if rec.Code != http.StatusOK {
			t.Fatalf("redelivery: %d, want 200", rec.Code)
		}
	}
	if n := len(h.jobs()); n != 0 {
		t.Errorf("redelivery queued %d jobs", n)
	}
	after, _ := h.db.Request("github-ssh-authority", 415440)
	if !after.Updated.Equal(before.Updated) || len(after.History) != 1 {
		t.Errorf("redelivery changed the record: %+v", after)
	}
	if got := h.counter(github.EventPATRequest, "created", "duplicate"); got != 3 {
		t.Errorf("duplicates counted %v", got)
	}
}

func TestWebhookConcurrentRedeliveriesOneJob(t *testing.T) {
	h := newHarness(t, "", nil)
	body := fixture(t, "personal_access_token_request.created.json")
	var wg sync.WaitGroup
	codes := make(chan int, 16)
	for range 16 {
		wg.Go(func() { codes <- h.deliver(github.EventPATRequest, "race", body).Code })
	}
	wg.Wait()
	close(codes)
	accepted := 0
	for c := range codes {
		if c == http.StatusAccepted {
			accepted++
		} else if c != http.StatusOK {
			t.Errorf("status %d", c)
		}
	}
	if accepted != 1 || len(h.jobs()) != 1 {
		t.Errorf("accepted %d, jobs %d; want 1 and 1", accepted, len(h.jobs()))
	}
}

func TestWebhookUnknownOrgRecordedNotQueued(t *testing.T) {
	h := newHarness(t, "", nil)
	body := bytes.ReplaceAll(fixture(t, "personal_access_token_request.created.json"), []byte("github-ssh-authority"), []byte("someone-else"))
	rec := h.deliver(github.EventPATRequest, "elsewhere", body)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d", rec.Code)
	}
	marker, err := h.db.Delivery("elsewhere")
	if err != nil || marker.Outcome != "ignored: org not configured" || marker.Org != "someone-else" || marker.JobID != 0 {
		t.Errorf("marker = %+v, %v", marker, err)
	}
	if n := len(h.jobs()); n != 0 {
		t.Errorf("%d jobs for an unconfigured org", n)
	}
	if !strings.Contains(h.logs.String(), "not configured") {
		t.Errorf("not logged: %s", h.logs)
	}
}

func TestWebhookFormEncoded(t *testing.T) {
	h := newHarness(t, "", nil)
	form := []byte("payload=" + url.QueryEscape(string(fixture(t, "personal_access_token_request.created.json"))))
	rec := h.send(github.EventPATRequest, "form", form, github.Sign([]byte(secret), form), "application/x-www-form-urlencoded")
	if rec.Code != http.StatusAccepted || len(h.jobs()) != 1 {
		t.Fatalf("status %d, jobs %d", rec.Code, len(h.jobs()))
	}
}

func TestOutcomeWebhooksUpdateRecord(t *testing.T) {
	created := fixture(t, "personal_access_token_request.created.json")
	tests := map[string]struct {
		action string
		want   store.State
	}{
		"approved in GitHub":     {"approved", store.StateApproved},
		"denied in GitHub":       {"denied", store.StateDenied},
		"cancelled by its owner": {"cancelled", store.StateCancelled},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, "", nil)
			h.start()
			h.deliver(github.EventPATRequest, "c", created)
			outcome := bytes.Replace(derived(t, "personal_access_token_request.created.json", "created", tc.action),
				[]byte(`"sender": {
    "login": "halain987"`), []byte(`"sender": {
    "login": "an-owner"`), 1)
			if rec := h.deliver(github.EventPATRequest, "o", outcome); rec.Code != http.StatusAccepted {
				t.Fatalf("status %d", rec.Code)
			}
			h.eventually("jobs finished", func() bool { return len(h.jobs()) == 0 })
			r, err := h.db.Request("github-ssh-authority", 415440)
			if err != nil || r.State != tc.want {
				t.Fatalf("record = %+v, %v", r, err)
			}
			if last := r.History[len(r.History)-1]; last.Source != store.SourceWebhook || last.Actor != "an-owner" {
				t.Errorf("last change = %+v", last)
			}
			if tc.want == store.StateCancelled {
				if r.Decision != nil {
					t.Errorf("cancelled request has a decision: %+v", r.Decision)
				}
			} else if r.Decision == nil || r.Decision.Actor != "an-owner" || r.Decision.Source != store.SourceWebhook {
				t.Errorf("decision = %+v", r.Decision)
			}
		})
	}
}

func TestApprovedWithoutEarlierRecord(t *testing.T) {
	// The synthetic approved fixture: no created seen, no installation.
	h := newHarness(t, "", nil)
	h.start()
	if rec := h.deliver(github.EventPATRequest, "a", fixture(t, "personal_access_token_request.approved.json")); rec.Code != http.StatusAccepted {
		t.Fatalf("status %d", rec.Code)
	}
	h.eventually("job finished", func() bool { return len(h.jobs()) == 0 })
	r, err := h.db.Request("test-org", 42)
	if err != nil || r.State != store.StateApproved || r.Owner != "octocat" || r.Decision.Actor != "admin" {
		t.Fatalf("record = %+v, %v", r, err)
	}
	// The confirmation of a decision already recorded changes nothing.
	before := r
	h.deliver(github.EventPATRequest, "a2", fixture(t, "personal_access_token_request.approved.json"))
	h.eventually("job finished", func() bool { return len(h.jobs()) == 0 })
	after, _ := h.db.Request("test-org", 42)
	if len(after.History) != len(before.History) || after.State != store.StateApproved {
		t.Errorf("confirmation changed the record: %+v", after)
	}
}

func TestUnfinishedWorkSurvivesCrash(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "patbot.db")
	first := newHarness(t, dbPath, nil)
	// Accepted and acknowledged, but the process dies before any worker ran.
	for i, guid := range []string{"g1", "g2"} {
		body := fixture(t, "personal_access_token_request.created.json")
		if i == 1 {
			body = fixture(t, "personal_access_token_request.approved.json")
		}
		if rec := first.deliver(github.EventPATRequest, guid, body); rec.Code != http.StatusAccepted {
			t.Fatalf("status %d", rec.Code)
		}
	}
	first.close()

	second := newHarness(t, dbPath, nil)
	if n := len(second.jobs()); n != 2 {
		t.Fatalf("%d jobs after restart, want 2", n)
	}
	second.start()
	second.eventually("recovered jobs finished", func() bool { return len(second.jobs()) == 0 })
	if r, err := second.db.Request("github-ssh-authority", 415440); err != nil || r.State != store.StatePending {
		t.Errorf("created not processed: %+v, %v", r, err)
	}
	if r, err := second.db.Request("test-org", 42); err != nil || r.State != store.StateApproved {
		t.Errorf("approved not processed: %v\n%s", err, second.logs)
	}
	if !strings.Contains(second.logs.String(), "resuming unfinished work") {
		t.Errorf("recovery not logged")
	}
}

func TestQueueFullAnswers503AndStoresNothing(t *testing.T) {
	h := newHarness(t, "", func(d *bot.Deps) { d.QueueSize = 2 })
	body := fixture(t, "personal_access_token_request.created.json")
	for i, want := range []int{http.StatusAccepted, http.StatusAccepted, http.StatusServiceUnavailable} {
		guid := "q" + string(rune('0'+i))
		if rec := h.deliver(github.EventPATRequest, guid, body); rec.Code != want {
			t.Fatalf("delivery %d: %d, want %d", i, rec.Code, want)
		}
	}
	if _, err := h.db.Delivery("q2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused delivery recorded: a redelivery would be dropped as a duplicate")
	}
	// Once the work is done there is room again.
	h.start()
	// A job leaves the store a moment before its place is released; a
	// refused delivery stores nothing, so trying again is safe.
	h.eventually("room again", func() bool { return h.deliver(github.EventPATRequest, "q2", body).Code == http.StatusAccepted })
}

func TestBrokenJobIsParkedNotLost(t *testing.T) {
	h := newHarness(t, "", func(d *bot.Deps) { d.MaxAttempts = 3 })
	_, id, err := h.db.AcceptDelivery(store.Delivery{ID: "broken"}, &store.Job{Payload: []byte(`{"action":"created"}`)})
	if err != nil {
		t.Fatal(err)
	}
	h.close()
	h2 := newHarness(t, h.dbPath, func(d *bot.Deps) { d.MaxAttempts = 3 })
	h2.start()
	h2.eventually("job parked", func() bool { return strings.Contains(h2.logs.String(), "parked") })
	job, err := h2.db.Job(id)
	if err != nil || job.Attempts != 1 || !strings.Contains(job.LastError, "parse stored payload") {
		t.Fatalf("job = %+v, %v", job, err)
	}
}

func TestReadyOnlyWhileWorkersRun(t *testing.T) {
	h := newHarness(t, "", nil)
	if err := h.bot.Ready(); err == nil {
		t.Fatal("ready before the workers run")
	}
	h.start()
	if err := h.bot.Ready(); err != nil {
		t.Fatalf("not ready while running: %v", err)
	}
	h.stop()
	h.stop = nil
	if err := h.bot.Ready(); err == nil {
		t.Fatal("ready after stopping")
	}
}

func TestDeliveryMarkersPrunedAfterRetention(t *testing.T) {
	h := newHarness(t, "", func(d *bot.Deps) { d.DeliveryRetention = 24 * time.Hour })
	now := h.clock.Now()
	for guid, age := range map[string]time.Duration{"old": 25 * time.Hour, "older": 72 * time.Hour, "recent": time.Hour} {
		if _, _, err := h.db.AcceptDelivery(store.Delivery{ID: guid, ReceivedAt: now.Add(-age)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	h.start()
	h.eventually("old markers pruned", func() bool { n, _ := h.db.CountDeliveries(); return n == 1 })
	if _, err := h.db.Delivery("recent"); err != nil {
		t.Errorf("recent marker pruned: %v", err)
	}
}

func TestShutdownDrainsJobsInProgress(t *testing.T) {
	for _, tc := range []struct {
		name     string
		delay    time.Duration // how long GitHub takes to answer the job's lookup
		drain    time.Duration
		finished bool
	}{
		{"within the deadline", 300 * time.Millisecond, 5 * time.Second, true},
		{"past the deadline", 3 * time.Second, 200 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, "", func(d *bot.Deps) { d.DrainTimeout = tc.drain })
			h.gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: "/orgs/github-ssh-authority/personal-access-token-requests",
				Status: http.StatusOK, Body: "[]", Delay: tc.delay, Times: 1})
			h.start()
			h.deliver(github.EventPATRequest, "d", fixture(t, "personal_access_token_request.created.json"))
			h.eventually("the job asks GitHub", func() bool {
				return len(h.gh.CallsTo(http.MethodGet, "/orgs/github-ssh-authority/personal-access-token-requests")) == 1
			})
			h.stop() // returns once drained, or at the deadline
			h.stop = nil
			if done := len(h.jobs()) == 0; done != tc.finished {
				t.Fatalf("job finished = %v, want %v", done, tc.finished)
			}
			if !tc.finished && !strings.Contains(h.logs.String(), "will run at the next start") && !strings.Contains(h.logs.String(), "retried at the next start") {
				t.Errorf("the interrupted job was not reported:\n%s", h.logs)
			}
		})
	}
}

func TestFinishedRequestsAndAuditKeptForTheirRetention(t *testing.T) {
	// With the default retentions (90 days, 2 years), what is recent stays.
	h := newHarness(t, "", nil)
	now := h.clock.Now()
	for id := range int64(2) {
		if _, err := h.db.UpdateRequest("test-org", id+1, func(r *store.Request, _ bool) error { r.State = store.StateApproved; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// Appended in time order, as patbot appends them.
	for _, age := range []time.Duration{3 * 365 * 24 * time.Hour, time.Hour} {
		h.db.AppendAudit(store.AuditEvent{At: now.Add(-age), Kind: "decision", Org: "test-org"})
	}
	h.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(h.logs)
		}
	})
	h.eventually("pruning ran", func() bool { return strings.Contains(h.logs.String(), "audit events") })
	if reqs, _ := h.db.Requests("test-org"); len(reqs) != 2 {
		t.Errorf("%d request records kept, want 2 (both finished just now)", len(reqs))
	}
	if events, _ := h.db.AuditEvents(store.AuditFilter{}); len(events) != 1 {
		t.Errorf("%d audit events kept, want the recent one", len(events))
	}

	// 91 days later, past their retention, the records go; the audit
	// event, within its 2 years, stays.
	h.stop()
	h.stop = nil
	h.clock.Advance(91 * 24 * time.Hour)
	h2 := newHarnessWith(t, h, func(d *bot.Deps) { d.RequestRetention = 90 * 24 * time.Hour })
	h2.start()
	h2.eventually("old records pruned", func() bool { reqs, _ := h2.db.Requests("test-org"); return len(reqs) == 0 })
	if events, _ := h2.db.AuditEvents(store.AuditFilter{}); len(events) != 1 {
		t.Errorf("%d audit events kept, want 1", len(events))
	}
}

// Unsigned bodies cannot make patbot hold unbounded memory: large ones
// share a budget and past it are refused at once, while small signed
// deliveries are still taken.
func TestUnsignedLargeBodiesShareABudget(t *testing.T) {
	h := newHarness(t, "", func(d *bot.Deps) { d.LargeBodyBudget = 3 << 20 })
	h.start()
	const size = 2 << 20
	post := func(body io.Reader, event string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/github/webhook", body)
		req.ContentLength = size
		req.Header.Set(github.HeaderEvent, event)
		req.Header.Set(github.HeaderDelivery, "x")
		req.Header.Set(github.HeaderSignature, "sha256="+strings.Repeat("0", 64))
		rec := httptest.NewRecorder()
		h.bot.WebhookHandler().ServeHTTP(rec, req)
		return rec
	}
	// The first is being read (the sender is slow): it holds 2 MiB.
	pr, pw := io.Pipe()
	first := make(chan int)
	go func() { first <- post(pr, github.EventPATRequest).Code }()
	if _, err := pw.Write(make([]byte, 1<<20)); err != nil { // the handler has begun reading
		t.Fatal(err)
	}
	// The second does not fit: refused without reading a byte.
	unread := &countingReader{r: bytes.NewReader(make([]byte, size))}
	if rec := post(unread, github.EventPATRequest); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("second large body answered %d, want 503", rec.Code)
	}
	if unread.n != 0 {
		t.Errorf("%d bytes of the refused body read", unread.n)
	}
	// A body whose content patbot does not need is checked as it streams,
	// within no budget.
	if rec := post(bytes.NewReader(make([]byte, size)), "push"); rec.Code != http.StatusUnauthorized {
		t.Errorf("unsigned push answered %d, want 401", rec.Code)
	}
	// GitHub's real, small deliveries go on.
	if rec := h.deliver(github.EventPATRequest, "signed", fixture(t, "personal_access_token_request.created.json")); rec.Code != http.StatusAccepted {
		t.Fatalf("signed delivery answered %d during the flood", rec.Code)
	}
	pw.Write(make([]byte, 1<<20))
	pw.Close()
	if code := <-first; code != http.StatusUnauthorized {
		t.Fatalf("first answered %d, want 401", code)
	}
	// Its budget is back.
	if rec := post(bytes.NewReader(make([]byte, size)), github.EventPATRequest); rec.Code != http.StatusUnauthorized {
		t.Errorf("large body after the budget was freed answered %d, want 401", rec.Code)
	}
	if got := h.counter(github.EventPATRequest, "other", "over_budget"); got != 1 {
		t.Errorf("over_budget counted %v times, want 1", got)
	}
}

// A declared length over GitHub's cap is refused before reading.
func TestOversizedBodyRefusedUnread(t *testing.T) {
	h := newHarness(t, "", nil)
	unread := &countingReader{r: strings.NewReader("{}")}
	req := httptest.NewRequest(http.MethodPost, "/github/webhook", unread)
	req.ContentLength = github.MaxPayloadBytes + 1
	req.Header.Set(github.HeaderEvent, github.EventPATRequest)
	rec := httptest.NewRecorder()
	h.bot.WebhookHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || unread.n != 0 {
		t.Errorf("answered %d after reading %d bytes; want 413 unread", rec.Code, unread.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
