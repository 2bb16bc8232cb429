package bot

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"golang.org/x/sync/semaphore"
)

// Limits on what unauthenticated clients can make patbot hold: a webhook
// body must be read whole before its signature can be checked, and anyone
// can send one.
const (
	// SmallBodyBytes is the size up to which a body is always admitted:
	// real personal_access_token_request deliveries are a few KiB.
	SmallBodyBytes = 1 << 20
	// DefaultSmallBodyBudget is what small bodies being handled may hold
	// together: thousands of real deliveries, eight of the largest. A small
	// body that does not fit waits for room.
	DefaultSmallBodyBudget = 8 << 20
	// DefaultLargeBodyBudget is what larger bodies share; past it they are
	// refused at once.
	DefaultLargeBodyBudget = 32 << 20
)

// errOverBudget means a large body does not fit in what is left of the
// budget.
var errOverBudget = errors.New("too many large bodies at once")

// bodyBudget bounds the memory held by webhook bodies whose signature has
// not been checked yet, in bytes: one budget that small bodies wait for,
// another that larger ones take from or are refused.
type bodyBudget struct {
	small, large *semaphore.Weighted
}

func newBodyBudget(small, large int64) *bodyBudget {
	return &bodyBudget{small: semaphore.NewWeighted(small), large: semaphore.NewWeighted(large)}
}

// acquire makes room for a body of size bytes (-1: not declared, counted
// as largest). A small body waits for room, as long as ctx allows; a larger one
// takes its size from the shared budget or is refused at once with
// errOverBudget. It returns how many bytes may be read and what to call
// once the body is no longer referenced.
func (bb *bodyBudget) acquire(ctx context.Context, size, largest int64) (limit int64, release func(), err error) {
	if size >= 0 && size <= SmallBodyBytes {
		n := max(size, 1)            // an empty body holds a buffer too
		if !bb.small.TryAcquire(n) { // room now wins over an ended ctx
			if err := bb.small.Acquire(ctx, n); err != nil {
				return 0, nil, err
			}
		}
		var once sync.Once
		return size, func() { once.Do(func() { bb.small.Release(n) }) }, nil
	}
	if size < 0 {
		size = largest
	}
	if !bb.large.TryAcquire(size) {
		return 0, nil, errOverBudget
	}
	var once sync.Once
	return size, func() {
		once.Do(func() {
			// Collect the body before its bytes are lent again, so that
			// a stream of large bodies reuses the same memory instead of
			// growing the heap until the collector's next turn. Real
			// deliveries are never this large: only a flood pays for it.
			runtime.GC()
			bb.large.Release(size)
		})
	}, nil
}
