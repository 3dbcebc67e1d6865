package leader

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"
)

// memLock is a lock held in memory, as the elector would see it through the API.
type memLock struct {
	id  string
	rec resourcelock.LeaderElectionRecord
}

func (m *memLock) Get(context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	r := m.rec
	return &r, nil, nil
}
func (m *memLock) Create(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	m.rec = r
	return nil
}
func (m *memLock) Update(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	m.rec = r
	return nil
}
func (m *memLock) RecordEvent(string) {}
func (m *memLock) Identity() string   { return m.id }
func (m *memLock) Describe() string   { return "mem/" + m.id }

func lease(holder string, transitions int32) *coordinationv1.Lease {
	return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseTransitions: &transitions}}
}

func TestGuard(t *testing.T) {
	ctx := t.Context()
	const deadline, duration = 10 * time.Second, 16 * time.Second
	type step struct {
		name  string
		do    func(g *Guard, clk *clocktesting.FakePassiveClock)
		allow bool
	}
	take := func(g *Guard, clk *clocktesting.FakePassiveClock) {
		if err := g.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "me", LeaderTransitions: 3}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"before the Lease is taken nothing is written", []step{
			{"start", func(*Guard, *clocktesting.FakePassiveClock) {}, false},
			{"someone else holds it", func(g *Guard, _ *clocktesting.FakePassiveClock) { g.ObserveLease(lease("other", 2)) }, false},
			{"taken", take, true},
		}},
		{"a renewal keeps writes allowed for renewDeadline", []step{
			{"taken", take, true},
			{"just before the deadline", func(_ *Guard, c *clocktesting.FakePassiveClock) { c.SetTime(c.Now().Add(deadline - time.Millisecond)) }, true},
			{"past the deadline without renewal", func(_ *Guard, c *clocktesting.FakePassiveClock) { c.SetTime(c.Now().Add(2 * time.Millisecond)) }, false},
			{"renewed", take, true},
		}},
		{"a Lease held by another stops writes for good", []step{
			{"taken", take, true},
			{"own renewal seen", func(g *Guard, _ *clocktesting.FakePassiveClock) { g.ObserveLease(lease("me", 3)) }, true},
			{"taken over", func(g *Guard, _ *clocktesting.FakePassiveClock) { g.ObserveLease(lease("intruder", 3)) }, false},
			{"even after a renewal", take, false},
		}},
		{"an old record from a lagging watch is not a take-over", []step{
			{"taken", take, true},
			{"the previous holder's last record", func(g *Guard, _ *clocktesting.FakePassiveClock) { g.ObserveLease(lease("previous", 2)) }, true},
			{"a Lease re-created by hand, seen late", func(g *Guard, _ *clocktesting.FakePassiveClock) { g.ObserveLease(lease("previous", 0)) }, true},
		}},
		{"a record seen while taking the Lease does not revoke it", []step{
			{"the previous holder's record, then the take-over", func(g *Guard, c *clocktesting.FakePassiveClock) {
				g.ObserveLease(lease("previous", 2)) // while still waiting: ignored
				take(g, c)
				g.ObserveLease(lease("previous", 2)) // the same record, delivered late
			}, true},
		}},
		{"the elector reading another holder stops writes", []step{
			{"taken", take, true},
			{"read", func(g *Guard, _ *clocktesting.FakePassiveClock) {
				g.inner.(*memLock).rec = resourcelock.LeaderElectionRecord{HolderIdentity: "intruder", LeaderTransitions: 4}
				if _, _, err := g.Get(ctx); err != nil {
					t.Fatal(err)
				}
			}, false},
		}},
		{"releasing the Lease stops writes", []step{
			{"taken", take, true},
			{"released", func(g *Guard, _ *clocktesting.FakePassiveClock) {
				if err := g.Update(ctx, resourcelock.LeaderElectionRecord{LeaderTransitions: 3}); err != nil {
					t.Fatal(err)
				}
			}, false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
			g := NewGuard(&memLock{id: "me"}, duration, deadline, clk)
			var changes []bool
			g.OnChange = func(l bool, _ string) { changes = append(changes, l) }
			for _, s := range tc.steps {
				s.do(g, clk)
				until, err := g.Allow()
				if (err == nil) != s.allow {
					t.Fatalf("after %q: Allow() = %v, want allowed=%v", s.name, err, s.allow)
				}
				// A write allowed must be done before anyone else can hold the Lease.
				if err == nil && !until.Before(g.sent.Add(duration)) {
					t.Fatalf("after %q: write deadline %v is not before the Lease can pass on (%v)", s.name, until, g.sent.Add(duration))
				}
			}
			for i := 1; i < len(changes); i++ {
				if changes[i] == changes[i-1] {
					t.Errorf("OnChange repeated %v: %v", changes[i], changes)
				}
			}
		})
	}
}

// Revocation and a take-over racing: whatever the order, a lost Lease stays lost and the
// last word OnChange hears is false.
func TestGuardRevocationRace(t *testing.T) {
	for range 200 {
		clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
		g := NewGuard(&memLock{id: "me"}, 16*time.Second, 10*time.Second, clk)
		var last []bool
		g.OnChange = func(l bool, _ string) { last = append(last, l) }
		if err := g.Update(t.Context(), resourcelock.LeaderElectionRecord{HolderIdentity: "me", LeaderTransitions: 1}); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			g.ObserveLease(lease("intruder", 2))
		}()
		_ = g.Update(t.Context(), resourcelock.LeaderElectionRecord{HolderIdentity: "me", LeaderTransitions: 1})
		<-done
		if _, err := g.Allow(); err == nil {
			t.Fatal("writes allowed after a take-over")
		}
		if last[len(last)-1] {
			t.Fatalf("OnChange ended on true: %v", last)
		}
	}
}
