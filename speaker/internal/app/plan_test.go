package app

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/speaker/internal/host"
)

// TestIncrementalSyncEqualsFull changes Services and EndpointSlices at random, telling the
// speaker only which Services changed, and checks after every plan that what it answers for
// and reports equals what a plan made from every Service gives.
func TestIncrementalSyncEqualsFull(t *testing.T) {
	h := newHarness(t, false, reported("b"))
	h.cluster.joined = true
	h.cluster.members["b"] = true
	h.cluster.meta["b"] = encodeMeta(0, []host.Link{{Name: "eth0", MAC: macB, Prefixes: lanA.Prefixes}})
	h.s.changes = &changes{}
	h.s.sync(t.Context())
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	ctx := t.Context()
	answering := 0 // steps after which a answered for something
	left, returned := 0, 0
	for step := range 300 {
		name := fmt.Sprint("s", r.IntN(12))
		key := "ns/" + name
		switch r.IntN(4) {
		case 0:
			err := h.c.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
		case 1:
			sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name + "-x",
				Labels: map[string]string{discoveryv1.LabelServiceName: name}}, AddressType: discoveryv1.AddressTypeIPv4,
				Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: ptr(pickOf(r, "a", "b"))}}}
			if err := h.c.Delete(ctx, sl); err != nil && !apierrors.IsNotFound(err) {
				t.Fatal(err)
			}
			if err := h.c.Create(ctx, sl); err != nil {
				t.Fatal(err)
			}
		default:
			upsertService(t, h, name, r)
		}
		h.s.changes.service(key)
		// Now and then b dies or returns (a plan for the member alone).
		if r.IntN(10) == 0 {
			if h.cluster.members["b"] {
				delete(h.cluster.members, "b")
				left++
			} else {
				h.cluster.members["b"] = true
				returned++
			}
		}
		h.s.sync(ctx)
		h.events() // drained: the fake recorder blocks when its buffer is full
		want, mine := maps.Clone(h.s.l2want), maps.Clone(h.s.owned)
		if !maps.EqualFunc(h.l2.want, want, slices.Equal) {
			t.Fatalf("step %d (seed %d): the announcer was updated to %v, the plan says %v", step, seed, h.l2.want, want)
		}
		h.s.changes.everything()
		h.s.sync(ctx)
		h.events()
		if !reflect.DeepEqual(want, h.s.l2want) {
			t.Fatalf("step %d (seed %d): answered for %v after the change, %v after a full plan", step, seed, want, h.s.l2want)
		}
		if !reflect.DeepEqual(mine, h.s.owned) {
			t.Fatalf("step %d (seed %d): reported %v after the change, %v after a full plan", step, seed, mine, h.s.owned)
		}
		if len(want) > 0 {
			answering++
		}
	}
	t.Logf("a answered for something after %d of 300 steps", answering)
	if answering < 30 {
		t.Errorf("a answered for something after %d of 300 steps only; the test exercised too little", answering)
	}
	// One full plan at start and one after each change; the plans for the changes and for
	// b's deaths and returns were not.
	if full := testutil.ToFloat64(h.s.m.fullPlans); full != 301 {
		t.Errorf("%v full plans, want 301: the plans for single changes or b's comings and goings read every Service", full)
	}
	if n := testutil.ToFloat64(h.s.m.memberPlans); n != float64(left+returned) || left == 0 || returned == 0 {
		t.Errorf("%v plans for b's %d deaths and %d returns, want one each (and some of both)", n, left, returned)
	}
}

func pickOf(r *rand.Rand, vs ...string) string { return vs[r.IntN(len(vs))] }

// upsertService creates or replaces Service ns/name with random addresses, labels and
// traffic policy.
func upsertService(t *testing.T, h *harness, name string, r *rand.Rand) {
	t.Helper()
	ctx := t.Context()
	svc := &corev1.Service{}
	err := h.c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: name}, svc)
	if apierrors.IsNotFound(err) {
		svc = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
		if err := h.c.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	svc.Labels = map[string]string{"tier": pickOf(r, "web", "db")}
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicy(pickOf(r, "Cluster", "Local"))
	if err := h.c.Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	var ingress []corev1.LoadBalancerIngress
	for range r.IntN(3) {
		a := netip.AddrFrom4([4]byte{192, 0, 2, byte(200 + r.IntN(8))})
		ingress = append(ingress, corev1.LoadBalancerIngress{IP: a.String()})
	}
	svc.Status.LoadBalancer.Ingress = ingress
	if err := h.c.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
}

func TestPlanInputChanged(t *testing.T) {
	lb := func(mut func(*corev1.Service)) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"a": "1"}, ResourceVersion: "1"},
			Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}}}
		if mut != nil {
			mut(s)
		}
		return s
	}
	ready := func(node string, ok bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{NodeName: ptr(node), Conditions: discoveryv1.EndpointConditions{Ready: ptr(ok)}}
	}
	slice := func(eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-x", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}, Endpoints: eps}
	}
	nodeWith := func(mut func(*corev1.Node)) *corev1.Node {
		n := node("a", "192.0.2.11")
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.NewTime(clockT0)}}
		if mut != nil {
			mut(n)
		}
		return n
	}
	for _, tc := range []struct {
		name     string
		old, cur any
		want     bool
	}{
		{"Service: only its resourceVersion", lb(nil), lb(func(s *corev1.Service) { s.ResourceVersion = "2" }), false},
		{"Service: conditions written by the controller", lb(nil), lb(func(s *corev1.Service) {
			s.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionAnnounced, Status: metav1.ConditionTrue}}
		}), false},
		{"Service: a new address", lb(nil), lb(func(s *corev1.Service) { s.Status.LoadBalancer.Ingress[0].IP = "192.0.2.2" }), true},
		{"Service: labels", lb(nil), lb(func(s *corev1.Service) { s.Labels["a"] = "2" }), true},
		{"Service: traffic policy", lb(nil), lb(func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }), true},
		{"Service: class", lb(nil), lb(func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr("other") }), true},
		{"EndpointSlice: another pod on the same node", slice(ready("a", true)), slice(ready("a", true), ready("a", true)), false},
		{"EndpointSlice: a node gains a ready endpoint", slice(ready("a", true)), slice(ready("a", true), ready("b", true)), true},
		{"EndpointSlice: an endpoint turns not ready", slice(ready("a", true)), slice(ready("a", false)), true},
		{"Node: a heartbeat", nodeWith(nil), nodeWith(func(n *corev1.Node) { n.Status.Conditions[0].LastHeartbeatTime = metav1.NewTime(clockT0.Add(10e9)) }), false},
		{"Node: not ready", nodeWith(nil), nodeWith(func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionUnknown }), true},
		{"Node: a label", nodeWith(nil), nodeWith(func(n *corev1.Node) { n.Labels = map[string]string{"zone": "x"} }), true},
		{"Node: cordoned", nodeWith(nil), nodeWith(func(n *corev1.Node) { n.Spec.Unschedulable = true }), true},
		{"BGPPeer: status from the controller", &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Generation: 1}},
			&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Generation: 1}, Status: v1alpha1.BGPPeerStatus{EstablishedNodes: 2}}, false},
		{"BGPPeer: spec", &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Generation: 1}}, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Generation: 2}}, true},
		{"IPAddressPool: labels", &v1alpha1.IPAddressPool{}, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"x": "y"}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := planInputChanged(tc.old, tc.cur); got != tc.want {
				t.Errorf("planInputChanged = %v, want %v", got, tc.want)
			}
		})
	}
	if !unhandledService(&corev1.Service{}, "") || unhandledService(lb(nil), "") || !unhandledService(lb(nil), "other") {
		t.Error("unhandledService: a ClusterIP Service or one of another class is not ours; a LoadBalancer without a class is")
	}
	if got := slices.Collect(maps.Keys(map[string]bool{changedService(slice()): true})); got[0] != "ns/web" {
		t.Errorf("an EndpointSlice's change names %v, want ns/web", got)
	}
}

func TestSlimDropsWhatTheSpeakerNeverReads(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.1"}}}}}
	if _, err := slim(svc); err != nil {
		t.Fatal(err)
	}
	if svc.Annotations != nil || svc.ManagedFields != nil || svc.Labels["app"] != "web" || len(svc.Status.LoadBalancer.Ingress) != 1 {
		t.Errorf("Service after slim: %+v", svc)
	}
}
