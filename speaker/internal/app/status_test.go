package app

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
)

// The report groups the addresses by how they are announced, sorted, so the same plan always
// writes the same bytes.
func TestAnnouncedSets(t *testing.T) {
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")
	l2 := func(ifs ...string) announcement {
		return announcement{mode: v1alpha1.ModeL2, services: []string{"ns/web"}, interfaces: ifs}
	}
	bgp := func(peers ...string) announcement {
		return announcement{mode: v1alpha1.ModeBGP, services: []string{"ns/web"}, peers: peers}
	}
	mine := map[annKey]announcement{
		{c, v1alpha1.ModeL2}:  l2("eth0"),
		{a, v1alpha1.ModeL2}:  l2("eth1", "eth0"), // the same interfaces as b's, in another order
		{b, v1alpha1.ModeL2}:  l2("eth0", "eth1"),
		{a, v1alpha1.ModeBGP}: bgp("tor2", "tor1"),
		{b, v1alpha1.ModeBGP}: bgp(),
		{c, v1alpha1.ModeBGP}: bgp("tor1", "tor2"),
	}
	got := announcedSets(mine)
	var desc []string
	for _, s := range got {
		addrs, err := addrset.Decode(s.Addresses)
		if err != nil || int(s.Count) != len(addrs) {
			t.Fatalf("set %+v: %d addresses, %v", s, len(addrs), err)
		}
		desc = append(desc, fmt.Sprintf("%s %v %v %v", s.Mode, s.Interfaces, s.Peers, addrs))
	}
	want := []string{
		"BGP [] [] [192.0.2.2]",
		"BGP [] [tor1 tor2] [192.0.2.1 2001:db8::1]",
		"L2 [eth0] [] [2001:db8::1]",
		"L2 [eth0 eth1] [] [192.0.2.1 192.0.2.2]",
	}
	if strings.Join(desc, "\n") != strings.Join(want, "\n") {
		t.Errorf("sets:\n%s\nwant:\n%s", strings.Join(desc, "\n"), strings.Join(want, "\n"))
	}
	if st := (report{mine: mine}).status(); st.AnnouncedCount != 6 || !sameSets(st.Announced, got) {
		t.Errorf("report: %d announced, sets %+v", st.AnnouncedCount, st.Announced)
	}
	delete(mine, annKey{b, v1alpha1.ModeBGP})
	if sameSets(announcedSets(mine), got) {
		t.Error("a set less compares the same")
	}
}

// countingClient is a fake client that counts the status updates.
func countingClient(t *testing.T) (client.Client, *atomic.Int32) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	var updates atomic.Int32
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1alpha1.SpeakerStatus{}).
		WithInterceptorFuncs(interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			updates.Add(1)
			return c.SubResource(sub).Update(ctx, o, opts...)
		}}).Build()
	return c, &updates
}

// The writer paces itself: at most one write a second, the last report of the second
// written when it is over, nothing when the reports come back to what is written, and the
// last reports on stop at once.
func TestStatusPacing(t *testing.T) {
	c, updates := countingClient(t)
	clk := clocktesting.NewFakeClock(clockT0)
	w := &statusWriter{node: "a", client: c, reader: c, log: testr.New(t), clock: clk}
	ctx := t.Context()
	applied := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonApplied, Message: "applied"}
	plan := func(n int) report {
		mine := map[annKey]announcement{}
		a := netip.MustParseAddr("192.0.2.1")
		for range n {
			mine[annKey{a, v1alpha1.ModeBGP}] = announcement{mode: v1alpha1.ModeBGP, peers: []string{"tor"}}
			a = a.Next()
		}
		return report{mine: mine, members: map[string]bool{"a": true}, ready: applied}
	}
	stored := func() v1alpha1.SpeakerReport {
		t.Helper()
		var st v1alpha1.SpeakerStatus
		if err := c.Get(ctx, client.ObjectKey{Name: "a"}, &st); err != nil {
			t.Fatal(err)
		}
		return st.Status
	}
	expect := func(step string, writes, announced int32) {
		t.Helper()
		if got, st := updates.Load(), stored(); got != writes || st.AnnouncedCount != announced {
			t.Errorf("%s: %d writes, %d announced; want %d, %d", step, got, st.AnnouncedCount, writes, announced)
		}
	}

	w.write(ctx, plan(1))
	expect("the first report", 1, 1)
	w.write(ctx, plan(1))
	expect("the same report again", 1, 1)
	clk.Step(300 * time.Millisecond)
	w.write(ctx, plan(2))
	clk.Step(300 * time.Millisecond)
	w.write(ctx, plan(3))
	expect("two changes within the second", 1, 1)
	clk.Step(400 * time.Millisecond)
	expect("the second over", 2, 3)

	clk.Step(2 * time.Second)
	w.write(ctx, plan(4))
	expect("a change after a quiet second", 3, 4)
	clk.Step(100 * time.Millisecond)
	w.write(ctx, plan(5))
	w.write(ctx, plan(4))
	clk.Step(time.Second)
	expect("a change undone within the second", 3, 4)

	w.write(ctx, plan(6))
	expect("a change a second after the last write", 4, 6)
	// A plan fails while a change is held: the held announcements stay, Ready turns False.
	clk.Step(100 * time.Millisecond)
	w.write(ctx, plan(7))
	failed := plan(1)
	failed.keep, failed.ready = true, metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonSyncFailed, Message: "the API server is gone"}
	w.write(ctx, failed)
	clk.Step(time.Second)
	expect("a failed plan after a change", 5, 7)
	if r := meta.FindStatusCondition(stored().Conditions, ConditionReady); r == nil || r.Reason != ReasonSyncFailed {
		t.Errorf("Ready: %+v", r)
	}

	// Stopping: the last reports go at once, and nothing held follows them.
	clk.Step(100 * time.Millisecond)
	w.write(ctx, plan(8))
	w.writeNow(ctx, report{ready: metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonStopped, Message: "the speaker stopped"}})
	expect("stopped", 6, 0)
	clk.Step(2 * time.Second)
	expect("after the stop", 6, 0)
	if r := meta.FindStatusCondition(stored().Conditions, ConditionReady); r == nil || r.Reason != ReasonStopped {
		t.Errorf("Ready: %+v", r)
	}
}

// With wake set (as the speaker runs it), a held report is not copied and the timer writes
// nothing: it wakes the plan loop, whose next report is written.
func TestStatusPacingWakesThePlanLoop(t *testing.T) {
	c, updates := countingClient(t)
	clk := clocktesting.NewFakeClock(clockT0)
	var wakes atomic.Int32
	w := &statusWriter{node: "a", client: c, reader: c, log: testr.New(t), clock: clk, wake: func() { wakes.Add(1) }}
	ctx := t.Context()
	applied := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonApplied, Message: "applied"}
	mine := map[annKey]announcement{}
	a := netip.MustParseAddr("192.0.2.1")
	plan := func() report {
		mine[annKey{a, v1alpha1.ModeBGP}] = announcement{mode: v1alpha1.ModeBGP, peers: []string{"tor"}}
		a = a.Next()
		return report{mine: mine, members: map[string]bool{"a": true}, ready: applied}
	}
	expect := func(step string, writes, wokeN, announced int32) {
		t.Helper()
		var st v1alpha1.SpeakerStatus
		if err := c.Get(ctx, client.ObjectKey{Name: "a"}, &st); err != nil {
			t.Fatal(err)
		}
		if got := updates.Load(); got != writes || wakes.Load() != wokeN || st.Status.AnnouncedCount != announced {
			t.Errorf("%s: %d writes, %d wakes, %d announced; want %d, %d, %d", step, got, wakes.Load(), st.Status.AnnouncedCount, writes, wokeN, announced)
		}
	}
	w.write(ctx, plan())
	expect("the first report", 1, 0, 1)
	clk.Step(300 * time.Millisecond)
	w.write(ctx, plan())
	w.write(ctx, plan())
	expect("two changes within the second", 1, 0, 1)
	if w.held == nil || reflect.ValueOf(w.held.mine).Pointer() != reflect.ValueOf(mine).Pointer() {
		t.Error("the held report holds a copy of the plan loop's map")
	}
	clk.Step(700 * time.Millisecond)
	expect("the second over: the plan loop is woken, nothing written", 1, 1, 1)
	w.write(ctx, plan())
	expect("the plan loop's next report", 2, 1, 4)
	clk.Step(2 * time.Second)
	expect("nothing held", 2, 1, 4)
}

// More conflicts than SpeakerStatus may list (claims on the wire, which anybody can send)
// must not make its writes fail: the first 1,024 are listed, the condition counts them all.
func TestConflictsAreCappedNotFrozen(t *testing.T) {
	var cs []v1alpha1.AddressConflict
	a := netip.MustParseAddr("198.18.0.1")
	for range 1500 {
		cs = append(cs, v1alpha1.AddressConflict{IP: a.String(), MAC: "02:00:00:00:00:99"})
		a = a.Next()
	}
	applied := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonApplied, Message: "applied"}
	w := &statusWriter{node: "a"}
	got := w.compose(report{conflicts: cs, members: map[string]bool{"a": true}, ready: applied})
	if len(got.Conflicts) != maxReportedConflicts {
		t.Errorf("%d conflicts listed, want %d", len(got.Conflicts), maxReportedConflicts)
	}
	c := meta.FindStatusCondition(got.Conditions, ConditionConflict)
	if c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "and 1495 more") {
		t.Errorf("Conflict condition %+v, want True counting all 1,500", c)
	}
}

// BenchmarkReportAt50000 composes the SpeakerStatus of a node announcing 50,000 addresses
// over BGP to two sessions (what a held report costs when composed on every plan).
func BenchmarkReportAt50000(b *testing.B) {
	mine := make(map[annKey]announcement, 50000)
	for i := range 50000 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		mine[annKey{a, v1alpha1.ModeBGP}] = announcement{mode: v1alpha1.ModeBGP, services: []string{"ns/s" + strconv.Itoa(i)}, peers: []string{"tor1", "tor2"}}
	}
	r := report{mine: mine}
	b.ReportAllocs()
	for b.Loop() {
		if st := r.status(); st.AnnouncedCount != 50000 {
			b.Fatal(st.AnnouncedCount)
		}
	}
}
