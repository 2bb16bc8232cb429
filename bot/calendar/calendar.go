// Package calendar answers patbot's questions about local time: when an
// org's quiet hours end, and when a daily time of day next comes, in the
// org's time zone, daylight saving included. It is pure: times in, times
// out.
package calendar

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "time/tzdata" // the tz database, for hosts and images without one
)

// TimeOfDay is a time on a local clock, in minutes after midnight.
type TimeOfDay int

// ParseTimeOfDay reads "HH:MM" (24-hour).
func ParseTimeOfDay(s string) (TimeOfDay, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not a time of day like 08:00 or 20:30", s)
	}
	return TimeOfDay(hh*60 + mm), nil
}

func (t TimeOfDay) String() string { return fmt.Sprintf("%02d:%02d", int(t)/60, int(t)%60) }

// on is the first instant of day (a local date in loc) whose clock reads
// t or later: t itself, or, when t falls in a daylight-saving gap, the
// first valid minute after it.
func (t TimeOfDay) on(year int, month time.Month, day int, loc *time.Location) time.Time {
	want := time.Date(year, month, day, int(t)/60, int(t)%60, 0, 0, loc)
	if h, m, _ := want.Clock(); h*60+m == int(t) {
		return want
	}
	// In a gap Go moves the clock on by the gap's length; the gap ends at
	// the zone transition, which lies within the hour before.
	for at := want.Add(-2 * time.Hour); at.Before(want); at = at.Add(time.Minute) {
		if y, mo, d := at.Date(); y == year && mo == month && d == day {
			if h, m, _ := at.Clock(); h*60+m >= int(t) {
				return at
			}
		}
	}
	return want
}

// NextAt is the first instant after from whose local clock in loc reads
// t (or the first valid minute after t, on a day t does not exist).
func NextAt(from time.Time, t TimeOfDay, loc *time.Location) time.Time {
	local := from.In(loc)
	for i := range 3 {
		y, m, d := local.AddDate(0, 0, i).Date()
		if at := t.on(y, m, d, loc); at.After(from) {
			return at
		}
	}
	y, m, d := local.AddDate(0, 0, 3).Date()
	return t.on(y, m, d, loc)
}

// Quiet hours: from From to To on the local clock (across midnight when
// From is later than To), and all of Saturday and Sunday with Weekends.
type Quiet struct {
	From, To TimeOfDay
	Weekends bool
}

// Contains reports whether at is within quiet hours in loc.
func (q Quiet) Contains(at time.Time, loc *time.Location) bool {
	local := at.In(loc)
	if q.Weekends && (local.Weekday() == time.Saturday || local.Weekday() == time.Sunday) {
		return true
	}
	h, m, _ := local.Clock()
	now := TimeOfDay(h*60 + m)
	switch {
	case q.From == q.To:
		return false
	case q.From < q.To:
		return now >= q.From && now < q.To
	}
	return now >= q.From || now < q.To
}

// End is when quiet hours that contain at end: the first instant after
// at, in loc, that is not quiet. It is at itself when at is not quiet.
func (q Quiet) End(at time.Time, loc *time.Location) time.Time {
	for range 10 { // a weekend, then a night: a few steps at most
		if !q.Contains(at, loc) {
			return at
		}
		local := at.In(loc)
		if q.Weekends && (local.Weekday() == time.Saturday || local.Weekday() == time.Sunday) {
			y, m, d := local.AddDate(0, 0, 1).Date()
			at = time.Date(y, m, d, 0, 0, 0, 0, loc)
			continue
		}
		at = NextAt(at, q.To, loc)
	}
	return at
}
