package bot

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

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

// work runs jobs until stop is cancelled. Each job runs on workCtx, which
// outlives stop by the drain timeout.
func (b *Bot) work(stop, workCtx context.Context) {
	for {
		select {
		case <-stop.Done():
			return
		case id := <-b.queue:
			b.intake.wait(stop, b.maxYield)
			if stop.Err() != nil {
				return // the job stays in the store for the next start
			}
			b.runJob(stop, workCtx, id)
		}
	}
}

func (b *Bot) runJob(stop, workCtx context.Context, id uint64) {
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
	if wait := job.NotBefore.Sub(b.now()); wait > 0 {
		b.retryLater(stop, id, wait) // not yet: no attempt counted
		return
	}

	ctx, cancel := context.WithTimeout(workCtx, b.jobTimeout)
	err = b.safeProcess(ctx, job)
	cancel()
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
	if workCtx.Err() != nil {
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

// runAt queues a job the store holds already (its place not yet reserved)
// to run at the given time. Without a place, or when patbot is not running,
// it runs at the next start.
func (b *Bot) runAt(id uint64, at time.Time) {
	stop := b.stopping.Load()
	if stop == nil || !b.reserve() {
		b.log.Warn("job deferred to the next start", LogJob, id)
		return
	}
	b.retryLater(*stop, id, at.Sub(b.now()))
}

// retryLater queues id again after delay, unless patbot stops first (the
// job is in the store either way).
func (b *Bot) retryLater(stop context.Context, id uint64, delay time.Duration) {
	if stop.Err() != nil {
		return
	}
	due, wake := b.after(delay), b.wakeChan()
	b.retryTimers.Go(func() {
		select {
		case <-stop.Done():
		case <-due:
			b.queue <- id // never blocks: id holds a reserved place
		case <-wake:
			b.queue <- id
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

// safeProcess turns a panic in a job into an error, so one bad job cannot
// take the service down.
func (b *Bot) safeProcess(ctx context.Context, job store.Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = permanent(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	return b.process(ctx, job)
}
