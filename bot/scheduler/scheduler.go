// Package scheduler runs patbot's background work under one owner: pools
// of workers taking tasks from bounded queues, periodic work, and the
// durable timers the store holds. A panic in a task becomes an error, time
// is an injected clock, and each Run returns once what it started has
// stopped.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/patbot/patbot/store"
)

// Clock tells the time and waits by it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// ErrCapacityExceeded means a pool's queue is full: the caller says so
// (503, "busy") rather than wait.
var ErrCapacityExceeded = errors.New("scheduler: queue full")

// Task is one piece of work for a pool. ctx ends at the task's timeout, or
// when the pool's work context ends (past the drain deadline).
type Task func(ctx context.Context)

// Pool runs tasks on a fixed number of workers; at most its capacity wait.
type Pool struct {
	name    string
	workers int
	queue   chan Task
	timeout time.Duration
	log     *slog.Logger
	// before, when set, runs before each task (jobs yield to webhook
	// intake there); it must return when stop ends.
	before func(stop context.Context)
}

// NewPool returns a pool of workers that runs each task with timeout.
func NewPool(name string, workers, capacity int, timeout time.Duration, log *slog.Logger) *Pool {
	return &Pool{name: name, workers: max(workers, 1), queue: make(chan Task, max(capacity, 1)), timeout: timeout, log: log}
}

// Before sets what runs before each task.
func (p *Pool) Before(f func(stop context.Context)) { p.before = f }

// Submit queues a task, or reports ErrCapacityExceeded at once.
func (p *Pool) Submit(t Task) error {
	select {
	case p.queue <- t:
		return nil
	default:
		return ErrCapacityExceeded
	}
}

// Waiting is how many tasks wait in the queue.
func (p *Pool) Waiting() int { return len(p.queue) }

// Run runs the workers until stop ends; then no task starts, and tasks in
// progress go on with work, which the owner ends at its drain deadline.
// Tasks still queued are dropped: their durable part is in the store.
func (p *Pool) Run(stop, work context.Context) {
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for {
				select {
				case <-stop.Done():
					return
				case task := <-p.queue:
					if p.before != nil {
						p.before(stop)
						if stop.Err() != nil {
							return
						}
					}
					ctx, cancel := context.WithTimeout(work, p.timeout)
					if err := Safe(func() { task(ctx) }); err != nil {
						p.log.Error("task panicked", "pool", p.name, "err", err)
					}
					cancel()
				}
			}
		})
	}
	wg.Wait()
}

// Safe runs f, turning a panic into an error with its stack, so that one
// bad piece of work cannot take patbot down.
func Safe(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	f()
	return nil
}

// Every runs f at once and then every interval, until ctx ends.
func Every(ctx context.Context, clock Clock, interval time.Duration, log *slog.Logger, f func(context.Context)) {
	for {
		if err := Safe(func() { f(ctx) }); err != nil {
			log.Error("periodic work panicked", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-clock.After(interval):
		}
	}
}

// Handler does the work of one timer. An error retries it later.
type Handler func(ctx context.Context, t store.Timer) error

// Timer runner settings.
const (
	timerLease   = 5 * time.Minute // a runner that dies frees its timers after this
	timerPoll    = time.Minute     // the longest wait between looks at the store
	timerBatch   = 100             // timers claimed at a time
	timerTimeout = time.Minute     // one timer's work
	timerBackoff = time.Minute     // after a failure, doubling, up to an hour
)

// Timers runs the store's due timers, each by the handler of its kind.
type Timers struct {
	store    store.Timers
	clock    Clock
	log      *slog.Logger
	handlers map[string]Handler
	timeouts map[string]time.Duration // kinds whose work may take longer than timerTimeout
	periodic []string                 // kinds Every registered, scheduled at Run's start
	wake     chan struct{}
}

// NewTimers returns a runner of st's timers.
func NewTimers(st store.Timers, clock Clock, log *slog.Logger) *Timers {
	return &Timers{store: st, clock: clock, log: log, handlers: map[string]Handler{}, timeouts: map[string]time.Duration{}, wake: make(chan struct{}, 1)}
}

// Every registers periodic work as a durable timer of its own kind, so
// that with several runners on one store it runs on one at a time: at
// Run's start (any runner's start brings it forward to then), and then
// interval after each run ends. timeout bounds one run. Register before
// Run.
func (s *Timers) Every(kind string, interval, timeout time.Duration, f func(context.Context)) {
	s.timeouts[kind] = timeout
	s.periodic = append(s.periodic, kind)
	s.handlers[kind] = func(ctx context.Context, _ store.Timer) error {
		if err := Safe(func() { f(ctx) }); err != nil {
			s.log.Error("periodic work panicked", "kind", kind, "err", err)
		}
		_, err := s.store.SetTimer(store.Timer{Kind: kind, Key: kind, Due: s.clock.Now().Add(interval)})
		return err
	}
}

// Handle registers the handler of a kind of timer, before Run.
func (s *Timers) Handle(kind string, h Handler) { s.handlers[kind] = h }

// Set schedules a timer (see store.Timers.SetTimer), and wakes the runner
// in case it is due before what it waits for.
func (s *Timers) Set(t store.Timer) (uint64, error) {
	id, err := s.store.SetTimer(t)
	if err == nil {
		s.Wake()
	}
	return id, err
}

// Wake makes the runner look at the store again: for timers written
// otherwise than through Set (with a change, in one transaction).
func (s *Timers) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run fires due timers until ctx ends.
func (s *Timers) Run(ctx context.Context) {
	for _, kind := range s.periodic {
		if _, err := s.store.SetTimer(store.Timer{Kind: kind, Key: kind, Due: s.clock.Now()}); err != nil {
			s.log.Error("cannot schedule periodic work; it runs when its timer comes due", "kind", kind, "err", err)
		}
	}
	for {
		for ctx.Err() == nil {
			n, err := s.fireDue(ctx)
			if err != nil {
				s.log.Error("cannot read timers; will try again", "err", err)
				break
			}
			if n < timerBatch {
				break
			}
		}
		wait := timerPoll
		if next, err := s.store.NextTimerDue(); err == nil && !next.IsZero() {
			wait = min(max(next.Sub(s.clock.Now()), 0), timerPoll)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-s.clock.After(wait):
		}
	}
}

// fireDue claims what is due and runs it, and reports how many it claimed.
func (s *Timers) fireDue(ctx context.Context) (int, error) {
	now := s.clock.Now()
	due, err := s.store.ClaimDueTimers(now, timerLease, timerBatch)
	if err != nil {
		return 0, err
	}
	for _, t := range due {
		if ctx.Err() != nil {
			return len(due), nil // unfinished: the lease lapses, and they fire at the next start
		}
		s.fire(ctx, t)
	}
	return len(due), nil
}

func (s *Timers) fire(ctx context.Context, t store.Timer) {
	log := s.log.With("timer", t.ID, "kind", t.Kind, "key", t.Key)
	h, ok := s.handlers[t.Kind]
	var err error
	if !ok {
		err = fmt.Errorf("no handler for timers of kind %q", t.Kind)
	} else {
		timeout := timerTimeout
		if d, ok := s.timeouts[t.Kind]; ok {
			timeout = d
		}
		tctx, cancel := context.WithTimeout(ctx, timeout)
		if perr := Safe(func() { err = h(tctx, t) }); perr != nil {
			err = perr
		}
		cancel()
	}
	if err == nil {
		if ferr := s.store.FinishTimer(t.ID); ferr != nil && !errors.Is(ferr, store.ErrNotFound) {
			log.Error("timer fired but cannot be removed; it may fire again", "err", ferr)
		}
		log.Debug("timer fired")
		return
	}
	delay := min(timerBackoff<<min(max(t.Attempts, 1)-1, 10), time.Hour)
	if rerr := s.store.RetryTimer(t.ID, s.clock.Now().Add(delay), err); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
		log.Error("cannot reschedule a failed timer; it fires again when its lease lapses", "err", rerr)
	}
	log.Warn("timer failed; will retry", "err", err, "attempts", t.Attempts, "retry_in", delay)
}
