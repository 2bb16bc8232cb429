package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/patbot/patbot/store"
)

func link(slackUser string, githubID int64, login string) store.Link {
	return store.Link{SlackUser: slackUser, GitHubID: githubID, GitHubLogin: login, LinkedAt: Epoch,
		Token:        store.Sealed{KeyID: "k1", Nonce: []byte{1, 2, 3}, Data: []byte("sealed")},
		TokenExpires: Epoch.Add(8 * time.Hour)}
}

// One GitHub account per Slack user and back: a write that would break
// either changes nothing.
func testLinksOneToOne(t *testing.T, b Backend) {
	db := b.open(t)
	if _, err := db.Link("U1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("link before any = %v, want ErrNotFound", err)
	}
	alice := link("U1", 101, "alice")
	if err := db.PutLink(alice); err != nil {
		t.Fatal(err)
	}
	got, err := db.Link("U1")
	if err != nil || got.GitHubID != 101 || got.GitHubLogin != "alice" || string(got.Token.Data) != "sealed" ||
		got.Token.KeyID != "k1" || !got.TokenExpires.Equal(alice.TokenExpires) {
		t.Fatalf("link = %+v, %v", got, err)
	}
	if err := db.PutLink(link("U2", 101, "alice")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second Slack user for one account = %v, want ErrConflict", err)
	}
	if err := db.PutLink(link("U1", 202, "bob")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second account for one Slack user = %v, want ErrConflict", err)
	}
	renamed := link("U1", 101, "alice-renamed")
	if err := db.PutLink(renamed); err != nil {
		t.Errorf("linking the same account again = %v", err)
	}
	if all, err := db.Links(); err != nil || len(all) != 1 || all[0].GitHubLogin != "alice-renamed" {
		t.Fatalf("links = %+v, %v", all, err)
	}
	if err := db.PutLink(link("U2", 202, "bob")); err != nil {
		t.Fatal(err)
	}
	gone, err := db.DeleteLink("U1")
	if err != nil || gone.GitHubID != 101 {
		t.Fatalf("delete = %+v, %v", gone, err)
	}
	if _, err := db.DeleteLink("U1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting twice = %v, want ErrNotFound", err)
	}
	// Unlinked, the account is free for another Slack user.
	if err := db.PutLink(link("U3", 101, "alice")); err != nil {
		t.Errorf("linking a freed account = %v", err)
	}
	db = b.Reopen(t, db)
	if all, err := db.Links(); err != nil || len(all) != 2 || all[0].SlackUser != "U2" || all[1].SlackUser != "U3" {
		t.Fatalf("links after reopen = %+v, %v", all, err)
	}
}

// UpdateLink serializes its callers: of concurrent refreshes of one link,
// each sees the last one's result.
func testUpdateLinkSerializes(t *testing.T, b Backend) {
	db := b.open(t)
	if _, err := db.UpdateLink("U1", func(*store.Link) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update without a link = %v, want ErrNotFound", err)
	}
	if err := db.PutLink(link("U1", 101, "alice")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := db.UpdateLink("U1", func(l *store.Link) error {
				l.Token.Data = append(l.Token.Data, '+')
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := db.Link("U1")
	if want := "sealed" + "++++++++++++++++++++"; string(got.Token.Data) != want {
		t.Errorf("after 20 concurrent updates: %q, want %q", got.Token.Data, want)
	}
	boom := errors.New("boom")
	if _, err := db.UpdateLink("U1", func(l *store.Link) error { l.Broken = "x"; return boom }); !errors.Is(err, boom) {
		t.Errorf("a failing change = %v, want boom", err)
	}
	if _, err := db.UpdateLink("U1", func(l *store.Link) error { l.GitHubID = 7; return nil }); err == nil {
		t.Error("an update moved the link to another account")
	}
	if got, _ := db.Link("U1"); got.Broken != "" || got.GitHubID != 101 {
		t.Errorf("failed updates changed the link: %+v", got)
	}
}

// A sign-in is taken once, however many try at the same time.
func testSignInsTakenOnce(t *testing.T, b Backend) {
	db := b.open(t)
	s := store.SignIn{Key: "k", Stage: "authorize", SlackUser: "U1", Expires: Epoch.Add(10 * time.Minute),
		Secret: store.Sealed{KeyID: "k1", Data: []byte("verifier")}}
	if err := db.PutSignIn(store.SignIn{Key: "nokey"}); err == nil {
		t.Error("a sign-in without expiry was accepted")
	}
	if err := db.PutSignIn(s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	taken := 0
	for range 10 {
		wg.Go(func() {
			got, err := db.TakeSignIn("k")
			if err == nil {
				mu.Lock()
				taken++
				mu.Unlock()
				if got.SlackUser != "U1" || string(got.Secret.Data) != "verifier" {
					t.Errorf("took %+v", got)
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if taken != 1 {
		t.Errorf("taken %d times, want once", taken)
	}
	db.PutSignIn(store.SignIn{Key: "old", Expires: Epoch.Add(time.Minute)})
	db.PutSignIn(store.SignIn{Key: "new", Expires: Epoch.Add(time.Hour)})
	if n, err := db.PruneSignIns(Epoch.Add(2*time.Minute), 100); err != nil || n != 1 {
		t.Fatalf("prune = %d, %v; want 1", n, err)
	}
	if _, err := db.TakeSignIn("old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("expired sign-in survived pruning: %v", err)
	}
	if _, err := db.TakeSignIn("new"); err != nil {
		t.Errorf("live sign-in pruned: %v", err)
	}
}
