package bot

import (
	"context"
	"errors"
	"testing"
)

func TestBodyBudget(t *testing.T) {
	const max = 25 << 20
	bb := newBodyBudget(2, 32<<20)
	ctx := context.Background()

	// Small bodies take slots; the third waits until one is released.
	_, releaseA, err := bb.acquire(ctx, 10, max)
	if err != nil {
		t.Fatal(err)
	}
	_, releaseB, err := bb.acquire(ctx, SmallBodyBytes, max)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := bb.acquire(cancelled, 10, max); !errors.Is(err, context.Canceled) {
		t.Fatalf("third small body with no slot free: %v, want to wait until its context ends", err)
	}
	releaseA()
	if _, release, err := bb.acquire(cancelled, 0, max); err != nil {
		t.Fatalf("small body after a release: %v", err)
	} else {
		release()
	}
	releaseB()

	// Large bodies share the budget, whatever the small ones do, and are
	// refused at once past it.
	limit, releaseC, err := bb.acquire(ctx, 20<<20, max)
	if err != nil || limit != 20<<20 {
		t.Fatalf("first large body: %d, %v", limit, err)
	}
	if _, _, err := bb.acquire(ctx, 13<<20, max); !errors.Is(err, errOverBudget) {
		t.Fatalf("second large body past the budget: %v", err)
	}
	_, releaseD, err := bb.acquire(ctx, 12<<20, max)
	if err != nil {
		t.Fatalf("second large body within the budget: %v", err)
	}
	if bb.largeFree != 0 {
		t.Fatalf("budget left = %d, want 0", bb.largeFree)
	}
	// A body of undeclared length counts as the largest.
	releaseD()
	if _, _, err := bb.acquire(ctx, -1, max); !errors.Is(err, errOverBudget) {
		t.Fatalf("undeclared length with 12 MiB left: %v", err)
	}
	releaseC()
	releaseC() // twice is harmless
	limit, releaseE, err := bb.acquire(ctx, -1, max)
	if err != nil || limit != max {
		t.Fatalf("undeclared length with the budget free: %d, %v", limit, err)
	}
	releaseE()
	if bb.largeFree != 32<<20 {
		t.Errorf("budget after every release = %d, want all of it", bb.largeFree)
	}
}
