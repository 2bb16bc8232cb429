package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/github/githubtest"
	"github.com/patbot/patbot/store"
	"github.com/patbot/patbot/store/postgres"
	"github.com/patbot/patbot/store/postgres/pgtest"
)

var cardPosted = regexp.MustCompile(`"msg":"card posted"[^\n]*"request_id":(\d+)`)

// Two patbot processes on one PostgreSQL: webhooks spread over both, one
// SIGKILLed mid-burst and restarted, clicks sent to the replica that did
// not post the card. Every request gets one card, every decision one
// review, and no work is left.
func TestTwoReplicasOnPostgreSQL(t *testing.T) {
	const n = 200
	dbURL := pgtest.Database(t)
	gh, err := githubtest.New(githubtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	gh.AddOrg(org, 1) // the installation webhookPayload names
	gh.SetMembership(org, "alice", "admin", "active")
	for i := range int64(n) {
		id := 500_000 + i
		gh.AddRequest(org, github.PendingRequest{ID: id, Owner: github.User{Login: fmt.Sprint("dev", id), ID: id}, RepositorySelection: "all"})
	}
	sl := slacktest.New(testBotToken)
	t.Cleanup(sl.Close)
	env := fakeEnv(t, e2ePolicy, gh, sl)
	env["PATBOT_DB"] = dbURL
	env["PATBOT_JOB_LEASE"] = "2s"
	env["PATBOT_RECONCILE_INTERVAL"] = "0"
	dir := t.TempDir()
	envs := make([]map[string]string, 2)
	replicas := make([]*process, 2)
	var runs []*process // every process started, for their logs
	for i := range replicas {
		envs[i] = maps.Clone(env)
		envs[i]["PATBOT_ADDR"] = freeAddr(t)
		envs[i]["PATBOT_ADMIN_SOCKET"] = filepath.Join(dir, fmt.Sprint("replica", i, ".sock"))
		replicas[i] = startProcess(t, envs[i])
		runs = append(runs, replicas[i])
	}
	t.Cleanup(func() {
		for i, p := range replicas {
			p.stop(t)
			if t.Failed() {
				t.Logf("replica %d's log (last 8 KB):\n%s", i, tail(p.logs.String(), 8<<10))
			}
		}
		for _, p := range runs {
			mustNotLeak(t, "a replica's log", p.logs.String(), testWebhookSecret, testBotToken, testSigning, "PRIVATE KEY", "ghs_")
		}
	})
	deliver := func(p *process, id int64) int {
		return send(p.base, fmt.Sprint("delivery-", id), webhookPayload(org, id, "created", ""))
	}
	// The burst, spread over both; replica 0 is killed halfway, and what
	// it did not answer goes to replica 1, as GitHub's redelivery would.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var unanswered []int64
	for i := range int64(n) {
		id := 500_000 + i
		if i == n/2 {
			wg.Wait()
			replicas[0].kill()
		}
		target := replicas[i%2]
		if i >= n/2 {
			target = replicas[1]
		}
		wg.Go(func() {
			if code := deliver(target, id); code != http.StatusAccepted {
				mu.Lock()
				unanswered = append(unanswered, id)
				mu.Unlock()
			}
		})
		if i%16 == 15 {
			wg.Wait() // GitHub sends a few at a time
		}
	}
	wg.Wait()
	for _, id := range unanswered {
		if code := deliver(replicas[1], id); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("redelivery of %d: %d", id, code)
		}
	}
	replicas[0] = startProcess(t, envs[0])
	runs = append(runs, replicas[0])

	db, err := postgres.Open(context.Background(), dbURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cards := func() map[string]int {
		perRequest := map[string]int{}
		for _, m := range sl.Messages(channel) {
			perRequest[cardRequest(m)]++
		}
		return perRequest
	}
	waitFor(t, "a card for every request, and no work left", func() bool {
		jobs, err := db.CountJobs()
		return err == nil && jobs == 0 && len(cards()) == n
	})
	for key, count := range cards() {
		if count != 1 {
			t.Errorf("%s has %d cards", key, count)
		}
	}

	// Clicks go to the replica that did not post the card.
	postedBy := map[int64]int{} // replica index; runs 0 and 2 are replica 0
	for i, p := range runs {
		for _, m := range cardPosted.FindAllStringSubmatch(p.logs.String(), -1) {
			id, _ := strconv.ParseInt(m[1], 10, 64)
			postedBy[id] = map[int]int{0: 0, 1: 1, 2: 0}[i]
		}
	}
	tsOf := map[string]string{}
	for _, m := range sl.Messages(channel) {
		tsOf[cardRequest(m)] = m.TS
	}
	const clicked = 40
	for i := range int64(clicked) {
		id := 500_000 + i*5
		key := fmt.Sprintf("%s/%d", org, id)
		other := replicas[1-postedBy[id]]
		form := slacktest.BlockActionPayload("U0ALICE", channel, tsOf[key], "pat_approve", key)
		for range 2 { // a double click, even
			req := slacktest.SignedRequest(testSigning, other.base+"/slack/interactions", time.Now(), form)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	waitFor(t, "every clicked request approved", func() bool {
		approved, err := db.Requests(org, store.StateApproved)
		return err == nil && len(approved) == clicked
	})
	reviews := map[string]int{}
	for _, c := range gh.Calls() {
		if c.Method == http.MethodPost && strings.HasPrefix(c.Path, "/orgs/"+org+"/personal-access-token-requests/") {
			reviews[c.Path]++
		}
	}
	if len(reviews) != clicked {
		t.Errorf("%d requests reviewed, want %d", len(reviews), clicked)
	}
	for path, count := range reviews {
		if count != 1 {
			t.Errorf("%s reviewed %d times", path, count)
		}
	}
	if pending, _ := db.Requests(org, store.StatePending); len(pending) != n-clicked {
		t.Errorf("%d pending, want %d", len(pending), n-clicked)
	}
	if jobs, _ := db.CountJobs(); jobs != 0 {
		t.Errorf("%d jobs left", jobs)
	}
	for i, p := range runs {
		t.Logf("run %d posted %d cards", i, strings.Count(p.logs.String(), `"msg":"card posted"`))
	}
}

// cardRequest is the request a card's metadata names ("org/id").
func cardRequest(m slacktest.Message) string {
	var meta struct {
		EventPayload struct {
			Request string `json:"request"`
		} `json:"event_payload"`
	}
	json.Unmarshal(m.Metadata, &meta)
	return meta.EventPayload.Request
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
