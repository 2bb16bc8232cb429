package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/bot/view"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// This file is where the org's policy (bot/policy) meets requests: the
// verdict recorded when a request arrives, the decisions rules make, the
// approvals counted when a rule asks for several, and the end of
// time-bound grants.

// Kinds of the timers a time-bound approval sets.
const (
	timerGrantEnd      = "grant_end"
	timerGrantReminder = "grant_reminder"
)

// grantPayload names the request whose grant a timer ends or recalls.
type grantPayload struct {
	Org string `json:"org"`
	ID  int64  `json:"id"`
}

// remindBefore is how long before a grant ends its requester is told, for
// grants that last longer than remindAfter.
const (
	remindBefore = 24 * time.Hour
	remindAfter  = 48 * time.Hour
)

// judge records a pending request's risk flags and what the org's rules
// say of it, once, so that its card shows them. Facts it cannot have
// (GitHub unreachable) make the rules that need them not match. An org
// without rules gets the flags alone (Mode "").
func (b *Bot) judge(ctx context.Context, org Org, id int64) error {
	r, err := b.store.Request(org.Login, id)
	if err != nil || r.Policy != nil || r.State != store.StatePending {
		return err
	}
	if org.Policy == nil {
		return nil // its flags were recorded with the request (flagsOnly)
	}
	v := org.Policy.Evaluate(b.policyRequest(ctx, org, r), b.policyFacts(ctx, org, r.Owner))
	record := &store.PolicyVerdict{Mode: v.Mode, Rule: v.Rule, Action: v.Action, Reason: v.Reason, Approvals: v.Approvals,
		GrantFor: v.GrantFor, Unchecked: v.Unchecked, Flags: storeFlags(v.Flags)}
	_, err = b.store.UpdateRequest(org.Login, id, func(r *store.Request, _ bool) error {
		if r.Policy == nil {
			r.Policy, r.CardOutdated = record, true
		}
		return nil
	})
	if err == nil {
		b.log.Info("policy evaluated", LogOrg, org.Login, LogRequest, id, "mode", v.Mode, "rule", v.Rule, "action", v.Action,
			"approvals", v.Approvals, "flags", len(v.Flags), "unchecked", len(v.Unchecked))
	}
	return err
}

// flagsOnly is the verdict of an org without rules: the request's flags,
// which need nothing but the request (Mode ""). It is recorded in the
// request's own write.
func flagsOnly(r store.Request) *store.PolicyVerdict {
	return &store.PolicyVerdict{Flags: storeFlags(policy.Flags(rulesRequest(context.Background(), nil, nil, Org{}, r), 0))}
}

func storeFlags(flags []policy.Flag) []store.Flag {
	var out []store.Flag
	for _, f := range flags {
		out = append(out, store.Flag{Name: f.Name, Reason: f.Reason})
	}
	return out
}

// policyRequest is what the rules see of a request; a subset request's
// repositories are read from GitHub when the record lacks some.
func (b *Bot) policyRequest(ctx context.Context, org Org, r store.Request) policy.Request {
	return rulesRequest(ctx, b.gh, b.log, org, r)
}

// rulesRequest is what the rules see of a request. When the record lacks
// some of a subset request's repositories, gh (if not nil) is asked for
// them; else the rules that name repositories do not match.
func rulesRequest(ctx context.Context, gh ReplayGitHub, log *slog.Logger, org Org, r store.Request) policy.Request {
	pr := policy.Request{Owner: r.Owner, RepositorySelection: r.RepositorySelection, CreatedAt: r.CreatedAt, ExpiresAt: r.TokenExpiresAt,
		Result: policyPermissions(r.PermissionsResult), Upgraded: policyPermissions(r.PermissionsUpgraded)}
	names := r.Repositories
	complete := r.RepositorySelection != github.SelectionSubset || len(names) > 0 && len(names) >= r.RepositoryCount
	if !complete && org.Policy != nil && gh != nil {
		if repos, err := gh.ListRequestRepositories(ctx, org.Login, r.ID); err == nil {
			names, complete = nil, true
			for _, repo := range repos {
				names = append(names, repo.FullName)
			}
		} else {
			log.Warn("cannot read a request's repositories; rules that name repositories do not match", LogOrg, org.Login, LogRequest, r.ID, "err", err)
		}
	}
	for _, full := range names {
		_, name, found := strings.Cut(full, "/")
		if !found {
			name = full
		}
		pr.Repositories = append(pr.Repositories, name)
	}
	pr.RepositoriesComplete = complete
	return pr
}

func policyPermissions(p store.Permissions) policy.Permissions {
	return policy.Permissions{Organization: p.Organization, Repository: p.Repository, Other: p.Other}
}

// policyFacts looks up what the rules need beyond the request: the
// requester's membership of the teams they name. A team GitHub does not
// answer for is left out (unknown).
func (b *Bot) policyFacts(ctx context.Context, org Org, requester string) policy.Facts {
	return b.teams.facts(ctx, b.log, org, requester)
}

func (c *teamCache) facts(ctx context.Context, log *slog.Logger, org Org, requester string) policy.Facts {
	f := policy.Facts{Teams: map[string]bool{}}
	for _, team := range org.Policy.Teams() {
		member, err := c.member(ctx, org.Login, team, requester)
		if err != nil {
			log.Warn("cannot check team membership for the policy", LogOrg, org.Login, "team", team, "requester", requester, "err", err)
			continue
		}
		f.Teams[team] = member
	}
	return f
}

// teamCache caches the requester team memberships rules ask about, like
// the approvers' verdicts: for authzTTL, errors not cached, bounded.
type teamCache struct {
	gh  ReplayGitHub // nil: no facts
	now func() time.Time

	mu      sync.Mutex
	entries map[string]teamEntry
}

type teamEntry struct {
	member  bool
	expires time.Time
}

func (c *teamCache) member(ctx context.Context, org, team, login string) (bool, error) {
	key := strings.ToLower(org + "/" + team + "/" + login)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.member, nil
	}
	if c.gh == nil {
		return false, errors.New("no GitHub credentials to ask with")
	}
	m, err := c.gh.TeamMembership(ctx, org, team, login)
	member := err == nil && m.Active()
	if err != nil && !errors.Is(err, github.ErrNotFound) {
		return false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxAuthzEntries {
		clear(c.entries)
	}
	c.entries[key] = teamEntry{member: member, expires: now.Add(authzTTL)}
	return member, nil
}

// enforce carries out a verdict that decides by itself: an approve or
// deny rule of an org whose policy is enforced. patbot decides as the App,
// through the same path as a click.
func (b *Bot) enforce(ctx context.Context, org Org, id int64) {
	r, err := b.store.Request(org.Login, id)
	if err != nil || r.State != store.StatePending || r.Policy == nil || r.Policy.Mode != policy.ModeEnforce || r.Policy.Rule == "" {
		return
	}
	v := r.Policy
	action := map[string]string{policy.ActionApprove: github.ActionApprove, policy.ActionDeny: github.ActionDeny}[v.Action]
	if action == "" {
		return
	}
	log := b.log.With(LogOrg, org.Login, LogRequest, id, LogAction, action, "rule", v.Rule)
	who := approver{org: org, login: "patbot", why: "rule " + v.Rule}
	d := decisionRequest{org: strings.ToLower(org.Login), id: id, action: action, reason: v.Reason}
	claim := &store.Decision{Action: action, Actor: "patbot", As: store.AsApp, Rule: v.Rule, Reason: v.Reason, At: b.now(),
		Source: store.SourcePolicy, Authority: "rule " + v.Rule, GrantFor: v.GrantFor}
	log.Info("deciding by rule")
	b.carryOut(ctx, log, who, d, claim)
}

// approvalsNeeded is how many approvers a request needs.
func approvalsNeeded(r store.Request) int {
	if p := r.Policy; p != nil && p.Mode == policy.ModeEnforce && p.Action == policy.ActionReview {
		return max(p.Approvals, 1)
	}
	return 1
}

// Outcomes of counting an approval, besides completing the count.
var (
	errCounted  = errors.New("already counted")
	errComplete = errors.New("count complete")
)

// countApproval counts an approval toward the approvals a rule asks for.
// It reports whether this approval completes the count, and then how long
// the grant lasts (the shortest any approver chose, within the rule's
// cap): the caller sends the review. Otherwise it has recorded the
// approval, or said why not, and the approver has been told.
func (b *Bot) countApproval(ctx context.Context, log *slog.Logger, who approver, d decisionRequest) (bool, time.Duration) {
	var current store.Request
	var prior []store.Approval
	count, need := 0, 1
	approval := store.Approval{Actor: who.login, ActorID: who.githubID, SlackUser: d.slackUser, At: b.now(), GrantFor: d.grantFor}
	_, err := b.store.UpdateRequest(who.org.Login, d.id, func(r *store.Request, exists bool) error {
		current, prior = *r, nil
		switch need = approvalsNeeded(*r); {
		case !exists:
			return errNoRecord
		case r.State != store.StatePending:
			return errTaken
		case slices.ContainsFunc(r.Approvals, func(a store.Approval) bool {
			return a.SlackUser == d.slackUser || strings.EqualFold(a.Actor, who.login)
		}):
			return errCounted
		case len(r.Approvals)+1 >= need:
			prior = slices.Clone(r.Approvals)
			return errComplete
		}
		r.Approvals = append(r.Approvals, approval)
		count, r.CardOutdated = len(r.Approvals), true
		return nil
	})
	switch {
	case errors.Is(err, errComplete):
		return true, b.grantFor(who.org, current, append(prior, approval))
	case errors.Is(err, errTaken):
		b.tell(ctx, d.channel, d.slackUser, b.alreadyText(current))
	case errors.Is(err, errCounted):
		b.tell(ctx, d.channel, d.slackUser, fmt.Sprintf("Your approval is counted already (%d of %d); another approver has to approve too. Nothing was changed.",
			len(current.Approvals), need))
	case err != nil:
		log.Error("cannot count the approval", "err", err)
		b.tell(ctx, d.channel, d.slackUser, "patbot could not record your approval. Nothing was changed; try again.")
	default:
		rule := ""
		if current.Policy != nil {
			rule = current.Policy.Rule
		}
		b.audit(store.AuditEvent{Kind: "approval", Org: who.org.Login, RequestID: d.id, Action: github.ActionApprove, Actor: who.login,
			ActorID: who.githubID, Rule: rule, SlackUser: d.slackUser, Source: store.SourceSlack,
			Detail: fmt.Sprintf("%d of %d approvals; authorized as %s", count, need, who.why)})
		log.Info("approval counted", "count", count, "need", need)
		b.showCard(ctx, log, who.org.Login, d.id)
		b.tell(ctx, d.channel, d.slackUser, fmt.Sprintf("Your approval is counted: %d of %d. %s more %s needed before patbot approves the request in GitHub.",
			count, need, view.Plural(need-count, "One", fmt.Sprint(need-count)), view.Plural(need-count, "approver is", "approvers are")))
	}
	return false, 0
}

// grantFor is how long a grant approved now lasts: the rule's grant_for,
// or, where approvers pick, the shortest pick within it (0: as long as
// the token).
func (b *Bot) grantFor(org Org, r store.Request, approvals []store.Approval) time.Duration {
	limit := time.Duration(0)
	if p := r.Policy; p != nil && p.Mode == policy.ModeEnforce {
		limit = p.GrantFor
	}
	if org.Policy == nil || len(org.Policy.GrantForChoices) == 0 {
		return limit
	}
	chosen := time.Duration(0)
	for _, a := range approvals {
		if a.GrantFor > 0 && (chosen == 0 || a.GrantFor < chosen) {
			chosen = a.GrantFor
		}
	}
	if limit > 0 && (chosen == 0 || chosen > limit) {
		return limit
	}
	return chosen
}

// grantChoices are the durations an approver may pick for a request: the
// org's choices within the rule's cap (the shortest choice when all are
// over it).
func grantChoices(org Org, r store.Request) []time.Duration {
	if org.Policy == nil {
		return nil
	}
	choices := org.Policy.GrantForChoices
	if p := r.Policy; p != nil && p.Mode == policy.ModeEnforce && p.GrantFor > 0 {
		var capped []time.Duration
		for _, c := range choices {
			if c <= p.GrantFor {
				capped = append(capped, c)
			}
		}
		if len(capped) == 0 {
			capped = []time.Duration{p.GrantFor}
		}
		choices = capped
	}
	return choices
}

// grantTimers are the timers a time-bound approval sets with its claim:
// the end, and a reminder a day before when the grant lasts over two days.
func grantTimers(org string, id int64, claim *store.Decision) []store.Timer {
	if claim.Action != github.ActionApprove || claim.GrantFor <= 0 {
		return nil
	}
	payload, _ := json.Marshal(grantPayload{Org: org, ID: id})
	key := view.RequestKey(org, id)
	ends := claim.At.Add(claim.GrantFor)
	timers := []store.Timer{{Kind: timerGrantEnd, Key: key, Due: ends, Payload: payload}}
	if claim.GrantFor > remindAfter {
		timers = append(timers, store.Timer{Kind: timerGrantReminder, Key: key, Due: ends.Add(-remindBefore), Payload: payload})
	}
	return timers
}

// grantRequest reads the request a grant timer names. It reports false
// when there is nothing (left) to do: the approval never happened, or the
// grant has ended already. A request still being decided is an error: the
// timer tries again.
func (b *Bot) grantRequest(t store.Timer) (store.Request, Org, bool, error) {
	var p grantPayload
	if err := json.Unmarshal(t.Payload, &p); err != nil {
		b.log.Error("grant timer with an unreadable payload; dropped", "timer", t.ID, "err", err)
		return store.Request{}, Org{}, false, nil
	}
	r, err := b.store.Request(p.Org, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Request{}, Org{}, false, nil
	}
	if err != nil {
		return store.Request{}, Org{}, false, err
	}
	if r.State == store.StateDeciding {
		return store.Request{}, Org{}, false, errors.New("the approval is not settled yet")
	}
	org, ok := b.config().Org(r.Org)
	active := ok && r.State == store.StateApproved && r.Decision != nil && r.Decision.GrantFor > 0 && r.GrantEnded == nil
	return r, org, active, nil
}

// endGrant is the grant_end timer's work: it revokes the grant a
// time-bound approval made, found by its token. A grant already gone is
// fine; a failure is tried again, never dropped.
func (b *Bot) endGrant(ctx context.Context, t store.Timer) error {
	r, org, active, err := b.grantRequest(t)
	if !active || err != nil {
		return err
	}
	log := b.log.With(LogOrg, org.Login, LogRequest, r.ID, "token_id", r.TokenID)
	grants, err := b.gh.ListGrants(ctx, org.Login, r.Owner)
	if err != nil {
		return fmt.Errorf("list the grants of %s: %w", r.Owner, err)
	}
	i := slices.IndexFunc(grants, func(g github.Grant) bool { return g.TokenID == r.TokenID })
	detail := fmt.Sprintf("access for %s after approval ended", policy.FormatDuration(r.Decision.GrantFor))
	if i < 0 {
		detail += "; the grant was gone already"
	} else {
		err := b.gh.RevokeGrant(ctx, org.Login, grants[i].ID, "")
		if err != nil && !errors.Is(err, github.ErrNotFound) {
			return fmt.Errorf("revoke grant %d: %w", grants[i].ID, err)
		}
	}
	now := b.now()
	r, err = b.store.UpdateRequest(r.Org, r.ID, func(x *store.Request, _ bool) error {
		if x.GrantEnded == nil {
			x.GrantEnded, x.CardOutdated = &now, true
		}
		return nil
	})
	if err != nil {
		return err
	}
	rule := ""
	if r.Policy != nil {
		rule = r.Policy.Rule
	}
	grantID := int64(0)
	if i >= 0 {
		grantID = grants[i].ID
	}
	b.audit(store.AuditEvent{Kind: "revocation", Org: org.Login, RequestID: r.ID, GrantID: grantID, Action: "revoke", Actor: "patbot", As: store.AsApp,
		Rule: rule, Source: store.SourcePolicy, Detail: fmt.Sprintf("token %q (%d) of %s: %s", r.TokenName, r.TokenID, r.Owner, detail)})
	log.Info("time-bound grant ended", "found", i >= 0)
	b.somethingChanged()
	b.showCard(ctx, log, org.Login, r.ID)
	if user := b.slackUserOf(r.Owner); user != "" {
		text := fmt.Sprintf(":lock: The access of your fine-grained token “%s” to *%s* ended: it was approved for %s. Ask again if you still need it.",
			view.Escape(view.TokenName(r)), view.Escape(org.Login), policy.FormatDuration(r.Decision.GrantFor))
		if err := b.dm(ctx, user, text); err != nil {
			log.Warn("cannot tell the requester their grant ended", "err", err)
		}
	}
	return nil
}

// remindGrant is the grant_reminder timer's work: it tells the requester
// that their token's access ends in a day.
func (b *Bot) remindGrant(ctx context.Context, t store.Timer) error {
	r, org, active, err := b.grantRequest(t)
	if !active || err != nil || r.GrantEnds == nil {
		return err
	}
	if user := b.slackUserOf(r.Owner); user != "" {
		text := fmt.Sprintf(":hourglass: The access of your fine-grained token “%s” to *%s* ends %s. Ask again before then if you still need it.",
			view.Escape(view.TokenName(r)), view.Escape(org.Login), view.SlackDate(*r.GrantEnds))
		if err := b.dm(ctx, user, text); err != nil {
			return fmt.Errorf("tell the requester: %w", err)
		}
	}
	return nil
}

// approveForMetadata travels with the how-long dialog.
type approveForMetadata struct {
	Org     string `json:"org"`
	ID      int64  `json:"id"`
	Channel string `json:"channel"`
}

// openApproveForModal opens the dialog that asks how long access lasts,
// for orgs with grant_for_choices.
func (b *Bot) openApproveForModal(ctx context.Context, triggerID string, org Org, d decisionRequest) error {
	r, err := b.store.Request(org.Login, d.id)
	if err != nil {
		return b.submit(func(ctx context.Context) { b.decide(ctx, d) }) // decide explains
	}
	meta, _ := json.Marshal(approveForMetadata{Org: d.org, ID: d.id, Channel: d.channel})
	modal := view.ApproveForModal(org.Login, d.id, grantChoices(org, r), string(meta))
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), viewsOpenTimeout)
	_, err = b.slack.OpenViewContext(octx, triggerID, modal)
	cancel()
	if err != nil {
		b.log.Warn("cannot open the approve dialog", LogOrg, d.org, LogRequest, d.id, "err", err)
		return b.submit(func(ctx context.Context) {
			b.tell(ctx, d.channel, d.slackUser, "patbot could not open the approve dialog; click Approve again.")
		})
	}
	return nil
}

// handleApproveForSubmission approves with the duration picked, which
// must be one the org offers.
func (b *Bot) handleApproveForSubmission(ic slack.InteractionCallback) (any, error) {
	var meta approveForMetadata
	if err := json.Unmarshal([]byte(ic.View.PrivateMetadata), &meta); err != nil || meta.ID == 0 {
		b.log.Warn("approve dialog without request metadata")
		return nil, nil
	}
	picked := ""
	if ic.View.State != nil {
		picked = ic.View.State.Values[view.GrantForBlock][view.GrantForInput].SelectedOption.Value
	}
	var seconds int64
	_, err := fmt.Sscan(picked, &seconds)
	org, ok := b.config().Org(meta.Org)
	valid := err == nil && ok && org.Policy != nil && slices.Contains(org.Policy.GrantForChoices, time.Duration(seconds)*time.Second)
	if r, rerr := b.store.Request(meta.Org, meta.ID); valid && rerr == nil {
		valid = slices.Contains(grantChoices(org, r), time.Duration(seconds)*time.Second)
	}
	if !valid {
		return slack.NewErrorsViewSubmissionResponse(map[string]string{view.GrantForBlock: "Pick one of the durations offered."}), nil
	}
	d := decisionRequest{org: meta.Org, id: meta.ID, action: github.ActionApprove, slackUser: ic.User.ID, channel: meta.Channel,
		grantFor: time.Duration(seconds) * time.Second}
	return nil, b.submit(func(ctx context.Context) { b.decide(ctx, d) })
}
