package bot

import (
	"context"
	"sync"
	"time"
)

// intakeGate gives webhook intake priority over jobs. While signed webhooks
// are being handled, the CPU goes to accepting them: GitHub waits 10
// seconds for an answer and does not retry a delivery that failed, while a
// card can wait a moment. The wait is bounded (Deps.MaxYieldToIntake), so
// that under an endless stream of webhooks every worker still runs a job
// per interval. Approvers' clicks do not wait.
type intakeGate struct {
	mu       sync.Mutex
	inFlight int
	quiet    chan struct{} // closed while no signed webhook is in flight
}

func newIntakeGate() *intakeGate {
	quiet := make(chan struct{})
	close(quiet)
	return &intakeGate{quiet: quiet}
}

// enter and leave bracket the handling of one signed webhook.
func (g *intakeGate) enter() {
	g.mu.Lock()
	if g.inFlight == 0 {
		g.quiet = make(chan struct{})
	}
	g.inFlight++
	g.mu.Unlock()
}

func (g *intakeGate) leave() {
	g.mu.Lock()
	g.inFlight--
	if g.inFlight == 0 {
		close(g.quiet)
	}
	g.mu.Unlock()
}

// wait returns once no signed webhook is in flight, after at most limit, or when
// ctx ends.
func (g *intakeGate) wait(ctx context.Context, limit time.Duration) {
	g.mu.Lock()
	quiet := g.quiet
	g.mu.Unlock()
	select {
	case <-quiet:
		return
	default:
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-quiet:
	case <-t.C:
	case <-ctx.Done():
	}
}
