// Package clocktest is a clock for tests: it starts at a date the test
// names, not today's, so that a suite passes on any date, and the test can
// move it; timers fire by it.
package clocktest

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Epoch is the date tests start at unless they name another: a fixed day,
// so that nothing depends on when the suite runs.
var Epoch = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// Clock reads start plus the real time elapsed since it was made, plus
// whatever the test has advanced it by: time passes as usual (timeouts and
// backoffs behave), but the date is the test's. A frozen clock moves only
// when the test moves it.
type Clock struct {
	mu     sync.Mutex
	start  time.Time
	origin time.Time // real time at start, for the elapsed part
	frozen bool
	timers []*timer
}

type timer struct {
	at    time.Time
	ch    chan time.Time
	real  *time.Timer // set and read under the clock's mu
	once  sync.Once
	fired atomic.Bool
}

// New returns a clock that reads start now and runs from there.
func New(start time.Time) *Clock {
	return &Clock{start: start, origin: time.Now()}
}

// Frozen returns a clock that reads start until it is advanced or set.
func Frozen(start time.Time) *Clock {
	return &Clock{start: start, frozen: true}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now()
}

func (c *Clock) now() time.Time {
	if c.frozen {
		return c.start
	}
	return c.start.Add(time.Since(c.origin))
}

// After returns a channel that receives the clock's time once it reads d
// later than now: as real time passes (unless frozen), or as soon as the
// test moves the clock past it.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now().Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		t.ch <- c.now()
		return t.ch
	}
	if !c.frozen {
		t.real = time.AfterFunc(d, func() { c.fire(t) })
	}
	c.timers = slices.DeleteFunc(c.timers, func(t *timer) bool { return t.fired.Load() })
	c.timers = append(c.timers, t)
	return t.ch
}

func (c *Clock) fire(t *timer) {
	t.once.Do(func() {
		t.fired.Store(true)
		t.ch <- c.Now()
	})
}

// Advance moves the clock forward by d, firing the timers it passes.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.start = c.start.Add(d)
	c.mu.Unlock()
	c.fireDue()
}

func (c *Clock) fireDue() {
	c.mu.Lock()
	now := c.now()
	var due, left []*timer
	for _, t := range c.timers {
		if !t.at.After(now) {
			if t.real != nil {
				t.real.Stop()
			}
			due = append(due, t)
		} else {
			left = append(left, t)
		}
	}
	c.timers = left
	c.mu.Unlock()
	for _, t := range due {
		c.fire(t)
	}
}

// Timers is how many timers wait to fire: a test can wait until the code
// it drives has set its timer before moving the clock.
func (c *Clock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.fired.Load() {
			n++
		}
	}
	return n
}
