package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Permission groups, as GitHub groups a token's permissions.
const (
	GroupOrganization = "organization"
	GroupRepository   = "repository"
	GroupOther        = "other"
)

// Catalog is every permission a fine-grained token can request, by group
// (GitHub's app-permissions, as the token request APIs name them). A rule
// naming another is a configuration error: a typo must not make a rule
// match nothing, or everything.
var Catalog = map[string][]string{
	GroupRepository: {
		"actions", "administration", "artifact_metadata", "attestations", "checks", "code_scanning_alerts", "codespaces",
		"codespaces_lifecycle_admin", "codespaces_metadata", "codespaces_secrets", "contents", "custom_properties",
		"dependabot_alerts", "dependabot_secrets", "deployments", "discussions", "environments", "issues", "merge_queues",
		"metadata", "packages", "pages", "pull_requests", "repository_advisories", "repository_custom_properties",
		"repository_hooks", "repository_projects", "secret_scanning_alerts", "secret_scanning_push_protection_bypass_requests",
		"secrets", "security_events", "single_file", "statuses", "vulnerability_alerts", "workflows",
	},
	GroupOrganization: {
		"custom_properties_for_organizations", "members", "organization_administration", "organization_announcement_banners",
		"organization_api_insights", "organization_campaigns", "organization_codespaces", "organization_codespaces_secrets",
		"organization_codespaces_settings", "organization_copilot_agent_settings", "organization_copilot_seat_management",
		"organization_custom_org_roles", "organization_custom_properties", "organization_custom_roles",
		"organization_dependabot_secrets", "organization_events", "organization_hooks", "organization_knowledge_bases",
		"organization_network_configurations", "organization_packages", "organization_personal_access_token_requests",
		"organization_personal_access_tokens", "organization_plan", "organization_private_registries", "organization_projects",
		"organization_runner_custom_images", "organization_secrets", "organization_self_hosted_runners",
		"organization_user_blocking", "team_discussions",
	},
	GroupOther: {
		"blocking", "codespaces_user_secrets", "copilot_editor_context", "copilot_messages", "email_addresses", "followers",
		"gists", "git_ssh_keys", "gpg_keys", "interaction_limits", "keys", "knowledge_bases", "notifications", "plan",
		"profile", "starring", "watching",
	},
}

// Spec is an org's policy block as the YAML file writes it.
type Spec struct {
	Mode            string     `yaml:"mode"`
	MaxLifetime     string     `yaml:"max_lifetime"`
	Rules           []RuleSpec `yaml:"rules"`
	GrantForChoices []string   `yaml:"grant_for_choices"`
}

// RuleSpec is one rule as the YAML file writes it.
type RuleSpec struct {
	Name      string    `yaml:"name"`
	Match     MatchSpec `yaml:"match"`
	Action    string    `yaml:"action"`
	Reason    string    `yaml:"reason"`
	Approvals int       `yaml:"approvals"`
	GrantFor  string    `yaml:"grant_for"`
}

// MatchSpec is a rule's match as the YAML file writes it.
type MatchSpec struct {
	Permissions         map[string]string `yaml:"permissions"`
	PermissionsAny      map[string]string `yaml:"permissions_any"`
	Repositories        []string          `yaml:"repositories"`
	RepositorySelection string            `yaml:"repository_selection"`
	MaxLifetime         string            `yaml:"max_lifetime"`
	NoExpiry            *bool             `yaml:"no_expiry"`
	Requesters          []string          `yaml:"requesters"`
	RequesterTeams      []string          `yaml:"requester_teams"`
	Flags               []string          `yaml:"flags"`
}

func (m MatchSpec) empty() bool {
	return len(m.Permissions) == 0 && len(m.PermissionsAny) == 0 && len(m.Repositories) == 0 && m.RepositorySelection == "" &&
		m.MaxLifetime == "" && m.NoExpiry == nil && len(m.Requesters) == 0 && len(m.RequesterTeams) == 0 && len(m.Flags) == 0
}

// Compile checks a Spec and makes it a Policy. Each problem names where it
// is (prefix, then the rule), and all are reported at once.
func (s Spec) Compile(prefix string) (Policy, []string) {
	var problems []string
	add := func(where, format string, a ...any) {
		problems = append(problems, prefix+where+": "+fmt.Sprintf(format, a...))
	}
	p := Policy{Mode: s.Mode}
	switch s.Mode {
	case "":
		p.Mode = ModeEnforce
	case ModeEnforce, ModeSuggest:
	default:
		add(".mode", "%q: must be enforce or suggest", s.Mode)
	}
	if s.MaxLifetime != "" {
		d, err := ParseDuration(s.MaxLifetime)
		if err != nil {
			add(".max_lifetime", "%v", err)
		}
		p.MaxLifetime = d
	}
	for i, c := range s.GrantForChoices {
		d, err := ParseDuration(c)
		if err != nil {
			add(fmt.Sprintf(".grant_for_choices[%d]", i), "%v", err)
			continue
		}
		p.GrantForChoices = append(p.GrantForChoices, d)
	}
	slices.Sort(p.GrantForChoices)
	if len(p.GrantForChoices) > 10 {
		add(".grant_for_choices", "at most 10 choices")
	}
	names := map[string]bool{}
	catchAll := ""
	for i, rs := range s.Rules {
		where := fmt.Sprintf(".rules[%d]", i)
		if rs.Name != "" {
			where = fmt.Sprintf(".rules[%d] (%s)", i, rs.Name)
		}
		if catchAll != "" {
			add(where, "comes after rule %q, whose empty match takes every request: it can never apply", catchAll)
		}
		r, ruleProblems := rs.compile()
		for _, pr := range ruleProblems {
			add(where, "%s", pr)
		}
		if names[strings.ToLower(rs.Name)] && rs.Name != "" {
			add(where, "another rule has this name")
		}
		names[strings.ToLower(rs.Name)] = true
		if rs.Match.empty() && catchAll == "" {
			catchAll = cmp.Or(rs.Name, where)
		}
		p.Rules = append(p.Rules, r)
	}
	return p, problems
}

func (rs RuleSpec) compile() (Rule, []string) {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	r := Rule{Name: rs.Name, Action: rs.Action, Reason: rs.Reason, Approvals: rs.Approvals}
	if strings.TrimSpace(rs.Name) == "" {
		add("name is required (the audit trail and cards name the rule that decided)")
	}
	switch rs.Action {
	case ActionApprove, ActionDeny, ActionReview:
	case "":
		add("action is required: approve, deny or review")
	default:
		add("action %q: must be approve, deny or review", rs.Action)
	}
	if rs.Approvals != 0 && rs.Action != ActionReview {
		add("approvals goes with action: review only")
	}
	if rs.Approvals < 0 || rs.Approvals > 10 {
		add("approvals %d: must be 1 to 10", rs.Approvals)
	}
	if rs.Action == ActionReview && rs.Approvals == 0 {
		r.Approvals = 1
	}
	if rs.Reason != "" && rs.Action != ActionDeny {
		add("reason goes with action: deny only (GitHub sends it to the requester)")
	}
	if len([]rune(rs.Reason)) > 1024 {
		add("reason is longer than GitHub's 1,024 characters")
	}
	if rs.GrantFor != "" {
		d, err := ParseDuration(rs.GrantFor)
		if err != nil {
			add("grant_for: %v", err)
		}
		if rs.Action == ActionDeny {
			add("grant_for goes with approve or review, not deny")
		}
		r.GrantFor = d
	}
	m, matchProblems := rs.Match.compile()
	r.Match = m
	for _, p := range matchProblems {
		add("match: %s", p)
	}
	return r, problems
}

func (ms MatchSpec) compile() (Match, []string) {
	var problems []string
	add := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	m := Match{Repositories: ms.Repositories, RepositorySelection: ms.RepositorySelection, NoExpiry: ms.NoExpiry,
		Requesters: ms.Requesters, RequesterTeams: ms.RequesterTeams, Flags: ms.Flags}
	var errs []string
	m.Permissions, errs = compilePermissions(ms.Permissions)
	for _, e := range errs {
		add("permissions: %s", e)
	}
	m.PermissionsAny, errs = compilePermissions(ms.PermissionsAny)
	for _, e := range errs {
		add("permissions_any: %s", e)
	}
	switch ms.RepositorySelection {
	case "", "all", "subset", "none":
	default:
		add("repository_selection %q: must be all, subset or none", ms.RepositorySelection)
	}
	if ms.MaxLifetime != "" {
		d, err := ParseDuration(ms.MaxLifetime)
		if err != nil {
			add("max_lifetime: %v", err)
		}
		m.MaxLifetime = d
	}
	for _, f := range ms.Flags {
		if !slices.Contains(FlagNames, f) {
			add("flags: %q is not a flag (%s)", f, strings.Join(FlagNames, ", "))
		}
	}
	// Contradictions: a rule that can never match is a mistake.
	if ms.NoExpiry != nil && *ms.NoExpiry && ms.MaxLifetime != "" {
		add("no_expiry: true and max_lifetime contradict each other (max_lifetime needs an expiry)")
	}
	if len(ms.Repositories) > 0 && ms.RepositorySelection == "all" {
		add(`repositories and repository_selection: all contradict each other (repositories is never "all")`)
	}
	if ms.NoExpiry != nil && *ms.NoExpiry && slices.Contains(ms.Flags, FlagOverMaxLifetime) && len(ms.Flags) == 1 {
		add("no_expiry: true and flags: [over_max_lifetime] contradict each other")
	}
	for _, a := range m.PermissionsAny {
		if len(m.Permissions) == 0 {
			break
		}
		allowed := false
		for _, l := range m.Permissions {
			if (l.covers(a.Group, a.Name) || a.Group == "" && l.Name == a.Name) && l.Level >= a.Level {
				allowed = true
			}
		}
		if !allowed {
			add("permissions_any asks for %s, which permissions does not allow", a)
		}
	}
	return m, problems
}

// compilePermissions reads name: level pairs; a name may be qualified
// (repository.administration).
func compilePermissions(spec map[string]string) ([]Permission, []string) {
	var out []Permission
	var problems []string
	for _, key := range sortedKeys(spec) {
		group, name, qualified := strings.Cut(key, ".")
		if !qualified {
			group, name = "", key
		}
		level, ok := ParseLevel(spec[key])
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: level %q must be read, write or admin", key, spec[key]))
		}
		if !known(group, name) {
			problems = append(problems, fmt.Sprintf("%q is not a permission a fine-grained token can request", key))
		}
		out = append(out, Permission{Group: group, Name: name, Level: level})
	}
	return out, problems
}

func known(group, name string) bool {
	if group != "" {
		return slices.Contains(Catalog[group], name)
	}
	for _, names := range Catalog {
		if slices.Contains(names, name) {
			return true
		}
	}
	return false
}

// Durations shows durations the way the YAML writes them.
func Durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = FormatDuration(d)
	}
	return strings.Join(parts, ", ")
}

// ParsePermission reads a permission as a grants query names it: "name" or
// "name:level", the name qualified (repository.secrets) or not. Without a
// level it means any level.
func ParsePermission(spec string) (Permission, error) {
	name, levelText, hasLevel := strings.Cut(strings.TrimSpace(spec), ":")
	group, short, qualified := strings.Cut(name, ".")
	if !qualified {
		group, short = "", name
	}
	p := Permission{Group: group, Name: short}
	if hasLevel {
		level, ok := ParseLevel(levelText)
		if !ok {
			return p, fmt.Errorf("%q: the level must be read, write or admin", spec)
		}
		p.Level = level
	}
	if !known(group, short) {
		return p, fmt.Errorf("%q is not a permission a fine-grained token can hold", name)
	}
	return p, nil
}

// HeldIn reports whether perms hold p, at or above its level.
func (p Permission) HeldIn(perms Permissions) bool { return anyAtLeast(perms, []Permission{p}) }
