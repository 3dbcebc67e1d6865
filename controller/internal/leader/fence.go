package leader

import (
	"context"
	"time"

	"github.com/vipcast/vipcast/controller/internal/metrics"
)

// Fence is what a writer asks before each write; *Guard is one.
type Fence interface {
	// Allow returns the time by which a write must have landed, or why it may not be made.
	Allow() (time.Time, error)
}

// WriteContext returns the context for one write under the fence: with the fence's
// deadline, so a write held up (by the client's rate limiter, a slow API server) is
// abandoned before another leader can exist. A refusal is counted and returned. A nil fence
// (no leader election) allows everything.
func WriteContext(ctx context.Context, f Fence) (context.Context, context.CancelFunc, error) {
	if f == nil {
		return ctx, func() {}, nil
	}
	deadline, err := f.Allow()
	if err != nil {
		metrics.FencedWrites.Inc()
		return ctx, func() {}, err
	}
	c, cancel := context.WithDeadline(ctx, deadline)
	return c, cancel, nil
}
