package bot_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot"
	"github.com/patbot/patbot/bot/clocktest"
	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store/bolt"
)

const cardChannel = "C0000000001"

// withApprovers maps Slack users to GitHub logins.
func withApprovers(d *bot.Deps) {
	d.Config = bot.Config{Orgs: policy.Orgs, Users: map[string]string{"U0ALICE": "alice", "U0HAL": "halain987"}}
}

// posted delivers the fixture's created webhook and waits for its card.
func (h *harness) posted() slacktest.Message {
	h.t.Helper()
	h.deliver(github.EventPATRequest, "created", fixture(h.t, "personal_access_token_request.created.json"))
	h.eventually("card posted and recorded", func() bool {
		r, err := h.db.Request("github-ssh-authority", 415440)
		return len(h.slack.Messages(cardChannel)) >= 1 && err == nil && r.Card.TS != ""
	})
	return h.slack.Messages(cardChannel)[0]
}

func (h *harness) click(user, actionID string) int {
	h.t.Helper()
	card := h.slack.Messages(cardChannel)[0]
	form := slacktest.BlockActionPayload(user, cardChannel, card.TS, actionID, "github-ssh-authority/415440")
	rec := httptest.NewRecorder()
	h.bot.InteractionsHandler().ServeHTTP(rec, slacktest.SignedRequest(signingSecret, "/slack/interactions", h.clock.Now(), form))
	return rec.Code
}

func (h *harness) cardText() string { return h.slack.Messages(cardChannel)[0].BlockText() }

// newHarnessWith builds a second bot on h's store (or, when h's store was
// closed, the same file opened again: a restart) and fakes.
func newHarnessWith(t *testing.T, h *harness, tune func(*bot.Deps)) *harness {
	t.Helper()
	h2 := &harness{t: t, dbPath: h.dbPath, clock: h.clock, db: h.db, gh: h.gh, slack: h.slack, reg: h.reg, logs: h.logs}
	if h2.db == nil {
		db, err := bolt.Open(h.dbPath, bolt.Options{Now: h.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		h2.db = db
		t.Cleanup(func() { db.Close() })
	}
	client, _ := github.New(github.Config{AppID: h.gh.AppID, PrivateKey: h.gh.PrivateKeyPEM, BaseURL: h.gh.URL})
	deps := bot.Deps{
		Store: h2.db, GitHub: client, Config: policy, WebhookSecret: []byte(secret),
		Slack:               bot.NewSlackClient(bot.SlackConfig{BotToken: slackToken, APIURL: h.slack.URL}),
		SlackSigningSecret:  signingSecret,
		ResponseURLPrefixes: []string{h.slack.ResponseURL("")},
		Logger:              slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:             nil, RetryBackoff: 10 * time.Millisecond,
		ReconcileInterval: -1,
		Clock:             h.clock,
	}
	tune(&deps)
	var err error
	if h2.bot, err = bot.New(deps); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h2.stop != nil {
			h2.stop()
		}
	})
	return h2
}

// Read-only views trust a verdict for a minute; a decision or a revocation
// asks GitHub every time, so that a demoted owner stops deciding at once.
func TestAuthorizationCachedForViewsNotForDecisions(t *testing.T) {
	clock := clocktest.Frozen(clocktest.Epoch)
	h := newHarness(t, "", func(d *bot.Deps) { withApprovers(d); d.Clock = clock })
	h.start()
	h.posted()
	membership := "/orgs/github-ssh-authority/memberships/alice"
	checks := func() int { return len(h.gh.CallsTo(http.MethodGet, membership)) }

	// Two listings within the minute: one GitHub check.
	for i := range 2 {
		h.command("U0ALICE", "requests", h.slack.ResponseURL(fmt.Sprint("r", i)))
		h.eventually("listing answered", func() bool { return len(h.slack.Responses()) == i+1 })
	}
	if n := checks(); n != 1 {
		t.Fatalf("membership checked %d times for two listings, want 1", n)
	}
	if !strings.Contains(h.slack.Responses()[1].Text(), "1 pending token request") {
		t.Errorf("listing: %s", h.slack.Responses()[1].Text())
	}

	// Demoted while the owner verdict is cached: the click is refused.
	h.gh.SetMembership("github-ssh-authority", "alice", "member", "active")
	h.click("U0ALICE", bot.ActionApprove)
	h.eventually("refused", func() bool { return len(h.slack.Ephemerals("U0ALICE")) == 1 })
	if n := checks(); n != 2 {
		t.Errorf("membership checked %d times, want 2 (the click asks GitHub)", n)
	}
	if _, reviewed := h.gh.Review("github-ssh-authority", 415440); reviewed {
		t.Fatal("a demoted owner's approval reached GitHub")
	}

	// Made an owner again: the next click is taken at once, though a
	// refusal was cached a moment ago.
	h.gh.SetMembership("github-ssh-authority", "alice", "admin", "active")
	h.click("U0ALICE", bot.ActionApprove)
	h.eventually("approved", func() bool { return strings.Contains(h.cardText(), "*Approved* by <@U0ALICE>") })
	if n := checks(); n != 3 {
		t.Errorf("membership checked %d times, want 3", n)
	}
}

func TestInteractionQueueFullAnswers503(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	// GitHub holds every membership check until the test ends, so each of
	// the 8 interaction workers stays on its first click.
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	membership := "/orgs/github-ssh-authority/memberships/"
	h.gh.Fail(githubtest.Fault{Path: membership, Status: http.StatusNotFound, Hold: hold})
	for range 8 {
		if code := h.click("U0ALICE", bot.ActionApprove); code != http.StatusOK {
			t.Fatalf("click answered %d with idle workers", code)
		}
	}
	h.eventually("every worker busy", func() bool { return len(h.gh.CallsTo(http.MethodGet, membership+"alice")) == 8 })
	// Now exactly 256 clicks wait in the queue, and the rest are refused.
	codes := map[int]int{}
	for range 300 {
		codes[h.click("U0ALICE", bot.ActionApprove)]++
	}
	if codes[http.StatusOK] != 256 || codes[http.StatusServiceUnavailable] != 44 {
		t.Errorf("answers = %v, want 256 accepted and 44 refused with 503", codes)
	}
}

func TestCardUpdateRetriedAfterSlack5xx(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	h.slack.Fail(slacktest.Fault{Method: "chat.update", Status: http.StatusBadGateway, Times: 2})
	h.click("U0ALICE", bot.ActionApprove)
	h.eventually("card approved", func() bool { return strings.Contains(h.cardText(), "*Approved* by <@U0ALICE>") })
	if n := len(h.slack.Calls("chat.update")); n != 3 {
		t.Errorf("chat.update called %d times, want 3 (two 502s, then the update)", n)
	}
}

func TestCardPostNotRepeatedAfterSlack5xx(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	// A 5xx may hide a post that went through: patbot does not post again
	// at once (the job retries later, after checking the channel).
	h.slack.Fail(slacktest.Fault{Method: "chat.postMessage", Status: http.StatusInternalServerError, Times: 1})
	h.start()
	h.deliver(github.EventPATRequest, "created", fixture(t, "personal_access_token_request.created.json"))
	h.eventually("card posted on the job's retry", func() bool { return len(h.slack.Messages(cardChannel)) == 1 })
	if n := len(h.slack.Calls("chat.postMessage")); n != 2 {
		t.Errorf("chat.postMessage called %d times, want 2 (the failed one, then the job's retry)", n)
	}
}

func TestSlack429HonoursRetryAfter(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.slack.Fail(slacktest.Fault{Method: "chat.postMessage", Status: http.StatusTooManyRequests, RetryAfter: 1, Times: 1})
	h.start()
	h.posted()
	if n := len(h.slack.Calls("chat.postMessage")); n != 2 {
		t.Errorf("chat.postMessage called %d times, want 2", n)
	}
}

func TestCardNotPostedTwiceWhenAnAnswerIsLost(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	// Slack posts the card but patbot never hears so: the job fails, and
	// its retry finds the card through its metadata instead of posting a
	// second one.
	h.slack.Fail(slacktest.Fault{Method: "chat.postMessage", Status: http.StatusInternalServerError, Times: 1, Apply: true})
	h.start()
	h.deliver(github.EventPATRequest, "created", fixture(t, "personal_access_token_request.created.json"))
	h.eventually("job finished", func() bool { return len(h.jobs()) == 0 })
	if n := len(h.slack.Messages(cardChannel)); n != 1 {
		t.Fatalf("%d cards, want 1", n)
	}
	if n := len(h.slack.Calls("chat.postMessage")); n != 1 {
		t.Errorf("chat.postMessage called %d times, want 1", n)
	}
	r, _ := h.db.Request("github-ssh-authority", 415440)
	if r.Card.TS != h.slack.Messages(cardChannel)[0].TS {
		t.Errorf("recorded card %+v is not the posted one", r.Card)
	}
	// The recorded card is the live one: a decision updates it.
	h.click("U0ALICE", bot.ActionApprove)
	h.eventually("card approved", func() bool { return strings.Contains(h.cardText(), "*Approved*") })
}

func TestCardUpdateRetriedByAJobWhenSlackAnswersGarbage(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	h.start()
	h.posted()
	// Not retried inside the call (it is no 5xx): a job retries it.
	h.slack.Fail(slacktest.Fault{Method: "chat.update", Body: "not json", Times: 1})
	h.click("U0ALICE", bot.ActionApprove)
	h.eventually("card approved", func() bool { return strings.Contains(h.cardText(), "*Approved* by <@U0ALICE>") })
	h.eventually("retry job finished", func() bool { return len(h.jobs()) == 0 })
	r, _ := h.db.Request("github-ssh-authority", 415440)
	if r.CardOutdated {
		t.Error("the card is still marked outdated")
	}
}

func TestCardPostedUnrecordedThenDecidedIsFoundAndUpdated(t *testing.T) {
	h := newHarness(t, "", withApprovers)
	// Slack takes the post but answers after the client gives up.
	h.slack.Fail(slacktest.Fault{Method: "chat.postMessage", Apply: true, Delay: time.Second, Times: 1})
	h2 := newHarnessWith(t, h, func(d *bot.Deps) {
		withApprovers(d)
		d.Slack = bot.NewSlackClient(bot.SlackConfig{BotToken: slackToken, APIURL: h.slack.URL, Timeout: 200 * time.Millisecond})
		d.RetryBackoff = 2 * time.Second // the outcome arrives before the retry
	})
	h2.start()
	h2.deliver(github.EventPATRequest, "created", fixture(t, "personal_access_token_request.created.json"))
	h2.eventually("the post reached Slack", func() bool { return len(h.slack.Messages(cardChannel)) == 1 })
	h2.eventually("the job failed once", func() bool { j, err := h.db.Job(1); return err == nil && j.Attempts == 1 })
	// Approved in GitHub before the job's retry.
	h2.deliver(github.EventPATRequest, "approved", derived(t, "personal_access_token_request.created.json", "created", "approved"))
	h2.eventually("the card shows the approval", func() bool { return strings.Contains(h.cardText(), "*Approved* in GitHub") })
	h2.eventually("every job finished", func() bool { return len(h.jobs()) == 0 })
	if n := len(h.slack.Messages(cardChannel)); n != 1 {
		t.Errorf("%d cards, want 1", n)
	}
	if strings.Contains(string(h.slack.Messages(cardChannel)[0].Blocks), "pat_approve") {
		t.Error("the approved card still has buttons")
	}
	r, _ := h.db.Request("github-ssh-authority", 415440)
	if r.Card.TS == "" || r.CardOutdated {
		t.Errorf("card = %+v, outdated %v", r.Card, r.CardOutdated)
	}
}
