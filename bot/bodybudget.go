package bot

import (
	"context"
	"errors"
	"sync"
)

// Limits on what unauthenticated clients can make patbot hold: a webhook
// body must be read whole before its signature can be checked, and anyone
// can send one.
const (
	// SmallBodyBytes is the size up to which a body is always admitted:
	// real personal_access_token_request deliveries are a few KiB.
	SmallBodyBytes = 1 << 20
	// DefaultSmallBodySlots is how many small bodies are read at once;
	// more wait for a slot.
	DefaultSmallBodySlots = 32
	// DefaultLargeBodyBudget is what larger bodies share; past it they are
	// refused at once.
	DefaultLargeBodyBudget = 32 << 20
)

// errOverBudget means a large body does not fit in what is left of the
// budget.
var errOverBudget = errors.New("too many large bodies at once")

// bodyBudget bounds the memory held by webhook bodies whose signature has
// not been checked yet: at most slots small bodies and large bytes of
// larger ones.
type bodyBudget struct {
	small chan struct{} // a token per small body being read

	mu        sync.Mutex
	largeFree int64
}

func newBodyBudget(slots int, large int64) *bodyBudget {
	return &bodyBudget{small: make(chan struct{}, slots), largeFree: large}
}

// acquire makes room for a body of size bytes (-1: not declared, counted
// as the largest). A small body waits for a slot, as long as ctx allows; a
// larger one takes its size from the shared budget or is refused at once
// with errOverBudget. It returns how many bytes may be read and what to
// call when the body is no longer held.
func (bb *bodyBudget) acquire(ctx context.Context, size, max int64) (limit int64, release func(), err error) {
	if size >= 0 && size <= SmallBodyBytes {
		select { // a free slot first, even when ctx has ended
		case bb.small <- struct{}{}:
			return size, func() { <-bb.small }, nil
		default:
		}
		select {
		case bb.small <- struct{}{}:
			return size, func() { <-bb.small }, nil
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	if size < 0 {
		size = max
	}
	bb.mu.Lock()
	defer bb.mu.Unlock()
	if size > bb.largeFree {
		return 0, nil, errOverBudget
	}
	bb.largeFree -= size
	var once sync.Once
	return size, func() {
		once.Do(func() {
			bb.mu.Lock()
			bb.largeFree += size
			bb.mu.Unlock()
		})
	}, nil
}
