package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/patbot/patbot/bot/identity"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/store"
)

// The App Home: the Events API (app_home_opened, over HTTP or Socket
// Mode), the Home tab each user sees, and its refresh when what it shows
// changes.

const (
	// homeActiveFor is how long after opening it a user's Home tab is
	// kept up to date.
	homeActiveFor = 24 * time.Hour
	// homeRefreshEvery bounds the refreshes of one user's Home tab.
	homeRefreshEvery = time.Minute
	// homeCheckEvery is how often patbot looks for Home tabs to refresh.
	homeCheckEvery = 10 * time.Second
	// maxHomes bounds the users whose Home tabs are tracked.
	maxHomes = 10_000
)

// homes tracks who opened the Home tab (on this replica), and whether
// anything it shows changed since.
type homes struct {
	mu        sync.Mutex
	opened    map[string]time.Time // Slack user -> when they last opened it
	published map[string]time.Time // Slack user -> when patbot last published it
	page      map[string]int       // Slack user -> the page they turned to
	changed   bool
}

func newHomes() *homes {
	return &homes{opened: map[string]time.Time{}, published: map[string]time.Time{}, page: map[string]int{}}
}

// somethingChanged marks every Home tab as possibly out of date.
func (b *Bot) somethingChanged() {
	b.homes.mu.Lock()
	b.homes.changed = true
	b.homes.mu.Unlock()
}

// EventsHandler receives Slack's Events API over HTTP: signed like Slack's
// other requests; url_verification answered; events deduplicated by
// event_id in the store.
func (b *Bot) EventsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := b.verifySlack(w, r)
		if !ok {
			return
		}
		ev, err := slackevents.ParseEvent(json.RawMessage(body), slackevents.OptionNoVerifyToken())
		if err != nil {
			b.metrics.slackRequests.WithLabelValues("/slack/events", "malformed").Inc()
			http.Error(w, "malformed event", http.StatusBadRequest)
			return
		}
		b.metrics.slackRequests.WithLabelValues("/slack/events", "ok").Inc()
		if ev.Type == slackevents.URLVerification {
			var ch slackevents.ChallengeResponse
			if err := json.Unmarshal(body, &ch); err != nil {
				http.Error(w, "malformed challenge", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, ch.Challenge)
			return
		}
		if err := b.handleEvent(ev); err != nil {
			// Slack sends it again.
			http.Error(w, "cannot record the event", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// handleEvent acts on one Events API event, once: a redelivery (Slack
// retries when it is not answered in 3 seconds) changes nothing. It fails
// only when the store cannot record the event.
func (b *Bot) handleEvent(ev slackevents.EventsAPIEvent) error {
	cb, ok := ev.Data.(*slackevents.EventsAPICallbackEvent)
	if !ok || ev.Type != slackevents.CallbackEvent {
		return nil
	}
	opened, ok := ev.InnerEvent.Data.(*slackevents.AppHomeOpenedEvent)
	if !ok || opened.Tab != "home" || opened.User == "" {
		return nil // not an event patbot subscribes to
	}
	accepted, _, err := b.store.AcceptDelivery(store.Delivery{ID: "slack-event/" + cb.EventID, Event: "slack_event", Action: "app_home_opened",
		Outcome: "handled"}, nil)
	if err != nil {
		b.log.Error("cannot record a Slack event", "event_id", cb.EventID, "err", err)
		return err
	}
	if !accepted {
		return nil
	}
	b.homes.mu.Lock()
	if len(b.homes.opened) >= maxHomes {
		clear(b.homes.opened)
		clear(b.homes.published)
		clear(b.homes.page)
	}
	b.homes.opened[opened.User] = b.now()
	page := b.homes.page[opened.User]
	b.homes.mu.Unlock()
	b.submit(func(ctx context.Context) { b.publishHome(ctx, opened.User, page) })
	return nil
}

// refreshHomes publishes again the Home tabs opened in the last day, when
// something they show may have changed, at most once a minute each, at
// the page each user turned to.
func (b *Bot) refreshHomes(ctx context.Context) {
	b.homes.mu.Lock()
	if !b.homes.changed {
		b.homes.mu.Unlock()
		return
	}
	now := b.now()
	due := map[string]int{} // Slack user -> page
	pending := false
	for user, at := range b.homes.opened {
		switch {
		case now.Sub(at) > homeActiveFor:
			delete(b.homes.opened, user)
			delete(b.homes.published, user)
			delete(b.homes.page, user)
		case now.Sub(b.homes.published[user]) >= homeRefreshEvery:
			due[user] = b.homes.page[user]
		default:
			pending = true // refreshed once its minute has passed
		}
	}
	b.homes.changed = pending
	b.homes.mu.Unlock()
	for _, user := range slices.Sorted(maps.Keys(due)) {
		b.publishHome(ctx, user, due[user])
	}
}

// publishHome builds and publishes a user's Home tab.
func (b *Bot) publishHome(ctx context.Context, user string, page int) {
	v := view.HomeView{Now: b.now(), Page: page}
	me, known := b.whoIs(user)
	if b.identity != nil {
		switch l, err := b.identity.Link(user); {
		case err == nil:
			v.Link = fmt.Sprintf(":link: You are linked to GitHub as *%s*.", view.Escape(l.GitHubLogin))
		case errors.Is(err, store.ErrNotFound) || errors.Is(err, identity.ErrNotLinked):
			v.Link = ":grey_question: Your Slack account is not linked to GitHub: run `/pat link`."
		}
	}
	if !known {
		v.Notes = append(v.Notes, b.notLinked(user))
	}
	for _, org := range b.config().sorted("") {
		if !known {
			break
		}
		reqs, err := b.store.Requests(org.Login, store.StatePending, store.StateDeciding)
		if err != nil {
			v.Notes = append(v.Notes, view.Escape(org.Login)+": patbot could not read its records.")
			continue
		}
		slices.SortFunc(reqs, func(a, b store.Request) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, r := range reqs {
			if strings.EqualFold(r.Owner, me.login) {
				v.Mine = append(v.Mine, r)
			}
		}
		if verdict, err := b.authz.check(ctx, org, me.login); err == nil && verdict.allowed && me.acceptedBy(org) {
			mayDecide := slices.DeleteFunc(slices.Clone(reqs), func(r store.Request) bool { return strings.EqualFold(r.Owner, me.login) })
			v.Decide = append(v.Decide, view.HomeOrg{Org: org.Login, Requests: mayDecide})
		}
		grants, err := b.gh.ListGrants(ctx, org.Login, me.login)
		if err != nil {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: your tokens could not be listed (%s).", view.Escape(org.Login), describeGitHubError(err)))
			continue
		}
		for _, g := range grants {
			v.Grants = append(v.Grants, view.GrantEntry{Org: org.Login, Grant: g})
		}
	}
	err := retrySlack(ctx, func() error {
		_, err := b.slack.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: user, View: view.Home(v)})
		return err
	})
	if err != nil {
		b.log.Warn("cannot publish the Home tab", "slack_user", user, "err", err)
		return
	}
	b.homes.mu.Lock()
	b.homes.published[user] = b.now()
	b.homes.page[user] = page
	b.homes.mu.Unlock()
}

// homePage turns a user's Home tab to another page.
func (b *Bot) homePage(ic slack.InteractionCallback, a *slack.BlockAction) error {
	page, _ := strconv.Atoi(a.Value)
	return b.submit(func(ctx context.Context) { b.publishHome(ctx, ic.User.ID, page) })
}
