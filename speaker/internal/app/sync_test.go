package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/speaker/internal/host"
	"github.com/vipcast/vipcast/speaker/internal/layer2"
)

// Fakes of the speaker's parts: the plan loop is tested without sockets or memberlist.

type fakeCluster struct {
	mu       sync.Mutex
	members  map[string]bool
	meta     map[string][]byte
	departed map[string][]byte
	joined   bool
	changes  chan struct{}
}

func (c *fakeCluster) Members() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.members)
}
func (c *fakeCluster) Meta() map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.meta)
}
func (c *fakeCluster) Departed() map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.departed)
}
func (c *fakeCluster) Joined() bool                        { return c.joined }
func (c *fakeCluster) Join([]string) (int, error)          { return 0, errors.New("nobody answers") }
func (c *fakeCluster) Changes() <-chan struct{}            { return c.changes }
func (c *fakeCluster) Leave(time.Duration) error           { return nil }
func (c *fakeCluster) Shutdown() error                     { return nil }
func (c *fakeCluster) SetMeta([]byte, time.Duration) error { return nil }

type fakeL2 struct {
	want        map[netip.Addr][]string
	err         error
	reannounced int
}

func (f *fakeL2) Apply(want map[netip.Addr][]string) error { f.want = maps.Clone(want); return f.err }
func (f *fakeL2) Update(changes map[netip.Addr][]string, _ bool) (bool, error) {
	if f.want == nil {
		f.want = map[netip.Addr][]string{}
	}
	for a, ifs := range changes {
		if len(ifs) == 0 {
			delete(f.want, a)
		} else {
			f.want[a] = ifs
		}
	}
	return false, f.err
}
func (f *fakeL2) Reannounce() { f.reannounced++ }
func (f *fakeL2) Owned() map[netip.Addr][]string {
	if f.err != nil {
		return nil
	}
	return f.want
}
func (f *fakeL2) Close() {}

type fakeBGP struct{}

func (fakeBGP) sync(context.Context, planner.Objects, planner.Input, bgpPlan, *corev1.Node) bgpResult {
	return bgpResult{}
}
func (fakeBGP) stop(context.Context, bool) {}

type fakeHost struct{ links []host.Link }

func (h *fakeHost) Links() ([]host.Link, error) { return h.links, nil }

var (
	vip     = netip.MustParseAddr("192.0.2.240")
	macA    = net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB    = net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	lanA    = host.Link{Name: "eth0", MAC: macA, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	clockT0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
)

func node(name, ip string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
}

type harness struct {
	s       *speaker
	cluster *fakeCluster
	l2      *fakeL2
	rec     *events.FakeRecorder
	c       client.Client
	now     time.Time
}

// newHarness is the speaker of node a beside node b, with one Service holding vip and an
// L2Advertisement for everything.
func newHarness(t *testing.T, fail bool, objs ...client.Object) *harness {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: vip.String()}}}}}
	objs = append(objs, node("a", "192.0.2.11"), node("b", "192.0.2.12"), svc, &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "all"}})
	b := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.SpeakerStatus{}, &corev1.Service{}).
		WithIndex(&discoveryv1.EndpointSlice{}, sliceServiceIndex, sliceService)
	if fail {
		b = b.WithInterceptorFuncs(interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, l client.ObjectList, o ...client.ListOption) error {
			if _, ok := l.(*corev1.ServiceList); ok {
				return errors.New("the API server is gone")
			}
			return c.List(ctx, l, o...)
		}})
	}
	c := b.Build()
	h := &harness{cluster: &fakeCluster{members: map[string]bool{"a": true}, meta: map[string][]byte{}, changes: make(chan struct{}, 1)},
		l2: &fakeL2{}, rec: events.NewFakeRecorder(100), c: c, now: clockT0}
	log := testr.New(t)
	h.s = &speaker{node: "a", port: 7946, client: c, reader: c, cluster: h.cluster, ann: h.l2, host: &fakeHost{links: []host.Link{lanA}},
		recorder: h.rec, log: log, resync: time.Minute, leave: time.Second, joinTimeout: 10 * time.Second, handover: time.Second,
		now: func() time.Time { return h.now }, bgp: fakeBGP{}, trigger: make(chan struct{}, 1), started: clockT0,
		pending: map[netip.Addr]time.Time{}, m: testMetrics(), status: &statusWriter{node: "a", client: c, reader: c, log: log, clock: clocktesting.NewFakeClock(clockT0)}}
	h.s.conflicts = newConflictLog(h.s.poke)
	t.Cleanup(func() {
		if h.s.wake != nil {
			h.s.wake.Stop()
		}
	})
	return h
}

func testMetrics() *metrics {
	return &metrics{announced: prometheus.NewGauge(prometheus.GaugeOpts{Name: "a"}), members: prometheus.NewGauge(prometheus.GaugeOpts{Name: "m"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "t"}), bgpAnnounced: prometheus.NewGauge(prometheus.GaugeOpts{Name: "b"}),
		sessionUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "s"}, []string{"peer"}), bfdUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "f"}, []string{"peer"}),
		advertised:   prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "d"}, []string{"peer"}),
		conflicts:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"claimant"}),
		eventsSummed: prometheus.NewCounter(prometheus.CounterOpts{Name: "e"}),
		plans:        prometheus.NewCounter(prometheus.CounterOpts{Name: "p"}), fullPlans: prometheus.NewCounter(prometheus.CounterOpts{Name: "fp"}),
		servicePlans: prometheus.NewCounter(prometheus.CounterOpts{Name: "sp"}), memberPlans: prometheus.NewCounter(prometheus.CounterOpts{Name: "lp"})}
}

// condition reads a condition of the SpeakerStatus, the report held back by the writer's
// pacing written first.
func (h *harness) condition(t *testing.T, typ string) *metav1.Condition {
	t.Helper()
	h.s.status.writeHeld()
	var st v1alpha1.SpeakerStatus
	if err := h.c.Get(t.Context(), client.ObjectKey{Name: "a"}, &st); err != nil {
		t.Fatal(err)
	}
	return meta.FindStatusCondition(st.Status.Conditions, typ)
}

func (h *harness) events() []string {
	var out []string
	for len(h.rec.Events) > 0 {
		out = append(out, <-h.rec.Events)
	}
	return out
}

// reported is the SpeakerStatus of a running, Ready speaker on node name.
func reported(name string) *v1alpha1.SpeakerStatus {
	return &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1alpha1.SpeakerReport{Members: []string{name},
		Conditions: []metav1.Condition{{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonApplied, LastTransitionTime: metav1.NewTime(clockT0)}}}}
}

func TestJoinBeforeClaim(t *testing.T) {
	// b's speaker has reported in: a waits to join it, however long that takes.
	h := newHarness(t, false, reported("b"))
	h.s.sync(t.Context())
	h.now = clockT0.Add(time.Hour)
	h.s.sync(t.Context())
	if len(h.l2.want) != 0 {
		t.Errorf("a speaker that has not joined claims %v", h.l2.want)
	}
	if c := h.condition(t, ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonJoining || !strings.Contains(c.Message, "b") {
		t.Errorf("Ready: %+v", c)
	}
	// Joined: a alone now (b died since), it claims at once.
	h.cluster.joined = true
	h.s.sync(t.Context())
	if len(h.l2.want[vip]) != 1 || h.l2.want[vip][0] != "eth0" {
		t.Errorf("after joining: %v", h.l2.want)
	}
	if c := h.condition(t, ConditionReady); c.Status != metav1.ConditionTrue || c.Reason != ReasonApplied {
		t.Errorf("Ready: %+v", c)
	}
}

func TestAloneAfterTheJoinTimeout(t *testing.T) {
	// Another Node, but no Ready speaker reported from it (one stuck joining itself).
	stuck := reported("b")
	stuck.Status.Conditions[0].Status, stuck.Status.Conditions[0].Reason = metav1.ConditionFalse, ReasonJoining
	h := newHarness(t, false, stuck)
	h.s.sync(t.Context())
	if len(h.l2.want) != 0 {
		t.Errorf("claimed %v before the join timeout", h.l2.want)
	}
	h.now = clockT0.Add(11 * time.Second)
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 {
		t.Errorf("claimed %v after the join timeout, alone", h.l2.want)
	}
	if c := h.condition(t, ConditionReady); c.Status != metav1.ConditionTrue || c.Reason != ReasonAlone {
		t.Errorf("Ready: %+v", c)
	}
}

func TestNodeDownDoesNotHoldBack(t *testing.T) {
	b := reported("b")
	h := newHarness(t, false, b)
	var n corev1.Node
	if err := h.c.Get(t.Context(), client.ObjectKey{Name: "b"}, &n); err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionUnknown}}
	if err := h.c.Status().Update(t.Context(), &n); err != nil {
		t.Fatal(err)
	}
	h.now = clockT0.Add(11 * time.Second)
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 {
		t.Errorf("b's node is down, so a is alone after the timeout; claimed %v", h.l2.want)
	}
}

func TestHandoverWaitsForTheLiveOwner(t *testing.T) {
	h := newHarness(t, false, reported("b"))
	h.cluster.joined = true
	h.cluster.members["b"] = true
	// b publishes no interface: a is the only node that can answer.
	h.cluster.meta["b"] = encodeMeta(0, nil)
	h.s.sync(t.Context())
	if len(h.l2.want) != 0 {
		t.Errorf("the first plan after joining claims %v at once; b may still answer", h.l2.want)
	}
	h.now = clockT0.Add(time.Second)
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 {
		t.Errorf("after the handover delay: %v", h.l2.want)
	}
	// b leaves and comes back; a keeps what it owns, with a new burst when b returns (b may
	// have claimed it meanwhile); b's leaving corrects nothing.
	h.cluster.members = map[string]bool{"a": true}
	h.s.sync(t.Context())
	if h.l2.reannounced != 0 {
		t.Errorf("re-announced %d times when b left", h.l2.reannounced)
	}
	h.cluster.members["b"] = true
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 || h.l2.reannounced != 1 {
		t.Errorf("owned %v, re-announced %d times (want 1: b's return)", h.l2.want, h.l2.reannounced)
	}
}

func TestFailoverDoesNotWait(t *testing.T) {
	h := newHarness(t, false, reported("b"))
	h.cluster.joined = true
	h.cluster.members["b"] = true
	h.cluster.meta["b"] = encodeMeta(0, []host.Link{{Name: "eth0", MAC: macB, Prefixes: lanA.Prefixes}})
	// a has no interface yet: b owns the address.
	h.s.host.(*fakeHost).links = nil
	h.s.sync(t.Context())
	if h.s.lastOwner[vip] != "b" || len(h.l2.want) != 0 {
		t.Fatalf("owner %q, a claims %v", h.s.lastOwner[vip], h.l2.want)
	}
	// b dies and a's interface comes up: a takes over at once.
	delete(h.cluster.members, "b")
	h.s.host.(*fakeHost).links = []host.Link{lanA}
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 {
		t.Errorf("fail-over from a dead owner waited: %v", h.l2.want)
	}
}

// When a member dies, the plan is kept and only its addresses move: no plan from every
// Service, no new burst for what this node already owned. When it returns, only what it
// wins moves.
func TestMemberChangesPlanOnlyWhatMoves(t *testing.T) {
	h := newHarness(t, false, reported("b"))
	h.s.changes = &changes{} // as the informers keep it: nothing changed but the members
	h.cluster.joined = true
	h.cluster.members["b"] = true
	h.cluster.meta["a"] = encodeMeta(0, []host.Link{lanA})
	h.cluster.meta["b"] = encodeMeta(0, []host.Link{{Name: "eth0", MAC: macB, Prefixes: lanA.Prefixes}})
	// A second Service on an address the planner gives b.
	var bs netip.Addr
	for i := 1; i < 255 && !bs.IsValid(); i++ {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		in := planner.Input{Members: map[string]bool{"a": true, "b": true}, Nodes: map[string]planner.Node{"a": {Name: "a"}, "b": {Name: "b"}},
			Services: []planner.Service{{Key: "ns/b", IPs: []planner.IP{{Addr: a}}}}, L2: []planner.L2Advertisement{{Name: "all"}}}
		if planner.L2(in)[0].Owner == "b" {
			bs = a
		}
	}
	if err := h.c.Create(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: bs.String()}}}}}); err != nil {
		t.Fatal(err)
	}
	h.s.sync(t.Context())
	h.now = clockT0.Add(time.Second)
	h.s.sync(t.Context())
	if h.s.lastOwner[bs] != "b" || len(h.l2.want) > 1 {
		t.Fatalf("before: %s owned by %q, a answers for %v", bs, h.s.lastOwner[bs], h.l2.want)
	}
	before := maps.Clone(h.l2.want)
	full := testutil.ToFloat64(h.s.m.fullPlans)
	delete(h.cluster.members, "b")
	delete(h.cluster.meta, "b")
	h.s.sync(t.Context())
	if _, ok := h.l2.want[bs]; !ok || len(h.l2.want) != len(before)+1 || h.s.lastOwner[bs] != "a" {
		t.Errorf("after b died: a answers for %v (before %v), owner of %s %q", h.l2.want, before, bs, h.s.lastOwner[bs])
	}
	if n := testutil.ToFloat64(h.s.m.fullPlans); n != full {
		t.Errorf("%v plans from every Service when b died, want none", n-full)
	}
	if n := testutil.ToFloat64(h.s.m.memberPlans); n != 1 {
		t.Errorf("%v plans for a departed member, want 1", n)
	}
	if h.l2.reannounced != 0 {
		t.Errorf("re-announced %d times when b died", h.l2.reannounced)
	}
	// b returns: it wins its address back (a stops answering at once), a keeps its own with a
	// new burst, and still nothing is planned from every Service.
	h.cluster.members["b"] = true
	h.cluster.meta["b"] = encodeMeta(0, []host.Link{{Name: "eth0", MAC: macB, Prefixes: lanA.Prefixes}})
	h.s.sync(t.Context())
	if _, ok := h.l2.want[bs]; ok || len(h.l2.want) != len(before) || h.s.lastOwner[bs] != "b" {
		t.Errorf("after b returned: a answers for %v (before %v), owner of %s %q", h.l2.want, before, bs, h.s.lastOwner[bs])
	}
	if n := testutil.ToFloat64(h.s.m.fullPlans); n != full {
		t.Errorf("%v plans from every Service when b returned, want none", n-full)
	}
	if n := testutil.ToFloat64(h.s.m.memberPlans); n != 2 || h.l2.reannounced != 1 {
		t.Errorf("%v plans for members, want 2; re-announced %d times, want 1", n, h.l2.reannounced)
	}
}

func TestConflictReported(t *testing.T) {
	h := newHarness(t, false)
	h.cluster.joined = true
	h.cluster.meta["b"] = encodeMeta(0, []host.Link{{Name: "eth0", MAC: macB}})
	h.cluster.members["b"] = true
	h.s.sync(t.Context())
	h.now = clockT0.Add(time.Second)
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 {
		t.Fatalf("a should own %s (b has no prefix for it): %v", vip, h.l2.want)
	}
	h.events()
	// b partitioned away claims the address too; then a device that is no speaker.
	delete(h.cluster.members, "b")
	h.s.conflicts.add(layer2.Conflict{Addr: vip, MAC: macB, Interface: "eth0", At: h.now})
	h.s.sync(t.Context())
	evs := h.events()
	if len(evs) != 1 || !strings.Contains(evs[0], ReasonAddressConflict) || !strings.Contains(evs[0], "the speaker on b") {
		t.Errorf("events %q", evs)
	}
	if c := h.condition(t, ConditionConflict); c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, macB.String()) {
		t.Errorf("Conflict: %+v", c)
	}
	foreign := net.HardwareAddr{2, 0, 0, 0, 0, 0xee}
	h.s.conflicts.add(layer2.Conflict{Addr: vip, MAC: foreign, Interface: "eth0", At: h.now})
	h.s.sync(t.Context())
	if evs := h.events(); len(evs) != 1 || !strings.Contains(evs[0], "no speaker") {
		t.Errorf("events %q", evs)
	}
	// The same claimant again: no new Event. Then quiet for the hold: the condition clears.
	h.s.conflicts.add(layer2.Conflict{Addr: vip, MAC: foreign, Interface: "eth0", At: h.now})
	h.s.sync(t.Context())
	if evs := h.events(); len(evs) != 0 {
		t.Errorf("a repeated claim wrote %q", evs)
	}
	h.now = h.now.Add(conflictHold + time.Second)
	h.s.sync(t.Context())
	if c := h.condition(t, ConditionConflict); c.Status != metav1.ConditionFalse {
		t.Errorf("Conflict after the hold: %+v", c)
	}
}

func TestSyncFailureIsNotReady(t *testing.T) {
	h := newHarness(t, true)
	h.s.sync(t.Context())
	if c := h.condition(t, ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != ReasonSyncFailed || !strings.Contains(c.Message, "the API server is gone") {
		t.Errorf("Ready: %+v", c)
	}
	// An apply failure is not Ready either.
	h = newHarness(t, false)
	h.cluster.joined = true
	h.l2.err = errors.New("interface eth0 has no Ethernet address")
	h.s.sync(t.Context())
	if c := h.condition(t, ConditionReady); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "no Ethernet address") {
		t.Errorf("Ready: %+v", c)
	}
	var st v1alpha1.SpeakerStatus
	if err := h.c.Get(t.Context(), client.ObjectKey{Name: "a"}, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Status.Announced) != 0 {
		t.Errorf("reports %+v although its interface would not open", st.Status.Announced)
	}
}

// bWins is an address that rendezvous hashing gives to b over a (vip goes to a).
var bWins = netip.MustParseAddr("192.0.2.241")

func (h *harness) setVIP(t *testing.T, addr netip.Addr) {
	t.Helper()
	var svc corev1.Service
	if err := h.c.Get(t.Context(), client.ObjectKey{Namespace: "ns", Name: "web"}, &svc); err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: addr.String()}}
	if err := h.c.Status().Update(t.Context(), &svc); err != nil {
		t.Fatal(err)
	}
}

func TestRestartHoldKeepsAddresses(t *testing.T) {
	h := newHarness(t, false, reported("b"))
	h.setVIP(t, bWins)
	h.cluster.joined = true
	h.cluster.members["b"] = true
	bLinks := []host.Link{{Name: "eth0", MAC: macB, Prefixes: lanA.Prefixes}}
	h.cluster.meta["b"] = encodeMeta(0, bLinks)
	h.s.sync(t.Context())
	if h.s.lastOwner[bWins] != "b" {
		t.Fatalf("b should own %s: %v", bWins, h.s.lastOwner)
	}
	// b stops for a restart with a 10 s hold: a does not take its address.
	delete(h.cluster.members, "b")
	delete(h.cluster.meta, "b")
	h.cluster.departed = map[string][]byte{"b": encodeMeta(10*time.Second, bLinks)}
	h.s.sync(t.Context())
	h.now = clockT0.Add(9 * time.Second)
	h.s.sync(t.Context())
	if len(h.l2.want) != 0 {
		t.Errorf("took over %v from a speaker restarting within its hold", h.l2.want)
	}
	// The hold runs out: b is gone for good, a takes over at once.
	h.now = clockT0.Add(10 * time.Second)
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 {
		t.Errorf("after the hold: %v", h.l2.want)
	}
}

func TestHoldOnStop(t *testing.T) {
	h := newHarness(t, false)
	h.s.restartHold = 10 * time.Second
	h.s.members = map[string]bool{"a": true, "b": true}
	if got := h.s.holdOnStop(h.s.goingAway()); got != 10*time.Second {
		t.Errorf("a restart on a healthy node: hold %s", got)
	}
	var n corev1.Node
	if err := h.c.Get(t.Context(), client.ObjectKey{Name: "a"}, &n); err != nil {
		t.Fatal(err)
	}
	n.Spec.Unschedulable = true
	if err := h.c.Update(t.Context(), &n); err != nil {
		t.Fatal(err)
	}
	if got := h.s.holdOnStop(h.s.goingAway()); got != 0 {
		t.Errorf("a cordoned node: hold %s, want a hand-over", got)
	}
	h.s.members = map[string]bool{"a": true}
	n.Spec.Unschedulable = false
	if err := h.c.Update(t.Context(), &n); err != nil {
		t.Fatal(err)
	}
	if got := h.s.holdOnStop(h.s.goingAway()); got != 0 {
		t.Errorf("alone: hold %s, want none (nobody to keep anything)", got)
	}
}

// Partitioned from b, a took b's address; b's claim heard on the wire makes a yield it, as
// the whole cluster would.
func TestPartitionedSpeakerYields(t *testing.T) {
	h := newHarness(t, false, reported("b"))
	h.setVIP(t, bWins)
	h.cluster.joined = true
	bLinks := []host.Link{{Name: "eth0", MAC: macB, Prefixes: lanA.Prefixes}}
	h.cluster.departed = map[string][]byte{"b": encodeMeta(0, bLinks)}
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 {
		t.Fatalf("a, cut off from b, should claim %s: %v", bWins, h.l2.want)
	}
	h.s.conflicts.add(layer2.Conflict{Addr: bWins, MAC: macB, Interface: "eth0", At: h.now})
	h.s.sync(t.Context())
	if len(h.l2.want) != 0 {
		t.Errorf("a keeps %v although b claims it", h.l2.want)
	}
	if evs := h.events(); !slices.ContainsFunc(evs, func(e string) bool { return strings.Contains(e, "the speaker on b") }) {
		t.Errorf("events %q", evs)
	}
	// Nothing heard from b for the hold: a takes the address again.
	h.now = h.now.Add(conflictHold + time.Second)
	h.s.sync(t.Context())
	if len(h.l2.want) != 1 {
		t.Errorf("after b fell silent: %v", h.l2.want)
	}
}

// Every plan asks again for the deadlines it waits on: a pending handover keeps its wake
// when an earlier one fires.
func TestWakeKeepsEveryDeadline(t *testing.T) {
	h := newHarness(t, false, reported("b"))
	h.cluster.joined = true
	h.cluster.members["b"] = true
	h.cluster.meta["b"] = encodeMeta(0, nil)
	h.s.sync(t.Context()) // the first plan after joining: a waits 1 s for vip
	if want := clockT0.Add(time.Second); !h.s.wakeTime.Equal(want) {
		t.Fatalf("wake at %s, want %s", h.s.wakeTime, want)
	}
	h.now = clockT0.Add(500 * time.Millisecond) // some earlier wake fired
	h.s.sync(t.Context())
	if want := clockT0.Add(time.Second); !h.s.wakeTime.Equal(want) {
		t.Errorf("after an earlier wake: wake at %s, want %s still", h.s.wakeTime, want)
	}
}

// When this node's links do not fit in the metadata, it plans with them unknown, as the
// others do, and finds its interface itself.
func TestTruncatedLinksSameView(t *testing.T) {
	h := newHarness(t, false)
	h.cluster.joined = true
	var many []host.Link
	for i := range 40 {
		many = append(many, host.Link{Name: fmt.Sprintf("vlan%d", 100+i), MAC: net.HardwareAddr{2, 0, 0, 0, 1, byte(i)},
			Prefixes: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/64", i))}})
	}
	h.s.host.(*fakeHost).links = append(many, lanA)
	h.s.sync(t.Context())
	if h.s.linksComplete {
		t.Fatal("41 links fit in the metadata: the test needs more")
	}
	if got := h.l2.want[vip]; len(got) != 1 || got[0] != "eth0" {
		t.Errorf("answers for %s on %v, want eth0 (its prefix)", vip, got)
	}
}

func TestManyMovesOneEventOnTheNode(t *testing.T) {
	var objs []client.Object
	for i := range 5 {
		objs = append(objs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("s%d", i)}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: fmt.Sprintf("192.0.2.%d", 100+i)}}}}})
	}
	h := newHarness(t, false, objs...)
	h.s.eventsPerPlan = 3
	h.cluster.joined = true
	h.s.sync(t.Context())
	h.now = clockT0.Add(time.Second)
	h.s.sync(t.Context())
	if len(h.l2.want) != 6 {
		t.Fatalf("a alone should answer for the 6 addresses: %v", h.l2.want)
	}
	// Six Services started at once, more than 3: one Event, on the Node, counting them.
	evs := h.events()
	if len(evs) != 1 || !strings.Contains(evs[0], ReasonAnnouncing) || !strings.Contains(evs[0], "a started announcing 6 addresses over L2 (6 Services)") {
		t.Fatalf("events %q, want one counting 6 addresses", evs)
	}
	if n := testutil.ToFloat64(h.s.m.eventsSummed); n != 6 {
		t.Errorf("%v Events summed, want 6", n)
	}
	// One Service moves to another address: two Events on it, under the limit.
	var svc corev1.Service
	if err := h.c.Get(t.Context(), client.ObjectKey{Namespace: "ns", Name: "s0"}, &svc); err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress[0].IP = "192.0.2.120"
	if err := h.c.Status().Update(t.Context(), &svc); err != nil {
		t.Fatal(err)
	}
	h.s.sync(t.Context())
	evs = h.events()
	slices.Sort(evs) // "Normal Announcing" before "Normal StoppedAnnouncing"
	if len(evs) != 2 || !strings.Contains(evs[0], "192.0.2.120 announced over L2 from a") || !strings.Contains(evs[1], "192.0.2.100 no longer announced over L2 from a") {
		t.Errorf("events %q, want one Withdraw and one Announce on ns/s0", evs)
	}
	if n := testutil.ToFloat64(h.s.m.eventsSummed); n != 6 {
		t.Errorf("%v Events summed, want still 6", n)
	}
}
