package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/patbot/patbot/bot/identity"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// decisionRequest is an approver's click, as patbot received it.
type decisionRequest struct {
	org       string // as in the button value, lower case
	id        int64
	action    string // github.ActionApprove or github.ActionDeny
	reason    string // deny only
	slackUser string
	channel   string        // where to answer the approver
	grantFor  time.Duration // approve: how long the approver picked (grant_for_choices)
}

var (
	errNoRecord = errors.New("no record of this request")
	errTaken    = errors.New("request is not pending")
)

// approver is a Slack user allowed to decide one request.
type approver struct {
	org      Org
	login    string
	githubID int64 // when linked
	why      string
	// cred is the approver's own token, when the org decides as the
	// approver.
	cred *identity.Credential
}

// as is the token a decision is sent with: the approver's, or "" for the
// App.
func (a approver) as() github.UserToken {
	if a.cred == nil {
		return ""
	}
	return a.cred.Token
}

// refusal is why a Slack user may not go on; signIn when signing in to
// GitHub would help.
type refusal struct {
	text   string
	signIn bool
}

// checkApprover decides whether d.slackUser may decide the request. It
// returns the refusal to show the user, or a zero refusal with the
// approver. Every refusal is recorded in the audit trail. GitHub is asked
// afresh (verify) when the answer leads to a decision, and the cache may
// serve (check) when it only shapes what the user sees.
func (b *Bot) checkApprover(ctx context.Context, d decisionRequest, ask func(context.Context, Org, string) (verdict, error)) (approver, refusal) {
	var who person
	refuse := func(detail, text string) (approver, refusal) {
		b.audit(store.AuditEvent{Kind: "refused", Org: d.org, RequestID: d.id, Action: d.action, Actor: who.login, ActorID: who.githubID,
			SlackUser: d.slackUser, Source: store.SourceSlack, Detail: detail})
		b.metrics.refusals.WithLabelValues(detail).Inc()
		b.log.Info("decision refused", LogOrg, d.org, LogRequest, d.id, "slack_user", d.slackUser, LogActor, who.login, "why", detail)
		return approver{}, refusal{text: text, signIn: b.identity != nil && (detail == "slack user not mapped" || detail == "not linked")}
	}
	org, ok := b.config().Org(d.org)
	if !ok {
		return refuse("org not configured", fmt.Sprintf("patbot does not serve the organization %s. Nothing was changed.", view.Escape(d.org)))
	}
	who, ok = b.whoIs(d.slackUser)
	if !ok {
		return refuse("slack user not mapped", b.notLinked(d.slackUser)+" Nothing was changed.")
	}
	if !who.acceptedBy(org) || org.asApprover() && !who.linked {
		why := "decide only as the GitHub account they signed in to"
		if org.asApprover() {
			why = "decide only as themselves: patbot sends the decision to GitHub with the approver's own sign-in"
		}
		return refuse("not linked", fmt.Sprintf("In %s approvers %s. Sign in to GitHub to link your account; nothing was changed.", view.Escape(org.Login), why))
	}
	r, err := b.store.Request(d.org, d.id)
	if err != nil {
		return refuse("no record", fmt.Sprintf("patbot has no record of request %d. Nothing was changed.", d.id))
	}
	if r.State != store.StatePending {
		return approver{}, refusal{text: b.alreadyText(r)}
	}
	if strings.EqualFold(who.login, r.Owner) {
		return refuse("own request", "You cannot decide your own token request: another approver has to. Nothing was changed.")
	}
	v, err := ask(ctx, org, who.login)
	if err != nil {
		b.log.Warn("cannot check approver with GitHub", LogOrg, org.Login, LogActor, who.login, "err", err)
		return refuse("authorization check failed", fmt.Sprintf("patbot could not check your permission with GitHub (%s). Nothing was changed; try again in a minute.", describeGitHubError(err)))
	}
	if !v.allowed {
		return refuse("not authorized", fmt.Sprintf("Only owners of %s%s may decide token requests, and GitHub says %s. Nothing was changed.",
			view.Escape(org.Login), teamsClause(org), view.Escape(v.why)))
	}
	if org.asApprover() && !v.owner {
		return refuse("not an owner", fmt.Sprintf("In %s patbot sends decisions to GitHub as the approver, and GitHub lets only organization owners decide token requests; you are %s. Nothing was changed.",
			view.Escape(org.Login), view.Escape(v.why)))
	}
	return approver{org: org, login: who.login, githubID: who.githubID, why: v.why}, refusal{}
}

func teamsClause(org Org) string {
	if len(org.ApproverTeams) == 0 {
		return ""
	}
	return " and members of its approver teams (" + view.Escape(strings.Join(org.ApproverTeams, ", ")) + ")"
}

// alreadyText tells a late clicker where the request stands.
func (b *Bot) alreadyText(r store.Request) string {
	d := r.Decision
	switch r.State {
	case store.StateDeciding:
		if d != nil {
			return fmt.Sprintf("%s is already deciding this request.", view.Decider(d))
		}
	case store.StateApproved, store.StateDenied:
		verb := map[store.State]string{store.StateApproved: "approved", store.StateDenied: "denied"}[r.State]
		if d != nil {
			where := ""
			if d.Source != store.SourceSlack && d.Source != store.SourcePolicy {
				where = " in GitHub"
			}
			return fmt.Sprintf("This request was already %s%s by %s.", verb, where, view.Decider(d))
		}
		return "This request was already " + verb + " in GitHub."
	case store.StateCancelled:
		return "The requester cancelled this request."
	}
	return "This request is no longer pending in GitHub."
}

// timerSettle is the kind of the durable timer written with every claim,
// in the claim's own transaction. It settles the claim from GitHub when
// patbot cannot see it through itself: a crash between the review and the
// card, or an answer lost to a timeout or a 5xx. A claim patbot settles
// itself removes its timer.
const timerSettle = "settle"

// settleAfter is how long after a claim its timer asks GitHub: well past
// the time GitHub takes to answer a review (it gives up at 10 s).
const settleAfter = 30 * time.Second

// settlePayload is what the settle timer needs beyond the request's record.
type settlePayload struct {
	Org     string    `json:"org"`
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`      // the claim's time: a later claim has a timer of its own
	Channel string    `json:"channel"` // where to tell the approver
}

// decide carries out an approver's decision: check who asks, count the
// approval when the rules ask for several, claim the request so that no
// one else decides it, send the review to GitHub, and show the outcome. It
// runs after Slack has been acknowledged.
func (b *Bot) decide(ctx context.Context, d decisionRequest) {
	log := b.log.With(LogOrg, d.org, LogRequest, d.id, LogAction, d.action, "slack_user", d.slackUser)
	who, refused := b.checkApprover(ctx, d, b.authz.verify)
	if refused.text != "" {
		b.refuse(ctx, d.channel, d.slackUser, refused)
		return
	}
	log = log.With(LogActor, who.login)
	grantFor := time.Duration(0)
	if d.action == github.ActionApprove {
		complete, g := b.countApproval(ctx, log, who, d)
		if !complete {
			return
		}
		grantFor = g
	}
	if who.org.asApprover() && !b.approverToken(ctx, log, &who, d) {
		return
	}
	as := store.AsApp
	if who.cred != nil {
		as = store.AsApprover
	}
	claim := &store.Decision{Action: d.action, Actor: who.login, ActorID: who.githubID, As: as, SlackUser: d.slackUser, Reason: d.reason, At: b.now(),
		Source: store.SourceSlack, Authority: who.why, GrantFor: grantFor}
	b.carryOut(ctx, log, who, d, claim)
}

// carryOut claims a request for a decision, sends the review to GitHub and
// shows the outcome: the one path of every decision, an approver's or a
// rule's. The claim's transaction also writes the timer that settles it
// if patbot cannot, and, for a time-bound approval, the timers that end
// the grant.
func (b *Bot) carryOut(ctx context.Context, log *slog.Logger, who approver, d decisionRequest, claim *store.Decision) {
	payload, err := json.Marshal(settlePayload{Org: who.org.Login, ID: d.id, At: claim.At, Channel: d.channel})
	if err != nil {
		log.Error("cannot encode the settle timer", "err", err)
		return
	}
	timers := append([]store.Timer{{Kind: timerSettle, Key: view.RequestKey(who.org.Login, d.id), Due: claim.At.Add(settleAfter), Payload: payload}},
		grantTimers(who.org.Login, d.id, claim)...)
	var current store.Request
	_, timerIDs, err := b.store.UpdateRequestWithTimers(who.org.Login, d.id, timers, func(r *store.Request, exists bool) error {
		if !exists {
			return errNoRecord
		}
		if r.State != store.StatePending {
			current = *r
			return errTaken
		}
		r.Decision, r.LastAttempt, r.Failure, r.Unconfirmed = claim, claim, "", false
		r.GrantEnds = nil
		if claim.Action == github.ActionApprove && claim.GrantFor > 0 {
			ends := claim.At.Add(claim.GrantFor)
			r.GrantEnds = &ends
		}
		r.SetState(store.StateDeciding, claim.At, claim.Source, who.login, d.action)
		return nil
	})
	switch {
	case errors.Is(err, errTaken):
		// Another approver, a double click, or GitHub got there first.
		b.tell(ctx, d.channel, d.slackUser, b.alreadyText(current))
		return
	case err != nil:
		log.Error("cannot claim request", "err", err)
		b.tell(ctx, d.channel, d.slackUser, "patbot could not record your decision. Nothing was changed; try again.")
		return
	}
	b.timers.Wake() // a grant's end may be near

	err = b.review(ctx, &who, d)
	settled := true
	if errors.Is(err, identity.ErrRelink) {
		// GitHub refused the token and its refresh: it took nothing.
		b.fail(ctx, log, who, d, claim, "GitHub no longer accepts your sign-in")
		b.tellToLink(ctx, d.channel, d.slackUser, "GitHub no longer accepts your sign-in, so patbot cannot decide as you. Sign in to GitHub again; nothing was decided.")
	} else {
		settled = b.settle(ctx, log, who, d, claim, err)
	}
	if settled {
		if err := b.store.FinishTimer(timerIDs[0]); err != nil && !errors.Is(err, store.ErrNotFound) {
			log.Warn("cannot remove the settle timer; it will find the request settled", "err", err)
		}
		return
	}
	b.timers.Wake() // its timer settles it
}

// refuse tells a Slack user why they may not go on, with the sign-in
// button when signing in would help.
func (b *Bot) refuse(ctx context.Context, channel, slackUser string, r refusal) {
	if r.signIn {
		b.tellToLink(ctx, channel, slackUser, r.text)
		return
	}
	b.tell(ctx, channel, slackUser, r.text)
}

// approverToken fetches the approver's own token for an org that decides
// as the approver. It reports false, having told the user why, when there
// is none to use: nothing is decided then.
func (b *Bot) approverToken(ctx context.Context, log *slog.Logger, who *approver, d decisionRequest) bool {
	cred, err := b.identity.Token(ctx, d.slackUser)
	if err == nil {
		who.cred = &cred
		return true
	}
	detail, text := "token unusable", "GitHub no longer accepts your sign-in, so patbot cannot decide as you. Sign in to GitHub again; nothing was decided."
	if !errors.Is(err, identity.ErrRelink) && !errors.Is(err, identity.ErrNotLinked) {
		log.Warn("cannot get the approver's token", "err", err)
		detail, text = "token refresh failed", fmt.Sprintf("patbot could not renew your GitHub sign-in (%s). Nothing was decided; try again in a minute.", describeGitHubError(err))
	}
	b.audit(store.AuditEvent{Kind: "refused", Org: who.org.Login, RequestID: d.id, Action: d.action, Actor: who.login, ActorID: who.githubID,
		SlackUser: d.slackUser, Source: store.SourceSlack, As: store.AsApprover, Detail: detail})
	b.metrics.refusals.WithLabelValues(detail).Inc()
	b.refuse(ctx, d.channel, d.slackUser, refusal{text: text, signIn: detail == "token unusable"})
	return false
}

// review sends the decision to GitHub: as the App, or with the approver's
// token, refreshed once if GitHub refuses it as expired (401: GitHub did
// not take the review, so sending it again is safe). When the token cannot
// be refreshed it returns identity.ErrRelink, and who.cred is nil.
func (b *Bot) review(ctx context.Context, who *approver, d decisionRequest) error {
	r := github.Review{Action: d.action, Reason: d.reason}
	err := b.gh.ReviewRequest(ctx, who.org.Login, d.id, r, who.as())
	if who.cred == nil || github.StatusCode(err) != http.StatusUnauthorized {
		return err
	}
	cred, rerr := b.identity.Refresh(ctx, *who.cred)
	if errors.Is(rerr, identity.ErrRelink) || errors.Is(rerr, identity.ErrNotLinked) {
		who.cred = nil
		return identity.ErrRelink
	}
	if rerr != nil {
		return err
	}
	who.cred = &cred
	return b.gh.ReviewRequest(ctx, who.org.Login, d.id, r, who.as())
}

// settle records what GitHub answered to a review and shows it. It reports
// false when the outcome is unknown (no answer, or a 5xx): the claim then
// stays, and its settle timer settles it from GitHub.
func (b *Bot) settle(ctx context.Context, log *slog.Logger, who approver, d decisionRequest, claim *store.Decision, reviewErr error) bool {
	status := github.StatusCode(reviewErr)
	switch {
	case reviewErr == nil:
		how := "GitHub accepted the review"
		if who.cred != nil {
			how = "GitHub accepted the review, sent as " + who.login
		}
		b.confirm(ctx, log, who.org.Login, d, claim, how)
	case status == http.StatusNotFound || status == http.StatusUnprocessableEntity:
		// Maybe already handled: ask GitHub whether it is still pending.
		var pending bool
		r, err := b.store.Request(who.org.Login, d.id)
		if err == nil {
			_, pending, err = b.findPending(ctx, who.org, d.id, r.Owner, r.TokenID)
		}
		if err == nil && !pending {
			b.closeClaim(ctx, log, who, d, claim)
			return true
		}
		b.fail(ctx, log, who, d, claim, b.describeReviewError(who, reviewErr))
	case outcomeUnknown(reviewErr):
		b.awaitConfirmation(ctx, log, who, d, claim, reviewErr)
		return false
	default:
		b.fail(ctx, log, who, d, claim, b.describeReviewError(who, reviewErr))
	}
	return true
}

// describeReviewError says why GitHub did not take a review. A refusal of
// the approver's own token is GitHub's verdict on that account, not a
// failure of patbot.
func (b *Bot) describeReviewError(who approver, err error) string {
	switch status := github.StatusCode(err); {
	case who.cred != nil && (status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound):
		return fmt.Sprintf("GitHub refused your account, %s (%d %s)", who.login, status, http.StatusText(status))
	default:
		return describeGitHubError(err)
	}
}

// outcomeUnknown reports whether GitHub may have taken a review despite
// err: there was no answer (a timeout, a lost connection) or a 5xx. A 4xx,
// a rate limit included, means it did not.
func outcomeUnknown(err error) bool {
	var apiErr *github.APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode >= 500
	}
	return err != nil
}

// confirm records that GitHub took the claimed decision, credits its
// approver, and shows it: on the card, to the requester, in the audit
// trail.
func (b *Bot) confirm(ctx context.Context, log *slog.Logger, org string, d decisionRequest, claim *store.Decision, how string) {
	final := store.StateApproved
	if d.action == github.ActionDeny {
		final = store.StateDenied
	}
	credited := false
	r, err := b.store.UpdateRequest(org, d.id, func(r *store.Request, _ bool) error {
		credited = false
		// The webhook that confirms this decision may have come first.
		if r.State == store.StateDeciding && sameDecision(r.Decision, claim) {
			r.Decision.At = b.now()
			r.LastAttempt, r.Failure, r.Unconfirmed = nil, "", false
			r.SetState(final, r.Decision.At, claim.Source, claim.Actor, how)
			credited = true
		}
		return nil
	})
	if err != nil {
		log.Error("GitHub took the decision but patbot could not record it", "err", err)
	}
	if !credited && err == nil && !r.State.Final() {
		return // settled otherwise meanwhile
	}
	b.recordDecision(ctx, log, r, claim, how)
}

// recordDecision is what follows a decision an approver made through
// patbot, however GitHub confirmed it: the audit trail, the metrics, the
// card and the requester's DM.
func (b *Bot) recordDecision(ctx context.Context, log *slog.Logger, r store.Request, claim *store.Decision, how string) {
	b.audit(store.AuditEvent{Kind: "decision", Org: r.Org, RequestID: r.ID, Action: claim.Action, Actor: claim.Actor, ActorID: claim.ActorID,
		As: cmp.Or(claim.As, store.AsApp), Rule: claim.Rule, SlackUser: claim.SlackUser, Source: cmp.Or(claim.Source, store.SourceSlack),
		Reason: claim.Reason, Detail: "authorized as " + claim.Authority + "; " + how})
	b.metrics.decisions.WithLabelValues(string(r.State), string(cmp.Or(claim.Source, store.SourceSlack))).Inc()
	log.Info("decision made", "state", r.State, "how", how)
	b.showCard(ctx, log, r.Org, r.ID)
	b.notifyRequester(ctx, r)
}

// closeClaim records that GitHub no longer lists a claimed request as
// pending: it was decided or withdrawn elsewhere.
func (b *Bot) closeClaim(ctx context.Context, log *slog.Logger, who approver, d decisionRequest, claim *store.Decision) {
	b.store.UpdateRequest(who.org.Login, d.id, func(r *store.Request, _ bool) error {
		if r.State == store.StateDeciding && sameDecision(r.Decision, claim) {
			r.Decision, r.Unconfirmed = nil, false
			r.SetState(store.StateClosed, b.now(), claim.Source, who.login, "GitHub: no longer pending")
		}
		return nil
	})
	b.audit(store.AuditEvent{Kind: "failed", Org: who.org.Login, RequestID: d.id, Action: d.action, Actor: who.login,
		SlackUser: d.slackUser, Source: claim.Source, Detail: "no longer pending in GitHub"})
	log.Info("request no longer pending in GitHub")
	b.showCard(ctx, log, who.org.Login, d.id)
	b.tell(ctx, d.channel, d.slackUser, "GitHub says this request is no longer pending: it was decided or withdrawn elsewhere. Nothing was changed.")
}

// awaitConfirmation keeps a claim whose review may or may not have reached
// GitHub: no other review is sent until GitHub's webhook, the settle timer
// or reconciliation says how it ended.
func (b *Bot) awaitConfirmation(ctx context.Context, log *slog.Logger, who approver, d decisionRequest, claim *store.Decision, reviewErr error) {
	why := describeGitHubError(reviewErr)
	b.store.UpdateRequest(who.org.Login, d.id, func(r *store.Request, _ bool) error {
		if r.State == store.StateDeciding && sameDecision(r.Decision, claim) {
			r.Unconfirmed, r.Failure, r.CardOutdated = true, why, true
		}
		return nil
	})
	b.audit(store.AuditEvent{Kind: "unconfirmed", Org: who.org.Login, RequestID: d.id, Action: d.action, Actor: who.login, ActorID: claim.ActorID,
		As: cmp.Or(claim.As, store.AsApp), SlackUser: d.slackUser, Source: claim.Source, Detail: why + "; waiting for GitHub to confirm"})
	log.Warn("GitHub's answer to the review was lost; waiting for GitHub to confirm", "err", reviewErr)
	b.showCard(ctx, log, who.org.Login, d.id)
	b.tell(ctx, d.channel, d.slackUser, fmt.Sprintf("%s, so patbot cannot tell yet whether your %s went through. "+
		"It is waiting for GitHub to confirm; nobody else can decide this request meanwhile, and you will hear how it ended.",
		upperFirst(why), view.DecisionNoun(d.action)))
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// settleClaim is the settle timer's work: it settles a claim whose outcome
// patbot did not see, from what GitHub lists now. Still pending means
// GitHub did not take the review: the buttons work again. Gone, with the
// token among the org's grants, means an approval went through. Anything
// else waits for GitHub's webhook or reconciliation.
func (b *Bot) settleClaim(ctx context.Context, t store.Timer) error {
	var p settlePayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		b.log.Error("settle timer with an unreadable payload; dropped", "timer", t.ID, "err", err)
		return nil
	}
	r, err := b.store.Request(p.Org, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	claim := r.Decision
	if r.State != store.StateDeciding || claim == nil || !claim.At.Equal(p.At) {
		return nil // settled meanwhile
	}
	org, ok := b.config().Org(r.Org)
	if !ok {
		return nil
	}
	who := approver{org: org, login: claim.Actor, why: claim.Authority}
	d := decisionRequest{org: r.Org, id: r.ID, action: claim.Action, reason: claim.Reason, slackUser: claim.SlackUser, channel: p.Channel}
	log := b.log.With(LogOrg, r.Org, LogRequest, r.ID, LogAction, claim.Action, LogActor, claim.Actor)
	_, pending, err := b.findPending(ctx, org, r.ID, r.Owner, r.TokenID)
	if err != nil {
		return fmt.Errorf("ask GitHub whether the request is pending: %w", err)
	}
	if pending {
		b.fail(ctx, log, who, d, claim, fmt.Sprintf("GitHub still listed the request as pending %s later", settleAfter))
		return nil
	}
	if claim.Action == github.ActionApprove && r.TokenID != 0 {
		grants, err := b.gh.ListGrants(ctx, org.Login, r.Owner)
		if err != nil {
			return fmt.Errorf("look for the token among the grants: %w", err)
		}
		if slices.ContainsFunc(grants, func(g github.Grant) bool { return g.TokenID == r.TokenID }) {
			b.confirm(ctx, log, org.Login, d, claim, "GitHub lists the token among the approved")
			return nil
		}
	}
	log.Info("request no longer pending in GitHub; its outcome waits for GitHub's webhook or reconciliation")
	return nil
}

// fail puts a claimed request back to pending after GitHub did not take
// the review, and says so on the card, whose buttons work again.
func (b *Bot) fail(ctx context.Context, log *slog.Logger, who approver, d decisionRequest, claim *store.Decision, why string) {
	failure := fmt.Sprintf("%s tried to %s at %s, but %s. Nothing was decided; try again.", who.login, d.action, claim.At.UTC().Format("15:04 UTC"), why)
	b.store.UpdateRequest(who.org.Login, d.id, func(r *store.Request, _ bool) error {
		if r.State == store.StateDeciding && sameDecision(r.Decision, claim) {
			r.Decision, r.Failure, r.Unconfirmed, r.GrantEnds = nil, failure, false, nil
			r.SetState(store.StatePending, b.now(), claim.Source, who.login, "GitHub: "+why)
		}
		return nil
	})
	b.audit(store.AuditEvent{Kind: "failed", Org: who.org.Login, RequestID: d.id, Action: d.action, Actor: who.login, ActorID: claim.ActorID,
		As: cmp.Or(claim.As, store.AsApp), SlackUser: d.slackUser, Source: claim.Source, Detail: why})
	b.metrics.decisions.WithLabelValues("failed", string(claim.Source)).Inc()
	log.Warn("GitHub did not take the decision", "why", why)
	b.showCard(ctx, log, who.org.Login, d.id)
	b.tell(ctx, d.channel, d.slackUser, fmt.Sprintf("Your %s did not go through: %s. Nothing was decided; the buttons work.", view.DecisionNoun(d.action), why))
}

// showCard brings a request's card up to date; if Slack fails, a job
// retries it (with backoff, and after a restart).
func (b *Bot) showCard(ctx context.Context, log *slog.Logger, org string, id int64) {
	err := b.refreshCard(ctx, org, id)
	if err == nil {
		return
	}
	log.Warn("cannot update the card; will retry", "err", err)
	jobID, err := b.store.EnqueueJob(store.Job{Event: jobRefreshCard, Org: org, RequestID: id})
	if err != nil {
		log.Error("cannot schedule the card's update; reconciliation will do it", "err", err)
		return
	}
	b.dbJobs.Add(1)
	if b.reserve() {
		b.queueJob(jobID)
	} // else a replica takes it up once its lease has passed; reconciliation refreshes it meanwhile
}

func sameDecision(a, b *store.Decision) bool {
	return a != nil && b != nil && a.Action == b.Action && a.SlackUser == b.SlackUser && a.At.Equal(b.At)
}

// describeGitHubError says what went wrong in words fit for Slack.
func describeGitHubError(err error) string {
	var apiErr *github.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.RateLimited:
		if apiErr.RetryAfter > 0 {
			return fmt.Sprintf("GitHub's rate limit was reached (it resets in %s)", apiErr.RetryAfter.Round(time.Second))
		}
		return "GitHub's rate limit was reached"
	case errors.As(err, &apiErr):
		return fmt.Sprintf("GitHub answered %d %s", apiErr.StatusCode, http.StatusText(apiErr.StatusCode))
	case errors.Is(err, context.DeadlineExceeded):
		return "GitHub did not answer in time"
	default:
		return "GitHub could not be reached"
	}
}

// findPending looks a request up in GitHub's list of pending requests, by
// its token when known, otherwise by its requester.
func (b *Bot) findPending(ctx context.Context, org Org, id int64, owner string, tokenID int64) (github.PendingRequest, bool, error) {
	f := github.RequestFilter{Owners: []string{owner}}
	if tokenID != 0 {
		f = github.RequestFilter{TokenIDs: []int64{tokenID}}
	}
	items, err := b.gh.ListRequests(ctx, org.Login, f)
	if err != nil {
		return github.PendingRequest{}, false, err
	}
	for _, it := range items {
		if it.ID == id {
			return it, true, nil
		}
	}
	return github.PendingRequest{}, false, nil
}

func (b *Bot) audit(e store.AuditEvent) {
	if err := b.store.AppendAudit(e); err != nil {
		b.log.Error("cannot append to the audit trail", "err", err, LogOrg, e.Org, LogRequest, e.RequestID, "kind", e.Kind)
		return
	}
	if b.onAudit != nil {
		b.onAudit()
	}
}
