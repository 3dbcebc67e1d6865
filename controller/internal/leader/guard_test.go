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
	const deadline = 10 * time.Second
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
			g := NewGuard(&memLock{id: "me"}, deadline, clk)
			var changes []bool
			g.OnChange = func(l bool) { changes = append(changes, l) }
			for _, s := range tc.steps {
				s.do(g, clk)
				if err := g.Allow(); (err == nil) != s.allow {
					t.Fatalf("after %q: Allow() = %v, want allowed=%v", s.name, err, s.allow)
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
