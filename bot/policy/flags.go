package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The risk flags, by name.
const (
	FlagAllRepositories = "all_repositories"
	FlagSensitiveWrite  = "sensitive_write"
	FlagNoExpiry        = "no_expiry"
	FlagOverMaxLifetime = "over_max_lifetime"
	FlagUpgrade         = "upgrade"
)

// FlagNames are every flag, in the order cards show them.
var FlagNames = []string{FlagAllRepositories, FlagSensitiveWrite, FlagNoExpiry, FlagOverMaxLifetime, FlagUpgrade}

// Flag is one risk of a request, with a short reason.
type Flag struct {
	Name   string
	Reason string
}

// Sensitive are the permissions whose write (or admin) access is flagged.
var Sensitive = []Permission{
	{Group: GroupRepository, Name: "administration"},
	{Group: GroupRepository, Name: "secrets"},
	{Group: GroupRepository, Name: "workflows"},
	{Group: GroupRepository, Name: "environments"},
	{Group: GroupRepository, Name: "actions"},
	{Group: GroupOrganization, Name: "organization_administration"},
	{Group: GroupOrganization, Name: "members"},
	{Group: GroupOrganization, Name: "organization_secrets"},
	{Group: GroupOrganization, Name: "organization_self_hosted_runners"},
	{Group: GroupOrganization, Name: "organization_personal_access_tokens"},
	{Group: GroupOrganization, Name: "organization_personal_access_token_requests"},
}

// Flags computes a request's risk flags from the request alone. maxLifetime
// is the org's (0: none).
func Flags(r Request, maxLifetime time.Duration) []Flag {
	var flags []Flag
	if r.RepositorySelection == "all" {
		flags = append(flags, Flag{FlagAllRepositories, "every repository of the organization, present and future"})
	}
	var sensitive []string
	r.Result.each(func(group, name string, level Level) {
		for _, s := range Sensitive {
			if s.covers(group, name) && level >= LevelWrite {
				sensitive = append(sensitive, group+"."+name+" "+level.String())
			}
		}
	})
	if len(sensitive) > 0 {
		flags = append(flags, Flag{FlagSensitiveWrite, strings.Join(sensitive, ", ")})
	}
	if r.ExpiresAt == nil {
		flags = append(flags, Flag{FlagNoExpiry, "the token never expires"})
	} else if lifetime := r.ExpiresAt.Sub(r.CreatedAt); maxLifetime > 0 && lifetime > maxLifetime {
		flags = append(flags, Flag{FlagOverMaxLifetime, fmt.Sprintf("lives %s, over the organization's %s", FormatDuration(lifetime), FormatDuration(maxLifetime))})
	}
	var upgraded []string
	r.Upgraded.each(func(group, name string, level Level) {
		upgraded = append(upgraded, group+"."+name+" "+level.String())
	})
	if len(upgraded) > 0 {
		flags = append(flags, Flag{FlagUpgrade, "raises an existing grant: " + strings.Join(upgraded, ", ")})
	}
	return flags
}

// ParseDuration reads Go's durations plus d for days: 90s, 15m, 4h, 7d,
// 1d12h. Only positive durations are accepted.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	rest := s
	var days int64
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration (like 90s, 15m, 4h or 7d)", s)
		}
		days, rest = n, s[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, fmt.Errorf("%q is not a duration (like 90s, 15m, 4h or 7d)", s)
		}
	}
	d += time.Duration(days) * 24 * time.Hour
	if d <= 0 {
		return 0, fmt.Errorf("%q: a duration must be positive", s)
	}
	return d, nil
}

// FormatDuration writes a duration as the YAML would: 7d, 36h, 90s.
func FormatDuration(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return strconv.FormatInt(int64(d/day), 10) + "d"
	case d >= day:
		return strconv.FormatInt(int64(d/day), 10) + "d" + strings.TrimSuffix(strings.TrimSuffix((d%day).String(), "0s"), "0m")
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
