package view

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/github"
	"github.com/patbot/patbot/store"
)

// What the card says of the org's policy: the request's risk flags, what
// the rules say, and the approvals counted.
func policyText(r store.Request) string {
	p := r.Policy
	if p == nil {
		return ""
	}
	var lines []string
	for _, f := range p.Flags {
		lines = append(lines, fmt.Sprintf(":triangular_flag_on_post: `%s` %s", f.Name, Escape(Truncate(f.Reason, 200))))
	}
	rule := "no rule matched"
	if p.Rule != "" {
		rule = "rule *" + Escape(p.Rule) + "*"
	}
	switch {
	case p.Mode == "": // the org has no rules: the flags alone
	case p.Mode == policy.ModeSuggest:
		lines = append(lines, fmt.Sprintf(":crystal_ball: Policy would %s: %s. People decide while the policy only suggests.", wouldDo(p), rule))
	case p.Action == policy.ActionReview && p.Approvals > 1:
		lines = append(lines, fmt.Sprintf(":busts_in_silhouette: *Needs %d approvals* (%s); any approver may deny.", p.Approvals, rule))
		approvals := r.Approvals
		if d := r.Decision; d != nil && d.Action == github.ActionApprove && d.Source == store.SourceSlack {
			// The approval that completed the count, which the claim carries.
			approvals = append(slices.Clone(approvals), store.Approval{Actor: d.Actor, SlackUser: d.SlackUser})
		}
		if r.State == store.StatePending || r.State == store.StateDeciding || r.State == store.StateApproved {
			lines = append(lines, approvalsText(approvals, p.Approvals))
		}
	case p.Action == policy.ActionReview && p.Rule != "":
		lines = append(lines, fmt.Sprintf(":bust_in_silhouette: An approver decides (%s).", rule))
	case p.Rule == "":
		lines = append(lines, ":bust_in_silhouette: No rule matched: an approver decides.")
	}
	if p.GrantFor > 0 && p.Action != policy.ActionDeny && p.Mode == policy.ModeEnforce && r.GrantEnds == nil && r.GrantEnded == nil {
		lines = append(lines, fmt.Sprintf(":hourglass: Access lasts %s after approval; then patbot revokes it.", policy.FormatDuration(p.GrantFor)))
	}
	for _, u := range p.Unchecked {
		lines = append(lines, ":warning: Could not check rule "+Escape(Truncate(u, 200))+"; no rule approves this request by itself.")
	}
	return Truncate(strings.Join(lines, "\n"), 2900)
}

func wouldDo(p *store.PolicyVerdict) string {
	switch {
	case p.Action == policy.ActionApprove:
		return "approve"
	case p.Action == policy.ActionDeny:
		return "deny"
	case p.Approvals > 1:
		return fmt.Sprintf("ask for %d approvals", p.Approvals)
	}
	return "leave it to an approver"
}

// approvalsText is "1 of 2: approved by @alice".
func approvalsText(approvals []store.Approval, need int) string {
	if len(approvals) == 0 {
		return fmt.Sprintf("0 of %d approvals so far.", need)
	}
	names := make([]string, len(approvals))
	for i, a := range approvals {
		names[i] = fmt.Sprintf("<@%s> (%s)", a.SlackUser, Escape(a.Actor))
	}
	return fmt.Sprintf("%d of %d: approved by %s", len(approvals), need, strings.Join(names, ", "))
}

// Action ID and callback of the dialog that asks how long access lasts.
const (
	CallbackApproveFor = "pat_approve_for"
	GrantForBlock      = "grant_for"
	GrantForInput      = "grant_for_input"
)

// ApproveForModal asks an approver how long request id of org may have
// access; choices are in seconds, shortest first.
func ApproveForModal(org string, id int64, choices []time.Duration, meta string) slack.ModalViewRequest {
	var options []*slack.OptionBlockObject
	for _, c := range choices {
		options = append(options, slack.NewOptionBlockObject(fmt.Sprint(int64(c/time.Second)), Plain(policy.FormatDuration(c)), nil))
	}
	sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, Plain("How long"), GrantForInput, options...)
	if len(options) > 0 {
		sel.InitialOption = options[0]
	}
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackApproveFor,
		Title:           Plain("Approve token request"),
		Submit:          Plain("Approve"),
		Close:           Plain("Cancel"),
		PrivateMetadata: meta,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(Mrkdwn(fmt.Sprintf("Approve fine-grained PAT request %d for *%s*? patbot revokes the access when the time you pick is up.", id, Escape(org))), nil, nil),
			slack.NewInputBlock(GrantForBlock, Plain("Access for"), nil, sel),
		}},
	}
}
