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
// it, and tells writers whether they may still write and by when the write must be done.
//
// A renewal sent at time t keeps the Lease at least until t + leaseDuration in the eyes of
// the other candidates. Allow refuses from t + renewDeadline on (when the elector itself
// gives up), and a write it lets through must finish by t + renewDeadline plus half of
// leaseDuration - renewDeadline: before anyone else can have taken the Lease.
type Guard struct {
	inner         resourcelock.Interface
	clock         clock.PassiveClock
	leaseDuration time.Duration
	renewDeadline time.Duration
	// OnChange, if set, is told (under the guard's lock, so in order) when writes become
	// allowed and when they are stopped for good.
	OnChange func(leading bool, why string)

	mu   sync.Mutex
	st   state
	sent time.Time // when the last successful take-over or renewal was sent
	// transitions is the Lease's transition count when this process took it: a watched
	// record held by another with a lower count is an old one (a watch may lag), not a
	// take-over.
	transitions int
	why         string
}

var _ resourcelock.Interface = (*Guard)(nil)

// NewGuard wraps lock; leaseDuration and renewDeadline are the elector's.
func NewGuard(lock resourcelock.Interface, leaseDuration, renewDeadline time.Duration, clk clock.PassiveClock) *Guard {
	return &Guard{inner: lock, clock: clk, leaseDuration: leaseDuration, renewDeadline: renewDeadline}
}

// Allow returns the time by which a write must have landed, or why this process may not
// write: it has not taken the Lease, lost it, or has not renewed it for renewDeadline.
func (g *Guard) Allow() (time.Time, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.st {
	case waiting:
		return time.Time{}, ErrNotLeader
	case lost:
		return time.Time{}, fmt.Errorf("not the leader any more: %s", g.why)
	default:
	}
	if g.clock.Since(g.sent) >= g.renewDeadline {
		return time.Time{}, fmt.Errorf("the leader Lease was last renewed more than %s ago", g.renewDeadline)
	}
	return g.sent.Add(g.renewDeadline + (g.leaseDuration-g.renewDeadline)/2), nil
}

// Get reads the lock (a fresh read): another holder means the Lease is gone.
func (g *Guard) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := g.inner.Get(ctx)
	if err == nil && rec != nil {
		g.observe(rec.HolderIdentity, rec.LeaderTransitions, true)
	}
	return rec, raw, err
}

// Create takes a free Lease.
func (g *Guard) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	return g.write(ctx, rec, g.inner.Create)
}

// Update renews (or, on release, gives up) the Lease.
func (g *Guard) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	return g.write(ctx, rec, g.inner.Update)
}

// RecordEvent passes through.
func (g *Guard) RecordEvent(s string) { g.inner.RecordEvent(s) }

// Identity passes through.
func (g *Guard) Identity() string { return g.inner.Identity() }

// Describe passes through.
func (g *Guard) Describe() string { return g.inner.Describe() }

// ObserveLease is fed every version of the Lease a watch sees (which may lag).
func (g *Guard) ObserveLease(l *coordinationv1.Lease) {
	holder, transitions := "", 0
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		transitions = int(*l.Spec.LeaseTransitions)
	}
	g.observe(holder, transitions, false)
}

func (g *Guard) write(ctx context.Context, rec resourcelock.LeaderElectionRecord, do func(context.Context, resourcelock.LeaderElectionRecord) error) error {
	sent := g.clock.Now()
	if err := do(ctx, rec); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if rec.HolderIdentity != g.Identity() {
		g.loseLocked("released the Lease")
		return nil
	}
	if g.st == lost {
		return nil
	}
	if g.st == waiting {
		g.st = leading
		g.notifyLocked(true)
	}
	g.sent, g.transitions = sent, rec.LeaderTransitions
	return nil
}

// observe revokes leadership when another identity holds the Lease: at once on a fresh
// read, and on a watched record unless it is older than this process's take-over.
func (g *Guard) observe(holder string, transitions int, fresh bool) {
	if holder == g.Identity() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if fresh || transitions >= g.transitions {
		g.loseLocked("the Lease is held by " + quote(holder))
	}
}

// loseLocked ends leadership for good, once the process has led.
func (g *Guard) loseLocked(why string) {
	if g.st != leading {
		return
	}
	g.st, g.why = lost, why
	g.notifyLocked(false)
}

func (g *Guard) notifyLocked(leading bool) {
	if g.OnChange != nil {
		g.OnChange(leading, g.why)
	}
}

func quote(s string) string {
	if s == "" {
		return "nobody"
	}
	return fmt.Sprintf("%q", s)
}
