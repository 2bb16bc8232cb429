package store

import (
	"testing"
	"time"
)

func TestHistoryIsBounded(t *testing.T) {
	var r Request
	at := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	r.SetState(StatePending, at, SourceWebhook, "", "created")
	for range 2 * maxHistory {
		r.SetState(StateDeciding, at, SourceSlack, "a", "")
		r.SetState(StatePending, at, SourceSlack, "a", "failed")
	}
	if len(r.History) != maxHistory {
		t.Fatalf("history has %d entries, want %d", len(r.History), maxHistory)
	}
	if r.History[0].Note != "created" {
		t.Errorf("first entry lost: %+v", r.History[0])
	}
}
