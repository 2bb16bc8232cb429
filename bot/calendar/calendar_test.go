package calendar

import (
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func tod(t *testing.T, s string) TimeOfDay {
	t.Helper()
	v, err := ParseTimeOfDay(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseTimeOfDay(t *testing.T) {
	if v, err := ParseTimeOfDay("08:05"); err != nil || v != 8*60+5 || v.String() != "08:05" {
		t.Errorf("08:05 = %v, %v", v, err)
	}
	for _, bad := range []string{"8", "24:00", "08:60", "8:5", "noon", ""} {
		if _, err := ParseTimeOfDay(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNextAt(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	for _, tc := range []struct {
		name string
		from time.Time
		at   string
		want time.Time
	}{
		{"later today", time.Date(2026, 6, 1, 6, 0, 0, 0, time.UTC), "09:00", time.Date(2026, 6, 1, 7, 0, 0, 0, time.UTC)},
		{"passed today: tomorrow", time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC), "09:00", time.Date(2026, 6, 2, 7, 0, 0, 0, time.UTC)},
		{"exactly now: tomorrow", time.Date(2026, 6, 1, 7, 0, 0, 0, time.UTC), "09:00", time.Date(2026, 6, 2, 7, 0, 0, 0, time.UTC)},
		{"winter offset", time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC), "09:00", time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)},
		{"in the spring gap: its end", time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC), "02:30", time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"after the spring change", time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC), "09:00", time.Date(2026, 3, 29, 7, 0, 0, 0, time.UTC)},
	} {
		if got := NextAt(tc.from, tod(t, tc.at), berlin); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got.UTC(), tc.want)
		}
	}
}

func TestQuiet(t *testing.T) {
	berlin := mustLoad(t, "Europe/Berlin")
	night := Quiet{From: tod(t, "20:00"), To: tod(t, "08:00"), Weekends: true}
	// 2026-06-03 is a Wednesday; Berlin is UTC+2 in June.
	wed := func(h, m int) time.Time { return time.Date(2026, 6, 3, h, m, 0, 0, berlin) }
	for _, tc := range []struct {
		name  string
		at    time.Time
		quiet bool
		end   time.Time
	}{
		{"working hours", wed(10, 0), false, wed(10, 0)},
		{"evening", wed(21, 0), true, time.Date(2026, 6, 4, 8, 0, 0, 0, berlin)},
		{"early morning", wed(7, 59), true, wed(8, 0)},
		{"the end itself", wed(8, 0), false, wed(8, 0)},
		{"friday night: until monday", time.Date(2026, 6, 5, 22, 0, 0, 0, berlin), true, time.Date(2026, 6, 8, 8, 0, 0, 0, berlin)},
		{"sunday noon", time.Date(2026, 6, 7, 12, 0, 0, 0, berlin), true, time.Date(2026, 6, 8, 8, 0, 0, 0, berlin)},
	} {
		if got := night.Contains(tc.at, berlin); got != tc.quiet {
			t.Errorf("%s: quiet = %v", tc.name, got)
		}
		if got := night.End(tc.at, berlin); !got.Equal(tc.end) {
			t.Errorf("%s: end = %v, want %v", tc.name, got, tc.end)
		}
	}
	day := Quiet{From: tod(t, "12:00"), To: tod(t, "13:00")}
	if !day.Contains(wed(12, 30), berlin) || day.Contains(wed(13, 0), berlin) || day.Contains(time.Date(2026, 6, 6, 10, 0, 0, 0, berlin), berlin) {
		t.Error("a daytime quiet period")
	}
	if (Quiet{}).Contains(wed(3, 0), berlin) {
		t.Error("no quiet hours are quiet")
	}
}
