package bot

import (
	"context"
	"errors"
	"time"

	"github.com/patbot/patbot/bot/scheduler"
	"github.com/patbot/patbot/store"
)

// maxRetryBackoff caps the wait between attempts at a failing job.
const maxRetryBackoff = 5 * time.Minute

// permanentError marks a job failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// reserve claims a place for one more unfinished job, or reports that the
// queue is full.
func (b *Bot) reserve() bool {
	if b.reserved.Add(1) > b.capacity {
		b.reserved.Add(-1)
		return false
	}
	return true
}

func (b *Bot) release() { b.reserved.Add(-1) }

// queueJob hands a job the store holds to the workers; its place is
// reserved, so the pool has room.
func (b *Bot) queueJob(id uint64) {
	if err := b.jobs.Submit(func(ctx context.Context) { b.runJob(b.stopContext(), ctx, id) }); err != nil {
		b.log.Error("job not queued; it runs at the next start", LogJob, id, "err", err)
	}
}

// stopContext is Run's context: it ends when patbot stops taking work.
func (b *Bot) stopContext() context.Context {
	if stop := b.stopping.Load(); stop != nil {
		return *stop
	}
	return context.Background()
}

// runJob runs one job on ctx (its timeout, and the drain deadline), and
// decides what follows a failure; stop ends when patbot stops.
func (b *Bot) runJob(stop, ctx context.Context, id uint64) {
	job, err := b.store.Job(id)
	if errors.Is(err, store.ErrNotFound) {
		b.release() // finished already
		return
	}
	log := b.log.With(LogJob, id)
	if err != nil {
		log.Error("cannot read job", "err", err)
		b.retryLater(stop, id, b.retryBackoff)
		return
	}
	log = log.With(LogDelivery, job.DeliveryID, LogOrg, job.Org, LogRequest, job.RequestID, LogAction, job.Action)

	if perr := scheduler.Safe(func() { err = b.process(ctx, job) }); perr != nil {
		err = permanent(perr) // one bad job must not take patbot down
	}
	if err == nil {
		if err := b.store.FinishJob(id); err != nil {
			// Processing is idempotent, so running it again is safe.
			log.Error("cannot mark job finished", "err", err)
			b.retryLater(stop, id, b.retryBackoff)
			return
		}
		b.release()
		b.metrics.jobs.WithLabelValues("done").Inc()
		log.Debug("job done", "latency", b.now().Sub(job.EnqueuedAt))
		return
	}

	job, recErr := b.store.RecordJobFailure(id, err)
	if recErr != nil {
		log.Error("cannot record job failure", "err", recErr)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		log.Warn("job interrupted by shutdown; it will run at the next start", "err", err)
		return
	}
	var perm permanentError
	if errors.As(err, &perm) || job.Attempts >= b.maxAttempts && !b.requestOpen(job) {
		// Parked jobs stay in the store and run again at the next start.
		b.metrics.jobs.WithLabelValues("parked").Inc()
		log.Error("job failed; parked until the next start", "err", err, "attempts", job.Attempts)
		return
	}
	delay := min(b.retryBackoff<<min(max(job.Attempts, 1)-1, 20), maxRetryBackoff)
	b.metrics.jobs.WithLabelValues("retried").Inc()
	log.Warn("job failed; will retry", "err", err, "attempts", job.Attempts, "retry_in", delay)
	b.retryLater(stop, id, delay)
}

// wakeChan is closed when the service a failing job waits for (Slack)
// answers again.
func (b *Bot) wakeChan() <-chan struct{} {
	b.wakeMu.Lock()
	defer b.wakeMu.Unlock()
	return b.wake
}

// wakeWaiting sends every job waiting to retry to the queue now.
func (b *Bot) wakeWaiting() {
	b.wakeMu.Lock()
	defer b.wakeMu.Unlock()
	close(b.wake)
	b.wake = make(chan struct{})
}

// retryLater queues id again after delay, unless patbot stops first (the
// job is in the store either way).
func (b *Bot) retryLater(stop context.Context, id uint64, delay time.Duration) {
	if stop.Err() != nil {
		return
	}
	due, wake := b.clock.After(delay), b.wakeChan()
	b.retryTimers.Go(func() {
		select {
		case <-stop.Done():
		case <-due:
			b.queueJob(id)
		case <-wake:
			b.queueJob(id)
		}
	})
	b.log.Debug("job waits", LogJob, id, "delay", delay)
}

// requestOpen reports whether a job's request still awaits a decision: its
// work is never given up while it does (past MaxAttempts it is retried at
// the longest backoff).
func (b *Bot) requestOpen(job store.Job) bool {
	r, err := b.store.Request(job.Org, job.RequestID)
	return err == nil && (r.State == store.StatePending || r.State == store.StateDeciding)
}
