package bot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
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
// queue is full: this patbot's, or the store's, which replicas share (as
// last counted).
func (b *Bot) reserve() bool {
	if b.reserved.Add(1) > b.capacity || b.dbJobs.Load() >= b.capacity {
		b.reserved.Add(-1)
		return false
	}
	return true
}

// holderName names this patbot in job claims: the host and a random part,
// so that a restarted patbot is another holder.
func holderName() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// parkFor is how long a job that keeps failing is left alone before a
// replica tries it again (or this one, at its next start).
const parkFor = time.Hour

// adoptOrphans queues the jobs no replica holds: a replica that died
// left them, or stopped before it began them. It also counts the store's
// unfinished jobs, for the queue's cap.
func (b *Bot) adoptOrphans(context.Context) {
	if n, err := b.store.CountJobs(); err == nil {
		b.dbJobs.Store(int64(n))
	}
	orphans, err := b.store.OrphanJobs(b.jobLease, 100)
	if err != nil {
		b.log.Warn("cannot look for jobs another replica left", "err", err)
		return
	}
	for _, id := range orphans {
		if !b.reserve() {
			return
		}
		b.log.Info("taking over a job no replica holds", LogJob, id)
		b.queueJob(id)
	}
}

func (b *Bot) release() { b.reserved.Add(-1) }

// queueJob hands a job the store holds to the workers, unless this
// patbot has it in hand already (queued, running or waiting to retry); its
// place is reserved, so the pool has room.
func (b *Bot) queueJob(id uint64) {
	b.inHandMu.Lock()
	_, dup := b.inHand[id]
	b.inHand[id] = struct{}{}
	b.inHandMu.Unlock()
	if dup {
		b.release()
		return
	}
	b.submitJob(id)
}

func (b *Bot) submitJob(id uint64) {
	if err := b.jobs.Submit(func(ctx context.Context) { b.runJob(b.stopContext(), ctx, id) }); err != nil {
		b.log.Error("job not queued; it runs when its lease has passed", LogJob, id, "err", err)
		b.letGo(id)
	}
}

// letGo is called when a job leaves this patbot's hands: finished, held
// by another replica, parked, or interrupted.
func (b *Bot) letGo(id uint64) {
	b.inHandMu.Lock()
	delete(b.inHand, id)
	b.inHandMu.Unlock()
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
	// Claimed first: with several replicas, one runs it.
	job, err := b.store.ClaimJob(id, b.holder, b.jobLease)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrHeld) {
		b.letGo(id)
		b.release() // finished already, or another replica runs it
		return
	}
	log := b.log.With(LogJob, id)
	if err != nil {
		log.Error("cannot claim job", "err", err)
		b.retryLater(stop, id, b.retryBackoff)
		return
	}
	log = log.With(LogDelivery, job.DeliveryID, LogOrg, job.Org, LogRequest, job.RequestID, LogAction, job.Action)

	renewing, stopRenewing := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() { // the lease lasts while the job runs
		defer close(renewed)
		for {
			select {
			case <-renewing.Done():
				return
			case <-b.clock.After(b.jobLease / 3):
				if _, err := b.store.ClaimJob(id, b.holder, b.jobLease); err != nil {
					log.Warn("cannot renew the job's lease", "err", err)
				}
			}
		}
	}()
	if perr := scheduler.Safe(func() { err = b.process(ctx, job) }); perr != nil {
		err = permanent(perr) // one bad job must not take patbot down
	}
	stopRenewing()
	<-renewed
	if err == nil {
		if err := b.store.FinishJob(id); err != nil {
			// Processing is idempotent, so running it again is safe.
			log.Error("cannot mark job finished", "err", err)
			b.retryLater(stop, id, b.retryBackoff)
			return
		}
		b.letGo(id)
		b.release()
		b.dbJobs.Add(-1)
		b.metrics.jobs.WithLabelValues("done").Inc()
		log.Debug("job done", "latency", b.now().Sub(job.EnqueuedAt))
		return
	}

	job, recErr := b.store.RecordJobFailure(id, err)
	if recErr != nil {
		log.Error("cannot record job failure", "err", recErr)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		b.letGo(id)
		log.Warn("job interrupted by shutdown; it will run at the next start", "err", err)
		return
	}
	var perm permanentError
	if errors.As(err, &perm) || job.Attempts >= b.maxAttempts && !b.requestOpen(job) {
		// Parked jobs stay in the store, held for a while so that no
		// replica retries them at once.
		b.store.ClaimJob(id, b.holder, parkFor)
		b.letGo(id)
		b.metrics.jobs.WithLabelValues("parked").Inc()
		log.Error("job failed; parked for an hour (any replica then tries it again)", "err", err, "attempts", job.Attempts)
		return
	}
	delay := min(b.retryBackoff<<min(max(job.Attempts, 1)-1, 20), maxRetryBackoff)
	// Held through the wait, so that another replica does not retry it
	// at once; if this one dies, another takes over after it.
	b.store.ClaimJob(id, b.holder, delay+b.jobLease)
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
		b.letGo(id)
		return
	}
	due, wake := b.clock.After(delay), b.wakeChan()
	b.retryTimers.Go(func() {
		select {
		case <-stop.Done():
			b.letGo(id)
		case <-due:
			b.submitJob(id)
		case <-wake:
			b.submitJob(id)
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
