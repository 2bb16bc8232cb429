package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var created = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

func days(n int) *time.Time {
	t := created.Add(time.Duration(n) * 24 * time.Hour)
	return &t
}

func flagNames(fs []Flag) []string {
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	return names
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  Request
		max  time.Duration
		want []string
	}{
		{"read-only, expiring", Request{RepositorySelection: "subset", Result: Permissions{Repository: map[string]string{"contents": "read", "metadata": "read"}}, CreatedAt: created, ExpiresAt: days(30)}, 0, nil},
		{"all repositories", Request{RepositorySelection: "all", CreatedAt: created, ExpiresAt: days(30)}, 0, []string{FlagAllRepositories}},
		{"write on workflows", Request{Result: Permissions{Repository: map[string]string{"workflows": "write"}}, CreatedAt: created, ExpiresAt: days(7)}, 0, []string{FlagSensitiveWrite}},
		{"read on secrets is not sensitive write", Request{Result: Permissions{Repository: map[string]string{"secrets": "read"}}, CreatedAt: created, ExpiresAt: days(7)}, 0, nil},
		{"admin on org administration", Request{Result: Permissions{Organization: map[string]string{"organization_administration": "admin"}}, CreatedAt: created, ExpiresAt: days(7)}, 0, []string{FlagSensitiveWrite}},
		{"members write", Request{Result: Permissions{Organization: map[string]string{"members": "write"}}, CreatedAt: created, ExpiresAt: days(7)}, 0, []string{FlagSensitiveWrite}},
		{"administration in the wrong group is not sensitive", Request{Result: Permissions{Other: map[string]string{"administration": "write"}}, CreatedAt: created, ExpiresAt: days(7)}, 0, nil},
		{"no expiry", Request{CreatedAt: created}, 90 * 24 * time.Hour, []string{FlagNoExpiry}},
		{"over max lifetime", Request{CreatedAt: created, ExpiresAt: days(120)}, 90 * 24 * time.Hour, []string{FlagOverMaxLifetime}},
		{"at max lifetime", Request{CreatedAt: created, ExpiresAt: days(90)}, 90 * 24 * time.Hour, nil},
		{"no max lifetime set", Request{CreatedAt: created, ExpiresAt: days(366)}, 0, nil},
		{"upgrade", Request{Upgraded: Permissions{Repository: map[string]string{"contents": "write"}}, CreatedAt: created, ExpiresAt: days(7)}, 0, []string{FlagUpgrade}},
		{"everything", Request{RepositorySelection: "all", Result: Permissions{Repository: map[string]string{"secrets": "write"}},
			Upgraded: Permissions{Repository: map[string]string{"secrets": "write"}}, CreatedAt: created}, 90 * 24 * time.Hour,
			[]string{FlagAllRepositories, FlagSensitiveWrite, FlagNoExpiry, FlagUpgrade}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Flags(tc.req, tc.max)
			if !slices.Equal(flagNames(got), tc.want) {
				t.Errorf("flags = %v, want %v", got, tc.want)
			}
			for _, f := range got {
				if f.Reason == "" {
					t.Errorf("flag %s has no reason", f.Name)
				}
			}
		})
	}
	f := Flags(Request{Result: Permissions{Repository: map[string]string{"administration": "write"}}, CreatedAt: created, ExpiresAt: days(120)}, 90*24*time.Hour)
	if f[0].Reason != "repository.administration write" || f[1].Reason != "lives 120d, over the organization's 90d" {
		t.Errorf("reasons = %+v", f)
	}
}

// The example policy, compiled from YAML.
const examplePolicy = `
mode: enforce
max_lifetime: 90d
rules:
  - name: docs read-only
    match:
      permissions: {contents: read, metadata: read}
      repositories: [docs, website]
      max_lifetime: 30d
    action: approve
  - name: no endless tokens
    match: {no_expiry: true}
    action: deny
    reason: Tokens must expire within 90 days.
  - name: admin needs two
    match: {permissions_any: {administration: write, secrets: write}}
    action: review
    approvals: 2
  - name: contractors
    match: {requester_teams: [contractors]}
    action: review
    grant_for: 7d
`

func compile(t *testing.T, text string) Policy {
	t.Helper()
	var s Spec
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	p, problems := s.Compile("orgs.acme.policy")
	if len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	return p
}

func TestEvaluate(t *testing.T) {
	p := compile(t, examplePolicy)
	readDocs := Permissions{Repository: map[string]string{"contents": "read", "metadata": "read"}}
	member := Facts{Teams: map[string]bool{"contractors": true}}
	notMember := Facts{Teams: map[string]bool{"contractors": false}}
	unknown := Facts{}
	for _, tc := range []struct {
		name      string
		req       Request
		facts     Facts
		rule      string
		action    string
		approvals int
		grantFor  time.Duration
		unchecked int
	}{
		{"docs read-only approves", Request{Owner: "octocat", RepositorySelection: "subset", Repositories: []string{"docs"}, RepositoriesComplete: true,
			Result: readDocs, CreatedAt: created, ExpiresAt: days(30)}, notMember, "docs read-only", ActionApprove, 1, 0, 0},
		{"no repositories is a subset", Request{RepositorySelection: "none", Result: readDocs, CreatedAt: created, ExpiresAt: days(7)}, notMember,
			"docs read-only", ActionApprove, 1, 0, 0},
		{"a repository outside the list", Request{RepositorySelection: "subset", Repositories: []string{"docs", "api"}, RepositoriesComplete: true,
			Result: readDocs, CreatedAt: created, ExpiresAt: days(30)}, notMember, "", ActionReview, 1, 0, 0},
		{"all repositories never match repositories", Request{RepositorySelection: "all", Result: readDocs, CreatedAt: created, ExpiresAt: days(30)}, notMember,
			"", ActionReview, 1, 0, 0},
		{"a permission not named", Request{RepositorySelection: "none", Result: Permissions{Repository: map[string]string{"contents": "read", "issues": "read"}},
			CreatedAt: created, ExpiresAt: days(7)}, notMember, "", ActionReview, 1, 0, 0},
		{"a level above the one named", Request{RepositorySelection: "none", Result: Permissions{Repository: map[string]string{"contents": "write"}},
			CreatedAt: created, ExpiresAt: days(7)}, notMember, "", ActionReview, 1, 0, 0},
		{"lives too long for the docs rule", Request{RepositorySelection: "none", Result: readDocs, CreatedAt: created, ExpiresAt: days(31)}, notMember,
			"", ActionReview, 1, 0, 0},
		{"no expiry denies", Request{RepositorySelection: "none", Result: readDocs, CreatedAt: created}, notMember, "no endless tokens", ActionDeny, 0, 0, 0},
		{"administration write needs two", Request{RepositorySelection: "all", Result: Permissions{Repository: map[string]string{"administration": "write"}},
			CreatedAt: created, ExpiresAt: days(30)}, notMember, "admin needs two", ActionReview, 2, 0, 0},
		{"administration admin is at or above write", Request{RepositorySelection: "all", Result: Permissions{Repository: map[string]string{"administration": "admin"}},
			CreatedAt: created, ExpiresAt: days(30)}, notMember, "admin needs two", ActionReview, 2, 0, 0},
		{"administration read is below", Request{RepositorySelection: "all", Result: Permissions{Repository: map[string]string{"administration": "read"}},
			CreatedAt: created, ExpiresAt: days(30)}, notMember, "", ActionReview, 1, 0, 0},
		{"contractors get a time-bound grant", Request{Owner: "temp", RepositorySelection: "all", Result: Permissions{Repository: map[string]string{"issues": "write"}},
			CreatedAt: created, ExpiresAt: days(30)}, member, "contractors", ActionReview, 1, 7 * 24 * time.Hour, 0},
		{"team unknown: no match, noted", Request{Owner: "temp", RepositorySelection: "all", Result: Permissions{Repository: map[string]string{"issues": "write"}},
			CreatedAt: created, ExpiresAt: days(30)}, unknown, "", ActionReview, 1, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := p.Evaluate(tc.req, tc.facts)
			if v.Rule != tc.rule || v.Action != tc.action || v.Approvals != tc.approvals || v.GrantFor != tc.grantFor || len(v.Unchecked) != tc.unchecked {
				t.Errorf("verdict = %+v", v)
			}
		})
	}
}

// Nothing is approved because a fact was missing: an approve rule after
// an unchecked one asks people instead; a deny still denies.
func TestFailClosed(t *testing.T) {
	p := compile(t, `
rules:
  - name: contractors denied
    match: {requester_teams: [contractors]}
    action: deny
  - name: anything read-only
    match: {permissions: {metadata: read}}
    action: approve
  - name: subset docs
    match: {repositories: [docs]}
    action: approve
`)
	read := Request{RepositorySelection: "none", Result: Permissions{Repository: map[string]string{"metadata": "read"}}, CreatedAt: created, ExpiresAt: days(7)}
	v := p.Evaluate(read, Facts{})
	if v.Action != ActionReview || v.Rule != "anything read-only" || len(v.Unchecked) != 1 || !strings.Contains(v.Unchecked[0], "contractors") {
		t.Errorf("with the team unknown: %+v", v)
	}
	if v := p.Evaluate(read, Facts{Teams: map[string]bool{"contractors": false}}); v.Action != ActionApprove {
		t.Errorf("with the team known: %+v", v)
	}
	if v := p.Evaluate(read, Facts{Teams: map[string]bool{"contractors": true}}); v.Action != ActionDeny {
		t.Errorf("a contractor: %+v", v)
	}
	partial := Request{RepositorySelection: "subset", Repositories: []string{"docs"}, RepositoriesComplete: false,
		Result: Permissions{Repository: map[string]string{"contents": "read"}}, CreatedAt: created, ExpiresAt: days(7)}
	if v := p.Evaluate(partial, Facts{Teams: map[string]bool{"contractors": false}}); v.Action != ActionReview || len(v.Unchecked) != 1 {
		t.Errorf("with repositories not all read: %+v", v)
	}
}

func TestQualifiedPermissions(t *testing.T) {
	p := compile(t, `
rules:
  - name: org members write
    match: {permissions_any: {organization.members: write}}
    action: deny
  - name: read anything named
    match: {permissions: {repository.contents: read, metadata: read}}
    action: approve
`)
	orgMembers := Request{Result: Permissions{Organization: map[string]string{"members": "write"}}, CreatedAt: created, ExpiresAt: days(7)}
	if v := p.Evaluate(orgMembers, Facts{}); v.Action != ActionDeny {
		t.Errorf("organization.members write: %+v", v)
	}
	mixed := Request{Result: Permissions{Repository: map[string]string{"contents": "read"}, Organization: map[string]string{"metadata": "read"}},
		CreatedAt: created, ExpiresAt: days(7)}
	if v := p.Evaluate(mixed, Facts{}); v.Action != ActionApprove {
		t.Errorf("unqualified metadata in any group: %+v", v)
	}
	wrongGroup := Request{Result: Permissions{Other: map[string]string{"contents": "read"}}, CreatedAt: created, ExpiresAt: days(7)}
	if v := p.Evaluate(wrongGroup, Facts{}); v.Rule != "" {
		t.Errorf("repository.contents does not cover other.contents: %+v", v)
	}
}

func TestCompileProblems(t *testing.T) {
	var s Spec
	err := yaml.Unmarshal([]byte(`
mode: strict
max_lifetime: forever
grant_for_choices: [1d, -2h]
rules:
  - name: bad
    match:
      permissions: {contens: read, metadata: sometimes}
      permissions_any: {administration: write}
      repositories: [docs]
      repository_selection: all
      no_expiry: true
      max_lifetime: 30d
      flags: [scary]
    action: approve
    approvals: 2
    reason: because
  - name: everything
    match: {}
    action: review
  - name: unreachable
    match: {requesters: [x]}
    action: deny
    grant_for: 1d
  - match: {flags: [upgrade]}
    action: maybe
`), &s)
	if err != nil {
		t.Fatal(err)
	}
	_, problems := s.Compile("orgs.acme.policy")
	text := strings.Join(problems, "\n")
	for _, want := range []string{
		`orgs.acme.policy.mode: "strict": must be enforce or suggest`,
		`orgs.acme.policy.max_lifetime: "forever" is not a duration`,
		`orgs.acme.policy.grant_for_choices[1]: "-2h"`,
		`rules[0] (bad): match: permissions: "contens" is not a permission`,
		`rules[0] (bad): match: permissions: metadata: level "sometimes" must be read, write or admin`,
		`rules[0] (bad): match: permissions_any asks for administration: write, which permissions does not allow`,
		`rules[0] (bad): match: repositories and repository_selection: all contradict`,
		`rules[0] (bad): match: no_expiry: true and max_lifetime contradict`,
		`rules[0] (bad): match: flags: "scary" is not a flag`,
		`rules[0] (bad): approvals goes with action: review only`,
		`rules[0] (bad): reason goes with action: deny only`,
		`rules[2] (unreachable): comes after rule "everything", whose empty match takes every request`,
		`rules[2] (unreachable): grant_for goes with approve or review, not deny`,
		`rules[3]: name is required`,
		`rules[3]: action "maybe": must be approve, deny or review`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "15m": 15 * time.Minute, "4h": 4 * time.Hour, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "0s", "-1d", "d", "7days", "1.5d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	for d, want := range map[time.Duration]string{7 * 24 * time.Hour: "7d", 36 * time.Hour: "1d12h", 90 * time.Second: "1m30s", 4 * time.Hour: "4h", 15 * time.Minute: "15m"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
