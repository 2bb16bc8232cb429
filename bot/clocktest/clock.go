// Package clocktest is a clock for tests: it starts at a date the test
// names, not today's, so that a suite passes on any date, and the test can
// move it.
package clocktest

import (
	"sync"
	"time"
)

// Epoch is the date tests start at unless they name another: a fixed day,
// so that nothing depends on when the suite runs.
var Epoch = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// Clock reads start plus the real time elapsed since it was made, plus
// whatever the test has advanced it by: time passes as usual (timeouts and
// backoffs behave), but the date is the test's.
type Clock struct {
	mu     sync.Mutex
	start  time.Time
	origin time.Time // real time at start, for the elapsed part
	frozen bool
}

// New returns a clock that reads start now and runs from there.
func New(start time.Time) *Clock {
	return &Clock{start: start, origin: time.Now()}
}

// Frozen returns a clock that reads start until it is advanced or set.
func Frozen(start time.Time) *Clock {
	return &Clock{start: start, frozen: true}
}

// Now is the clock's time; pass c.Now wherever a func() time.Time is
// injected.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return c.start
	}
	return c.start.Add(time.Since(c.origin))
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start = c.start.Add(d)
}

// Set moves the clock to t (it keeps running from there unless frozen).
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.start = t
	if !c.frozen {
		c.origin = time.Now()
	}
}
