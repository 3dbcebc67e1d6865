package planner

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// From API objects to routes: the BGP kinds compile, a bad selector skips its object (and is
// reported), aggregation (only inside the pool) and attributes come through.
func TestObjectsBGP(t *testing.T) {
	agg, lp := int32(24), uint32(150)
	var reported []string
	objs := Objects{
		Nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"rack": "1"}}}},
		Pools: []v1alpha1.IPAddressPool{{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []v1alpha1.AddressRange{"203.0.113.0/24"}}}},
		Services: []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
			Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}}}}},
		BGP: []v1alpha1.BGPAdvertisement{
			{ObjectMeta: metav1.ObjectMeta{Name: "agg"}, Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}, AggregationLength: &agg, LocalPref: &lp, Communities: []v1alpha1.Community{"65000:100"}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Spec: v1alpha1.BGPAdvertisementSpec{NodeSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: "Bogus"}}}}}},
		},
		Peers:            []v1alpha1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1alpha1.BGPPeerSpec{NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "1"}}}}}},
		BadAdvertisement: func(name string, _ error) { reported = append(reported, name) },
	}
	rs := BGPFor(objs.Input(), "a")
	if len(reported) != 1 || reported[0] != "broken" {
		t.Errorf("reported %v, want the broken advertisement", reported)
	}
	if len(rs) != 1 || rs[0].Prefix != netip.MustParsePrefix("203.0.113.0/24") || rs[0].Peers[0] != "tor" ||
		rs[0].LocalPref == nil || *rs[0].LocalPref != 150 || rs[0].Communities[0] != "65000:100" || rs[0].Services[0] != "ns/web" {
		t.Errorf("routes %+v", rs)
	}
	// The pool's ranges come through: a /28 pool is not aggregated to a /24.
	objs.Pools[0].Spec.Addresses = []v1alpha1.AddressRange{"203.0.113.0/28"}
	if rs := BGPFor(objs.Input(), "a"); len(rs) != 0 {
		t.Errorf("routes of a /24 aggregate of a /28 pool: %+v", rs)
	}
}
