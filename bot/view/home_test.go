package view

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
)

// A Home tab longer than Slack allows is paged, within 100 blocks a page.
func TestHomePaged(t *testing.T) {
	var reqs []store.Request
	for i := range 80 {
		reqs = append(reqs, store.Request{Org: "acme", ID: int64(i + 1), Owner: "dev", TokenName: "t", State: store.StatePending, CreatedAt: cardNow})
	}
	v := HomeView{Decide: []HomeOrg{{Org: "acme", Requests: reqs}}, Now: cardNow.Add(time.Hour)}
	first := Home(v)
	if n := len(first.Blocks.BlockSet); n > 100 {
		t.Fatalf("%d blocks on a page", n)
	}
	raw, _ := json.Marshal(first)
	if !strings.Contains(string(raw), `"pat_home_page_next"`) || !strings.Contains(string(raw), "Page 1 of 2") || !strings.Contains(string(raw), `"type":"home"`) {
		t.Errorf("first page lacks its paging: %s", raw[:200])
	}
	v.Page = 1
	second, _ := json.Marshal(Home(v))
	if !strings.Contains(string(second), "Previous") || !strings.Contains(string(second), "Your fine-grained tokens") {
		t.Errorf("second page: %s", second)
	}
}
