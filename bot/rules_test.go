package bot

import (
	"testing"
	"time"

	"github.com/patbot/patbot/bot/policy"
	"github.com/patbot/patbot/store"
)

// How long a grant lasts: the rule's grant_for, or the shortest choice of
// the approvers, within the rule's cap.
func TestGrantFor(t *testing.T) {
	day := 24 * time.Hour
	choices := Org{Policy: &policy.Policy{GrantForChoices: []time.Duration{day, 7 * day, 30 * day}}}
	noChoices := Org{Policy: &policy.Policy{}}
	capped := store.Request{Policy: &store.PolicyVerdict{Mode: policy.ModeEnforce, Action: policy.ActionReview, Approvals: 2, GrantFor: 7 * day}}
	uncapped := store.Request{Policy: &store.PolicyVerdict{Mode: policy.ModeEnforce, Action: policy.ActionReview, Approvals: 2}}
	suggested := store.Request{Policy: &store.PolicyVerdict{Mode: policy.ModeSuggest, Action: policy.ActionReview, GrantFor: 7 * day}}
	picks := func(ds ...time.Duration) []store.Approval {
		var as []store.Approval
		for _, d := range ds {
			as = append(as, store.Approval{GrantFor: d})
		}
		return as
	}
	for _, tc := range []struct {
		name      string
		org       Org
		r         store.Request
		approvals []store.Approval
		want      time.Duration
	}{
		{"the rule's, without choices", noChoices, capped, picks(0), 7 * day},
		{"none, without choices or rule", noChoices, uncapped, picks(0), 0},
		{"the shortest pick", choices, uncapped, picks(30*day, day), day},
		{"picks over the cap are capped", choices, capped, picks(30 * day), 7 * day},
		{"one approver picked nothing", choices, capped, picks(0, day), day},
		{"suggest mode sets no cap", choices, suggested, picks(30 * day), 30 * day},
	} {
		if got := (&Bot{}).grantFor(tc.org, tc.r, tc.approvals); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := grantChoices(choices, capped); len(got) != 2 || got[1] != 7*day {
		t.Errorf("choices under a 7d cap = %v", got)
	}
	if got := grantChoices(Org{Policy: &policy.Policy{GrantForChoices: []time.Duration{30 * day}}}, capped); len(got) != 1 || got[0] != 7*day {
		t.Errorf("choices all over the cap = %v", got)
	}
}
