package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/logtest"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
)

// binary builds patbot once per test run.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "patbot-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "patbot")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// process is patbot serve running as its own process.
type process struct {
	cmd  *exec.Cmd
	logs *logtest.Buffer
	base string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startProcess(t *testing.T, env map[string]string) *process {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(bin, "serve"), logs: &logtest.Buffer{}, base: "http://" + env["PATBOT_ADDR"]}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "patbot ready", func() bool {
		resp, err := http.Get(p.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// kill stops the process the hard way: SIGKILL, no cleanup.
func (p *process) kill() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

func (p *process) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("patbot did not stop cleanly: %v\n%s", err, p.logs)
	}
}

// webhookPayload is a personal_access_token_request delivery for request id,
// sent by sender ("" for the requester).
func webhookPayload(org string, id int64, action, sender string) []byte {
	owner := map[string]any{"login": fmt.Sprintf("dev%d", id), "id": id, "type": "User"}
	from := owner
	if sender != "" {
		from = map[string]any{"login": sender, "id": 1, "type": "User"}
	}
	b, _ := json.Marshal(map[string]any{
		"action": action,
		"personal_access_token_request": map[string]any{
			"id": id, "owner": owner, "repository_selection": "all", "permissions_added": map[string]any{},
			"permissions_upgraded": map[string]any{}, "permissions_result": map[string]any{},
			"created_at": time.Now().UTC().Format(time.RFC3339), "token_expired": false, "token_expires_at": nil, "token_last_used_at": nil,
		},
		"organization": map[string]any{"login": org, "id": 1},
		"sender":       from,
		"installation": map[string]any{"id": 1},
	})
	return b
}

func send(base, delivery string, body []byte) int {
	req, _ := http.NewRequest(http.MethodPost, base+"/github/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(github.HeaderEvent, github.EventPATRequest)
	req.Header.Set(github.HeaderDelivery, delivery)
	req.Header.Set(github.HeaderSignature, github.Sign([]byte(testWebhookSecret), body))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFaultsAndCrash drives the real binary through a burst of 200
// requests while Slack and GitHub misbehave (429, 5xx, lost answers,
// timeouts, garbage), kills it with SIGKILL in the middle, starts it again,
// and then checks that every request has exactly one card, in its right
// final state.
func TestFaultsAndCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	const n, org, channel = 200, "acme", "C0000000001"
	gh, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gh.Close()
	gh.AddOrg(org, 1)
	gh.SetMembership(org, "alice", "admin", "active")
	for i := range n {
		id := int64(1000 + i)
		gh.AddRequest(org, github.PendingRequest{ID: id, Owner: github.User{Login: fmt.Sprintf("dev%d", id), ID: id}, TokenID: id + 5000,
			TokenName: fmt.Sprintf("token-%d", id), Reason: "work", RepositorySelection: "all"})
	}
	sl := slacktest.New(testBotToken)
	defer sl.Close()

	// Slack and GitHub misbehave throughout the first run.
	sl.Fail(slacktest.Fault{Method: "chat.postMessage", Status: http.StatusTooManyRequests, RetryAfter: 1, Times: 5})
	sl.Fail(slacktest.Fault{Method: "chat.postMessage", Status: http.StatusInternalServerError, Apply: true, Times: 5}) // posted, answer lost
	sl.Fail(slacktest.Fault{Method: "chat.postMessage", Body: "<html>Bad gateway</html>", Status: http.StatusBadGateway, Times: 3})
	// A post that goes through but answers after the client's 10 s timeout:
	// the retry must find the card, not post a second one.
	sl.Fail(slacktest.Fault{Method: "chat.postMessage", Apply: true, Delay: 11 * time.Second, Times: 1})
	sl.Fail(slacktest.Fault{Method: "chat.update", Status: http.StatusBadGateway, Times: 5})
	sl.Fail(slacktest.Fault{Method: "chat.update", Body: "not json", Times: 2})
	listPath := "/orgs/" + org + "/personal-access-token-requests"
	gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: listPath, Status: http.StatusBadGateway, Times: 6})
	gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: listPath, Status: http.StatusTooManyRequests, RetryAfter: 1, Times: 2})
	gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: listPath, Status: http.StatusOK, Body: `[{"id": "garbage"`, Times: 2})
	gh.Fail(githubtest.Fault{Method: http.MethodGet, Path: listPath, Status: http.StatusOK, Body: "[]", Delay: 11 * time.Second, Times: 1}) // a timeout

	env := fakeEnv(t, "orgs:\n  acme: {channel: C0000000001}\nusers: {U0ALICE: alice}\n", gh, sl)
	env["PATBOT_ADDR"] = freeAddr(t)

	first := startProcess(t, env)
	// The burst, 16 at a time; SIGKILL once 80 have been acknowledged.
	var acked atomic.Int32
	acks := make([]bool, n)
	killed := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id := int64(1000 + i)
			if code := send(first.base, fmt.Sprintf("created-%d", id), webhookPayload(org, id, "created", "")); code == http.StatusAccepted {
				acks[i] = true
				if acked.Add(1) == 80 {
					once.Do(func() { first.kill(); close(killed) })
				}
			}
		}()
	}
	wg.Wait()
	<-killed
	t.Logf("acknowledged before the kill: %d of %d", acked.Load(), n)

	second := startProcess(t, env)
	// Redeliver everything, as an operator would from GitHub's settings:
	// acknowledged deliveries are duplicates and change nothing.
	for i := range n {
		id := int64(1000 + i)
		code := send(second.base, fmt.Sprintf("created-%d", id), webhookPayload(org, id, "created", ""))
		if code != http.StatusOK && code != http.StatusAccepted {
			t.Errorf("redelivery of %d: %d", id, code)
		}
		if acks[i] && code != http.StatusOK {
			t.Errorf("delivery %d was acknowledged before the kill, but its redelivery was not a duplicate (%d)", id, code)
		}
	}
	cards := func() map[string]slacktest.Message {
		c := cardsByRequest(sl, channel)
		for key := range c {
			if strings.HasSuffix(key, " (again)") {
				t.Fatalf("two cards for %s", strings.TrimSuffix(key, " (again)"))
			}
		}
		return c
	}
	if !waitUntilLong(60*time.Second, func() bool { return len(cards()) == n }) {
		var missing []string
		c := cards()
		for i := range n {
			if _, ok := c[fmt.Sprintf("%s/%d", org, 1000+i)]; !ok {
				missing = append(missing, fmt.Sprint(1000+i))
			}
		}
		var about []string
		for _, p := range []*process{first, second} {
			for _, line := range strings.Split(p.logs.String(), "\n") {
				if len(missing) > 0 && strings.Contains(line, `"request_id":`+missing[0]) {
					about = append(about, line)
				}
			}
			about = append(about, "----")
		}
		t.Fatalf("%d cards of %d after 60 s; missing %v\nabout %s:\n%s", len(cards()), n, missing, missing[0], strings.Join(about, "\n"))
	}
	// Then outcomes: 30 approved and 20 cancelled in GitHub, 10 approved by
	// alice from Slack.
	for i := range 50 {
		id := int64(1000 + i)
		action := "approved"
		if i >= 30 {
			action = "cancelled"
		}
		gh.RemoveRequest(org, id)
		if code := send(second.base, fmt.Sprintf("%s-%d", action, id), webhookPayload(org, id, action, "an-owner")); code != http.StatusAccepted {
			t.Errorf("%s webhook for %d: %d", action, id, code)
		}
	}
	for i := 50; i < 60; i++ {
		id := int64(1000 + i)
		card := cards()[fmt.Sprintf("%s/%d", org, id)]
		req := slacktest.SignedRequest(testSigning, second.base+"/slack/interactions", time.Now(),
			slacktest.BlockActionPayload("U0ALICE", channel, card.TS, "pat_approve", fmt.Sprintf("%s/%d", org, id)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	want := func(i int) string {
		switch {
		case i < 30:
			return "*Approved* in GitHub by an-owner"
		case i < 50:
			return "*Cancelled* by the requester"
		case i < 60:
			return "*Approved* by <@U0ALICE> (alice)"
		}
		return "" // still pending, with buttons
	}
	wrong := func() []string {
		var out []string
		c := cards()
		for i := range n {
			m := c[fmt.Sprintf("%s/%d", org, 1000+i)]
			if w := want(i); w == "" && !strings.Contains(string(m.Blocks), "pat_approve") || w != "" && !strings.Contains(m.BlockText(), w) {
				out = append(out, fmt.Sprintf("%d (want %q): %s", 1000+i, w, m.BlockText()[max(0, len(m.BlockText())-300):]))
			}
		}
		return out
	}
	if !waitUntilLong(60*time.Second, func() bool { return len(wrong()) == 0 }) {
		bad := wrong()
		id := strings.Fields(bad[0])[0]
		var about []string
		for _, p := range []*process{first, second} {
			for _, line := range strings.Split(p.logs.String(), "\n") {
				if strings.Contains(line, `"request_id":`+id) {
					about = append(about, line)
				}
			}
			about = append(about, "----")
		}
		var told []string
		for _, e := range sl.Ephemerals("U0ALICE") {
			told = append(told, e.Text)
		}
		t.Fatalf("cards not in their final state:\n%s\n\nabout %s:\n%s\n\nalice was told: %q", strings.Join(bad, "\n"), id, strings.Join(about, "\n"), told)
	}
	second.stop(t)

	c := cards()
	for i := range n {
		m := c[fmt.Sprintf("%s/%d", org, 1000+i)]
		if w := want(i); w != "" && strings.Contains(string(m.Blocks), "pat_approve") {
			t.Errorf("request %d is decided but its card has buttons", 1000+i)
		}
	}
	reviews := 0
	for _, call := range gh.Calls() {
		if call.Method == http.MethodPost && strings.HasPrefix(call.Path, listPath+"/") {
			reviews++
		}
	}
	if reviews != 10 {
		t.Errorf("%d reviews sent to GitHub, want 10", reviews)
	}
	// Nothing secret in either run's log.
	for _, p := range []*process{first, second} {
		logs := p.logs.String()
		mustNotLeak(t, "log", logs, testWebhookSecret, testBotToken, testSigning, "PRIVATE KEY", "ghs_")
	}
}

func waitUntilLong(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// TestBenchTool runs the load tool small: it must drive the real binary,
// compare it with the baseline, and find exactly one card per request.
func TestBenchTool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code := run(t.Context(), []string{"bench", "-binary", bin, "-n", "300", "-c", "16", "-rounds", "2", "-samples", "10"}, getenv(nil), &out, &out)
	if code != 0 {
		t.Fatalf("bench exited %d:\n%s", code, &out)
	}
	mustContain(t, "output", out.String(), "baseline receiver", "patbot (durable, fsynced)", "ratio", "webhook → card posted",
		"click → acknowledged", "click → review sent to GitHub", "peak RSS of patbot", "store per request", "want 310, one each ✓")
}

// TestBenchRefusesBurstsLargerThanTheQueue: jobs yield to intake, so a
// burst beyond the queue would be answered 503 in part.
func TestBenchRefusesBurstsLargerThanTheQueue(t *testing.T) {
	var out bytes.Buffer
	code := run(t.Context(), []string{"bench", "-n", "20003", "-rounds", "2"}, getenv(nil), &out, &out)
	if code != exitUsage {
		t.Fatalf("bench exited %d, want %d:\n%s", code, exitUsage, &out)
	}
	mustContain(t, "output", out.String(), "a burst of 10002 webhooks exceeds patbot's queue of 10000 unfinished jobs; use more -rounds")
}
