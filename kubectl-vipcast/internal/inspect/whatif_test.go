package inspect

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/internal/planner"
)

// slice is an EndpointSlice of Service name with one ready endpoint on each node.
func slice(name string, nodes ...string) discoveryv1.EndpointSlice {
	sl := discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}}}
	for _, n := range nodes {
		ready := true
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.0.0.1"}, NodeName: &n, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return sl
}

func TestWhatIf(t *testing.T) {
	c := base()
	c.Nodes = append(c.Nodes, node("node-3", "192.0.2.13"))
	c.Speakers = append(c.Speakers, speaker("node-3"))
	local := lb("local", "192.0.2.241", allocated("Allocated", "x"))
	local.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	c.Services = []corev1.Service{lb("web", "192.0.2.240", allocated("Allocated", "x")), local}
	c.Slices = []discoveryv1.EndpointSlice{slice("web", "node-1", "node-2"), slice("local", "node-3")}
	members, links := c.Members()
	in := c.objects(members, links).Input()
	owners := map[string]string{}
	for _, d := range planner.L2(in) {
		owners[d.Addr.String()] = d.Owner
	}
	if owners["192.0.2.241"] != "node-3" {
		t.Fatalf("the Local Service should be node-3's: %v", owners)
	}
	// node-3 down: the Local Service has nowhere to go and goes dark; web moves only if it was node-3's.
	w, err := NodeDown(c, "node-3")
	if err != nil {
		t.Fatal(err)
	}
	var localMove *Move
	for i, m := range w.Moves {
		if m.Address == "192.0.2.241" {
			localMove = &w.Moves[i]
		}
		if m.From != "node-3" {
			t.Errorf("%s moves from %s, which stays up", m.Address, m.From)
		}
	}
	if localMove == nil || localMove.To != "" || localMove.Reason != "NoLocalEndpoints" {
		t.Errorf("the Local Service's address: %+v", localMove)
	}
	if len(w.Dark) != 1 || w.Dark[0].Service != "shop/local" {
		t.Errorf("dark %+v, want shop/local", w.Dark)
	}
	// node-1 drained: web keeps node-2's endpoint, nothing moves (Cluster policy), nothing dark.
	w, err = Drain(c, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Moves) != 0 || len(w.Dark) != 0 {
		t.Errorf("drain node-1: %+v", w)
	}
	// node-3 drained: its speaker stays, the Local Service loses its only endpoint.
	w, err = Drain(c, "node-3")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Dark) != 1 || w.Dark[0].Service != "shop/local" || w.BGPWithdrawn != 0 {
		t.Errorf("drain node-3: %+v", w)
	}
	if _, err := NodeDown(c, "node-9"); err == nil {
		t.Error("a missing node gave no error")
	}
}
