package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/bot/slacktest"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// openBulkDialog clicks the digest's Review… as user and returns the
// dialog's private metadata.
func (e *e2e) openBulkDialog(user string) string {
	e.t.Helper()
	before := len(e.slack.Views())
	e.slackPost("/slack/interactions", slacktest.BlockActionPayload(user, channel, "1.2", "pat_digest_review", org), time.Now(), testSigning)
	e.waitFor("the dialog", func() bool { return len(e.slack.Views()) == before+1 })
	var opened struct {
		PrivateMetadata string `json:"private_metadata"`
	}
	json.Unmarshal(e.slack.Views()[before].View, &opened)
	return opened.PrivateMetadata
}

// bulkState is a bulk dialog's state as Slack submits it: these requests
// ticked (or all), and a decision.
func bulkState(ids []int64, all bool, decision string) map[string]any {
	var picked []any
	for _, id := range ids {
		picked = append(picked, map[string]any{"value": fmt.Sprint(id)})
	}
	state := map[string]any{
		view.BulkPickBlock + "0_0": map[string]any{view.BulkPickInput: map[string]any{"type": "checkboxes", "selected_options": picked}},
		view.BulkDecisionBlock:     map[string]any{view.BulkDecisionInput: map[string]any{"type": "radio_buttons", "selected_option": map[string]any{"value": decision}}},
		view.BulkReasonBlock:       map[string]any{view.BulkReasonInput: map[string]any{"type": "plain_text_input", "value": ""}},
	}
	if all {
		state[view.BulkAllBlock] = map[string]any{view.BulkAllInput: map[string]any{"type": "checkboxes", "selected_options": []any{map[string]any{"value": "all"}}}}
	}
	return state
}

// The digest's bulk decisions: a request another approver decided meanwhile
// is reported, not decided again; then 150 requests approved in two calls,
// every card updated and every decision credited to the approver.
func TestE2EDigestBulkApproval(t *testing.T) {
	e := newE2E(t)
	const n = 152 // with the fixture's request, 153 pending; bob decides one, the first bulk one: 151 left
	for i := range int64(n) {
		id := 800_000 + i
		e.gh.AddRequest(org, github.PendingRequest{ID: id, Owner: github.User{Login: fmt.Sprint("dev", id), ID: id}, TokenID: 900_000 + i,
			RepositorySelection: "all", CreatedAt: time.Now().Add(-time.Duration(n-i) * time.Hour).UTC().Truncate(time.Second)})
	}
	e.app.bot.Reconcile(context.Background()) // cards for them all
	cardOf := func(id int64) slacktest.Message {
		for _, m := range e.slack.Messages(channel) {
			if cardRequest(m) == fmt.Sprintf("%s/%d", org, id) {
				return m
			}
		}
		t.Fatalf("no card for %d", id)
		return slacktest.Message{}
	}
	// bob, an approver-team member, decides the first on its card.
	first := cardOf(800_000)
	e.slackPost("/slack/interactions", slacktest.BlockActionPayload("U0BOB", channel, first.TS, "pat_approve", fmt.Sprintf("%s/%d", org, 800_000)), time.Now(), testSigning)
	e.waitFor("bob's approval", func() bool { return strings.Contains(cardOf(800_000).BlockText(), "*Approved* by <@U0BOB>") })

	// The digest, and its Review… dialog.
	form := slacktest.SlashCommandForm("U0ALICE", "/pat", "digest", channel, e.slack.ResponseURL("digest"))
	code, body := e.slackPost("/slack/commands", form, time.Now(), testSigning)
	if code != http.StatusOK || !strings.Contains(body, "pat_digest_review") || !strings.Contains(body, fmt.Sprintf("Pending token requests · %s (152)", org)) {
		t.Fatalf("digest: %d %s", code, view.Truncate(body, 600))
	}
	if !strings.Contains(body, " more") || strings.Count(body, "• `") > 20 {
		t.Errorf("the digest lists more than 20: %s", view.Truncate(body, 300))
	}
	meta := e.openBulkDialog("U0ALICE")

	// Turning the page keeps what was ticked; a tick removed after turning
	// back is removed.
	turn := func(meta string, ticked []int64, to int) string {
		t.Helper()
		before := len(e.slack.Views())
		payload, _ := json.Marshal(map[string]any{
			"type": "block_actions", "user": map[string]any{"id": "U0ALICE"}, "team": map[string]any{"id": "T0001"}, "trigger_id": "1.2.3",
			"container": map[string]any{"type": "view", "view_id": "V0001"},
			"view": map[string]any{"id": "V0001", "hash": "h1", "type": "modal", "callback_id": view.CallbackBulk, "private_metadata": meta,
				"state": map[string]any{"values": bulkState(ticked, false, "")}},
			"actions": []any{map[string]any{"action_id": view.ActionBulkPage + "_next", "block_id": "bulk_nav", "type": "button", "value": fmt.Sprint(to)}},
		})
		e.slackPost("/slack/interactions", url.Values{"payload": {string(payload)}}, time.Now(), testSigning)
		e.waitFor(fmt.Sprint("page ", to+1), func() bool { return len(e.slack.Views()) == before+1 })
		var updated struct {
			PrivateMetadata string `json:"private_metadata"`
		}
		raw := e.slack.Views()[before].View
		json.Unmarshal(raw, &updated)
		mustContain(t, fmt.Sprint("page ", to+1), string(raw), fmt.Sprintf("page %d of 4", to+1))
		return updated.PrivateMetadata
	}
	page2 := turn(meta, []int64{800_001}, 1)
	mustContain(t, "page 2's metadata", page2, `"picked":[800001]`)
	page1 := turn(page2, nil, 0)
	if strings.Contains(page1, "picked") {
		t.Errorf("page 1's ticks travel in its metadata too: %s", page1)
	}
	if !strings.Contains(string(e.slack.Views()[2].View), `"initial_options":[{"text":{"type":"plain_text","text":"`) {
		t.Errorf("page 1 shown again without its tick: %s", view.Truncate(string(e.slack.Views()[2].View), 600))
	}
	meta = page1

	submit := func(ids []int64, all bool) {
		t.Helper()
		payload := slacktest.ViewSubmissionStatePayload("U0ALICE", view.CallbackBulk, meta, bulkState(ids, all, "approve"))
		if code, body := e.slackPost("/slack/interactions", payload, time.Now(), testSigning); code != http.StatusOK || body != "" {
			t.Fatalf("submit: %d %s", code, body)
		}
	}
	submit([]int64{800_000, 800_002}, false) // 800001 unticked again
	e.ephemeral("U0ALICE", "Sent 1 approval to GitHub in 1 call")
	e.ephemeral("U0ALICE", "Decided meanwhile, so left alone: 800000 (This request was already approved by <@U0BOB> (bob))")
	if calls := e.gh.CallsTo(http.MethodPost, "/orgs/"+org+"/personal-access-token-requests"); len(calls) != 1 || !strings.Contains(string(calls[0].Body), `"pat_request_ids":[800002]`) {
		t.Errorf("the first bulk review, 800001 unticked: %+v", calls)
	}
	submit(nil, true)
	e.ephemeral("U0ALICE", "Sent 151 approvals to GitHub in 2 calls")

	bulkCalls := e.gh.CallsTo(http.MethodPost, "/orgs/"+org+"/personal-access-token-requests")
	if len(bulkCalls) != 3 {
		t.Errorf("%d bulk calls, want 3", len(bulkCalls))
	}
	e.waitFor("every card approved", func() bool {
		approved := 0
		for _, m := range e.slack.Messages(channel) {
			if strings.Contains(m.BlockText(), "*Approved* by <@U0ALICE> (alice)") {
				approved++
			}
		}
		return approved == n
	})
	if left := len(e.gh.Pending(org)); left != 0 {
		t.Errorf("%d requests still pending in GitHub", left)
	}
	decisions := 0
	for _, ev := range e.audit() {
		if ev.Kind == "decision" && ev.Actor == "alice" {
			decisions++
		}
	}
	if decisions != n {
		t.Errorf("%d decisions credited to alice, want %d", decisions, n)
	}
	if r, _ := e.openStore().Request(org, 800_050); r.State != store.StateApproved || r.Unconfirmed {
		t.Errorf("a request after the bulk approval: %+v", r.State)
	}
}

// A bulk review GitHub refuses (422: one of them was decided in GitHub's
// UI, which patbot had not heard of) falls back to single reviews: the
// others are approved, the one decided elsewhere is shown so.
func TestE2EBulkFallsBackToSingleReviews(t *testing.T) {
	e := newE2E(t)
	for i := range int64(2) {
		id := 810_000 + i
		e.gh.AddRequest(org, github.PendingRequest{ID: id, Owner: github.User{Login: fmt.Sprint("dev", id), ID: id}, TokenID: 910_000 + i, RepositorySelection: "all"})
	}
	e.app.bot.Reconcile(context.Background())
	e.gh.RemoveRequest(org, 810_001) // decided in GitHub's UI; no webhook yet
	meta := e.openBulkDialog("U0ALICE")
	e.slackPost("/slack/interactions", slacktest.ViewSubmissionStatePayload("U0ALICE", view.CallbackBulk, meta, bulkState(nil, true, "approve")), time.Now(), testSigning)
	e.ephemeral("U0ALICE", "Sent 3 approvals to GitHub in 1 call")
	bulk := e.gh.CallsTo(http.MethodPost, "/orgs/"+org+"/personal-access-token-requests")
	if len(bulk) != 1 || bulk[0].Status != http.StatusUnprocessableEntity {
		t.Fatalf("bulk calls = %+v", bulk)
	}
	e.waitFor("each settled", func() bool {
		approved, gone := 0, 0
		for _, m := range e.slack.Messages(channel) {
			text := m.BlockText()
			if strings.Contains(text, "*Approved* by <@U0ALICE>") {
				approved++
			}
			if strings.Contains(text, "No longer pending") {
				gone++
			}
		}
		return approved == 2 && gone == 1
	})
	if singles := e.callsUnder(http.MethodPost, "/orgs/"+org+"/personal-access-token-requests/"); singles != 3 {
		t.Errorf("%d single reviews, want 3", singles)
	}
}
