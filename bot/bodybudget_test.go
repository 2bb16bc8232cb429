package bot

import (
	"context"
	"errors"
	"testing"
)

func TestBodyBudget(t *testing.T) {
	const largest = 25 << 20
	bb := newBodyBudget(2<<20, 32<<20)
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	// Small bodies hold their size of the small budget; one that does not
	// fit waits (here, until its context ends).
	_, releaseA, err := bb.acquire(ctx, SmallBodyBytes, largest)
	if err != nil {
		t.Fatal(err)
	}
	_, releaseB, err := bb.acquire(ctx, SmallBodyBytes-10, largest)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := bb.acquire(cancelled, 11, largest); !errors.Is(err, context.Canceled) {
		t.Fatalf("small body with no room: %v, want to wait until its context ends", err)
	}
	if _, release, err := bb.acquire(cancelled, 10, largest); err != nil {
		t.Fatalf("small body that fits: %v", err)
	} else {
		release()
	}
	releaseA()
	releaseA() // twice is harmless
	if _, release, err := bb.acquire(cancelled, SmallBodyBytes, largest); err != nil {
		t.Fatalf("small body after a release: %v", err)
	} else {
		release()
	}

	// Large bodies share their own budget, whatever the small ones hold,
	// and are refused at once past it.
	limit, releaseC, err := bb.acquire(ctx, 20<<20, largest)
	if err != nil || limit != 20<<20 {
		t.Fatalf("first large body: %d, %v", limit, err)
	}
	if _, _, err := bb.acquire(ctx, 13<<20, largest); !errors.Is(err, errOverBudget) {
		t.Fatalf("second large body past the budget: %v", err)
	}
	_, releaseD, err := bb.acquire(ctx, 12<<20, largest)
	if err != nil {
		t.Fatalf("second large body within the budget: %v", err)
	}
	if _, _, err := bb.acquire(ctx, SmallBodyBytes+1, largest); !errors.Is(err, errOverBudget) {
		t.Fatalf("a third with the budget spent: %v", err)
	}
	// A body of undeclared length counts as the largest.
	releaseD()
	if _, _, err := bb.acquire(ctx, -1, largest); !errors.Is(err, errOverBudget) {
		t.Fatalf("undeclared length with 12 MiB left: %v", err)
	}
	releaseC()
	releaseC()
	limit, releaseE, err := bb.acquire(ctx, -1, largest)
	if err != nil || limit != largest {
		t.Fatalf("undeclared length with the budget free: %d, %v", limit, err)
	}
	releaseE()
	releaseB()
	if !bb.small.TryAcquire(2<<20) || !bb.large.TryAcquire(32<<20) {
		t.Error("budgets not whole after every release")
	}
}
