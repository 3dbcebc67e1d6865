package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"
)

// ErrNotLeader is returned by Allow before this process has first taken the Lease.
var ErrNotLeader = errors.New("not the leader yet")

type state int

const (
	waiting state = iota // never held the Lease
	leading
	lost // held it once and lost it: for good, the process is about to stop
)

// Guard wraps the leader-election lock. It learns from the elector's own calls when this
// process took or renewed the Lease, and from a watch on the Lease when someone else holds
// it, and tells writers whether they may still write.
//
// A renewal sent at time t keeps the Lease at least until t + leaseDuration in the eyes of
// the other candidates; Allow stops writes already at t + renewDeadline, when the elector
// itself gives up, so a write let through has leaseDuration - renewDeadline to land.
type Guard struct {
	inner         resourcelock.Interface
	clock         clock.PassiveClock
	renewDeadline time.Duration
	// OnChange, if set, is told whether writes are allowed whenever that changes state.
	OnChange func(leading bool)

	mu         sync.Mutex
	state      state
	validUntil time.Time
	// transitions is the Lease's transition count when this process took it: a record
	// held by another with a lower count is an old one (a watch may lag), not a take-over.
	transitions int
	why         string
}

var _ resourcelock.Interface = (*Guard)(nil)

// NewGuard wraps lock; renewDeadline is the elector's.
func NewGuard(lock resourcelock.Interface, renewDeadline time.Duration, clk clock.PassiveClock) *Guard {
	return &Guard{inner: lock, clock: clk, renewDeadline: renewDeadline}
}

// Allow returns nil while this process holds a Lease it renewed less than renewDeadline ago.
func (g *Guard) Allow() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.state {
	case waiting:
		return ErrNotLeader
	case lost:
		return fmt.Errorf("not the leader any more: %s", g.why)
	default:
	}
	if now := g.clock.Now(); now.After(g.validUntil) {
		return fmt.Errorf("the leader Lease was last renewed more than %s ago", g.renewDeadline)
	}
	return nil
}

// Get reads the lock and revokes leadership when someone else holds it.
func (g *Guard) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := g.inner.Get(ctx)
	if err == nil && rec != nil {
		g.observe(rec.HolderIdentity, rec.LeaderTransitions)
	}
	return rec, raw, err
}

// Create takes a free Lease.
func (g *Guard) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	sent := g.clock.Now()
	err := g.inner.Create(ctx, rec)
	if err == nil {
		g.wrote(rec, sent)
	}
	return err
}

// Update renews (or, on release, gives up) the Lease.
func (g *Guard) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	sent := g.clock.Now()
	err := g.inner.Update(ctx, rec)
	if err == nil {
		g.wrote(rec, sent)
	}
	return err
}

// RecordEvent passes through.
func (g *Guard) RecordEvent(s string) { g.inner.RecordEvent(s) }

// Identity passes through.
func (g *Guard) Identity() string { return g.inner.Identity() }

// Describe passes through.
func (g *Guard) Describe() string { return g.inner.Describe() }

// ObserveLease is fed every version of the Lease a watch sees.
func (g *Guard) ObserveLease(l *coordinationv1.Lease) {
	holder, transitions := "", 0
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		transitions = int(*l.Spec.LeaseTransitions)
	}
	g.observe(holder, transitions)
}

func (g *Guard) wrote(rec resourcelock.LeaderElectionRecord, sent time.Time) {
	if rec.HolderIdentity != g.Identity() {
		g.lose("released the Lease")
		return
	}
	g.mu.Lock()
	changed := g.state == waiting
	if g.state != lost {
		g.state = leading
		g.validUntil = sent.Add(g.renewDeadline)
		g.transitions = rec.LeaderTransitions
	}
	g.mu.Unlock()
	if changed && g.OnChange != nil {
		g.OnChange(true)
	}
}

func (g *Guard) observe(holder string, transitions int) {
	if holder == g.Identity() {
		return
	}
	g.mu.Lock()
	stale := transitions < g.transitions
	g.mu.Unlock()
	if !stale {
		g.lose("the Lease is held by " + quote(holder))
	}
}

// lose ends leadership for good, once the process has led: the elector stops the manager.
func (g *Guard) lose(why string) {
	g.mu.Lock()
	changed := g.state == leading
	if changed {
		g.state, g.why = lost, why
	}
	g.mu.Unlock()
	if changed && g.OnChange != nil {
		g.OnChange(false)
	}
}

func quote(s string) string {
	if s == "" {
		return "nobody"
	}
	return fmt.Sprintf("%q", s)
}
