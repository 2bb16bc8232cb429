// Package policy is patbot's policy as code: the risk flags of a PAT
// request, and the rules that approve it, deny it or ask for more
// approvers. It is pure: a request and the facts about it in, flags and a
// verdict out; no Slack, no network, no clock.
package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Modes.
const (
	ModeEnforce = "enforce" // rules decide
	ModeSuggest = "suggest" // cards say what the rules would do; people decide
)

// Actions of a rule.
const (
	ActionApprove = "approve"
	ActionDeny    = "deny"
	ActionReview  = "review" // people decide, with Approvals approvers
)

// Policy is one org's rules, compiled from its Spec.
type Policy struct {
	Mode        string
	MaxLifetime time.Duration // 0: none
	Rules       []Rule
	// GrantForChoices, when set, are the durations an approver picks
	// from when approving.
	GrantForChoices []time.Duration
}

// Rule is one rule: when Match holds, Action.
type Rule struct {
	Name      string
	Match     Match
	Action    string
	Reason    string        // deny: told to the requester
	Approvals int           // review: approvers needed (1 or more)
	GrantFor  time.Duration // approve, review: the grant ends this long after approval (0: never)
}

// Match is what a request must be for a rule to apply; every condition
// given must hold. The zero Match matches every request.
type Match struct {
	Permissions         []Permission // every resulting permission at most these
	PermissionsAny      []Permission // at least one resulting permission at or above one of these
	Repositories        []string     // the selection is a subset of these names
	RepositorySelection string       // all, subset or none
	MaxLifetime         time.Duration
	NoExpiry            *bool
	Requesters          []string // logins
	RequesterTeams      []string // team slugs
	Flags               []string // any of these flags
}

// Permission is a permission at a level. Group is "" when the name was not
// qualified: then it means that permission in whichever group has it.
type Permission struct {
	Group string // organization, repository, other, or ""
	Name  string
	Level Level
}

func (p Permission) String() string {
	if p.Group == "" {
		return p.Name + ": " + p.Level.String()
	}
	return p.Group + "." + p.Name + ": " + p.Level.String()
}

// Level is an access level: read < write < admin.
type Level int

// Levels.
const (
	LevelNone Level = iota
	LevelRead
	LevelWrite
	LevelAdmin
)

// ParseLevel reads read, write or admin.
func ParseLevel(s string) (Level, bool) {
	switch strings.ToLower(s) {
	case "read":
		return LevelRead, true
	case "write":
		return LevelWrite, true
	case "admin":
		return LevelAdmin, true
	}
	return LevelNone, false
}

func (l Level) String() string {
	return [...]string{"none", "read", "write", "admin"}[l]
}

// Permissions are a request's permissions as GitHub groups them.
type Permissions struct {
	Organization map[string]string
	Repository   map[string]string
	Other        map[string]string
}

// each calls f with every permission, in a fixed order.
func (p Permissions) each(f func(group, name string, level Level)) {
	for _, g := range []struct {
		name string
		m    map[string]string
	}{{GroupOrganization, p.Organization}, {GroupRepository, p.Repository}, {GroupOther, p.Other}} {
		for _, name := range sortedKeys(g.m) {
			level, _ := ParseLevel(g.m[name])
			f(g.name, name, level)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Request is what the rules see of a PAT request.
type Request struct {
	Owner               string // requester's login
	RepositorySelection string // all, subset, none
	// Repositories are the names (without the org) of a subset request;
	// RepositoriesComplete says they are all of them.
	Repositories         []string
	RepositoriesComplete bool
	Result               Permissions // permissions_result
	Upgraded             Permissions // permissions_upgraded
	CreatedAt            time.Time
	ExpiresAt            *time.Time // nil: the token never expires
}

// Facts are what the rules need beyond the request, looked up by the
// caller. A fact missing is unknown: a rule that needs it does not match.
type Facts struct {
	// Teams maps each team slug the rules name to whether the requester
	// is an active member; a slug missing could not be checked.
	Teams map[string]bool
}

// Verdict is what the rules say of a request.
type Verdict struct {
	Mode      string
	Rule      string // the rule that matched; "" for none
	Action    string // approve, deny or review
	Reason    string
	Approvals int // review: approvers needed
	GrantFor  time.Duration
	Flags     []Flag
	// Unchecked names the rules that could not be evaluated, and why;
	// they did not match, and no later rule approved automatically.
	Unchecked []string
}

// Teams lists the team slugs any rule names, for the caller to look up.
func (p Policy) Teams() []string {
	var teams []string
	for _, r := range p.Rules {
		for _, t := range r.Match.RequesterTeams {
			if !slices.Contains(teams, t) {
				teams = append(teams, t)
			}
		}
	}
	return teams
}

// Evaluate applies the rules to a request, first match first. No match
// leaves the decision to people, with one approval. A rule whose facts are
// unknown does not match; after one, a rule that would approve asks people
// instead: nothing is approved because of an error.
func (p Policy) Evaluate(r Request, f Facts) Verdict {
	flags := Flags(r, p.MaxLifetime)
	v := Verdict{Mode: cmp.Or(p.Mode, ModeEnforce), Action: ActionReview, Approvals: 1, Flags: flags}
	for _, rule := range p.Rules {
		ok, why := rule.Match.matches(r, f, flags)
		if why != "" {
			v.Unchecked = append(v.Unchecked, rule.Name+" ("+why+")")
			continue
		}
		if !ok {
			continue
		}
		v.Rule, v.Action, v.Reason, v.GrantFor = rule.Name, rule.Action, rule.Reason, rule.GrantFor
		v.Approvals = max(rule.Approvals, 1)
		if rule.Action == ActionApprove && len(v.Unchecked) > 0 {
			// An earlier rule might have denied it, or asked for more.
			v.Action, v.Approvals = ActionReview, 1
		}
		if rule.Action == ActionDeny {
			v.Approvals, v.GrantFor = 0, 0
		}
		return v
	}
	return v
}

// matches reports whether m holds for r; why, when not "", says what fact
// was missing to tell.
func (m Match) matches(r Request, f Facts, flags []Flag) (ok bool, why string) {
	if len(m.Permissions) > 0 && !atMost(r.Result, m.Permissions) {
		return false, ""
	}
	if len(m.PermissionsAny) > 0 && !anyAtLeast(r.Result, m.PermissionsAny) {
		return false, ""
	}
	if m.RepositorySelection != "" && !strings.EqualFold(m.RepositorySelection, r.RepositorySelection) {
		return false, ""
	}
	if len(m.Repositories) > 0 {
		switch r.RepositorySelection {
		case "none":
		case "subset":
			for _, name := range r.Repositories {
				if !slices.ContainsFunc(m.Repositories, func(x string) bool { return strings.EqualFold(x, name) }) {
					return false, ""
				}
			}
			if !r.RepositoriesComplete {
				return false, "the request's repositories could not all be read"
			}
		default:
			return false, ""
		}
	}
	if m.NoExpiry != nil && *m.NoExpiry != (r.ExpiresAt == nil) {
		return false, ""
	}
	if m.MaxLifetime > 0 && (r.ExpiresAt == nil || r.ExpiresAt.Sub(r.CreatedAt) > m.MaxLifetime) {
		return false, ""
	}
	if len(m.Requesters) > 0 && !slices.ContainsFunc(m.Requesters, func(x string) bool { return strings.EqualFold(x, r.Owner) }) {
		return false, ""
	}
	if len(m.Flags) > 0 && !slices.ContainsFunc(flags, func(fl Flag) bool { return slices.Contains(m.Flags, fl.Name) }) {
		return false, ""
	}
	if len(m.RequesterTeams) > 0 {
		unknown := []string{}
		for _, t := range m.RequesterTeams {
			member, known := f.Teams[t]
			if member {
				return true, ""
			}
			if !known {
				unknown = append(unknown, t)
			}
		}
		if len(unknown) > 0 {
			return false, "GitHub could not say whether the requester is in " + strings.Join(unknown, ", ")
		}
		return false, ""
	}
	return true, ""
}

// atMost reports whether every permission in p is named in limits at or
// above its level.
func atMost(p Permissions, limits []Permission) bool {
	ok := true
	p.each(func(group, name string, level Level) {
		named := false
		for _, l := range limits {
			if l.covers(group, name) {
				named = true
				if level > l.Level {
					ok = false
				}
			}
		}
		if !named {
			ok = false
		}
	})
	return ok
}

// anyAtLeast reports whether some permission in p is at or above the
// level of one named in wanted.
func anyAtLeast(p Permissions, wanted []Permission) bool {
	found := false
	p.each(func(group, name string, level Level) {
		for _, w := range wanted {
			if w.covers(group, name) && level >= w.Level {
				found = true
			}
		}
	})
	return found
}

func (p Permission) covers(group, name string) bool {
	return p.Name == name && (p.Group == "" || p.Group == group)
}

// Describe is a rule's outcome in words: "approve", "deny", "review by 2".
func (v Verdict) Describe() string {
	switch {
	case v.Action == ActionReview && v.Approvals > 1:
		return fmt.Sprintf("ask for %d approvals", v.Approvals)
	case v.Action == ActionReview:
		return "leave it to an approver"
	}
	return v.Action
}
