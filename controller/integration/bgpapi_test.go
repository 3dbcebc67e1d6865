package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// The BGP kinds are validated by the API server: what a user writes wrong is rejected with a
// message that says where and why, and defaults are filled in.
func TestBGPKindsValidation(t *testing.T) {
	ctx := context.Background()
	create := func(ctx context.Context, o client.Object) error { return k8s.Create(ctx, o) }
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	peer := func(name string, mutate func(*v1alpha1.BGPPeerSpec)) *v1alpha1.BGPPeer {
		p := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.BGPPeerSpec{MyASN: 64513, PeerASN: 64512, PeerAddress: "192.0.2.1"}}
		mutate(&p.Spec)
		return p
	}
	adv := func(name string, mutate func(*v1alpha1.BGPAdvertisementSpec)) *v1alpha1.BGPAdvertisement {
		a := &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
		mutate(&a.Spec)
		return a
	}
	i32 := func(v int32) *int32 { return &v }
	for _, tc := range []struct {
		name string
		obj  client.Object
		want string // "" = accepted
	}{
		{"minimal peer", peer("p-min", func(*v1alpha1.BGPPeerSpec) {}), ""},
		{"full peer", peer("p-full", func(s *v1alpha1.BGPPeerSpec) {
			s.PeerAddress, s.SourceAddress, s.RouterID = "2001:db8::1", "2001:db8::11", "192.0.2.11"
			s.HoldTime, s.KeepaliveTime, s.ConnectTime = dur(9*time.Second), dur(3*time.Second), dur(time.Second)
			s.PasswordSecret = &v1alpha1.SecretKeyReference{Name: "bgp", Namespace: "vipcast-system"}
			s.BFD = &v1alpha1.BFDSettings{Enabled: true}
			s.GracefulRestart = &v1alpha1.GracefulRestartSettings{Enabled: true, RestartTime: dur(120 * time.Second)}
		}), ""},
		{"peer address not an IP", peer("p-addr", func(s *v1alpha1.BGPPeerSpec) { s.PeerAddress = "router.example" }), "must be an IP address"},
		{"ASN zero", peer("p-asn", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN = 0 }), "spec.peerASN"},
		{"hold time too short", peer("p-hold", func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = dur(time.Second) }), "holdTime must be 0s or at least 3s"},
		{"keepalive not shorter than hold", peer("p-ka", func(s *v1alpha1.BGPPeerSpec) {
			s.HoldTime, s.KeepaliveTime = dur(9*time.Second), dur(9*time.Second)
		}), "keepaliveTime must be shorter than holdTime"},
		{"router ID not IPv4", peer("p-rid", func(s *v1alpha1.BGPPeerSpec) { s.RouterID = "2001:db8::1" }), "must be an IPv4 address"},
		{"BFD multiplier 1", peer("p-bfd", func(s *v1alpha1.BGPPeerSpec) {
			s.BFD = &v1alpha1.BFDSettings{Enabled: true, DetectMultiplier: 1}
		}), "spec.bfd.detectMultiplier"},
		{"port out of range", peer("p-port", func(s *v1alpha1.BGPPeerSpec) { s.PeerPort = 70000 }), "spec.peerPort"},
		{"multihop on iBGP", peer("p-ibgp-hop", func(s *v1alpha1.BGPPeerSpec) { s.PeerASN, s.EBGPMultiHop = s.MyASN, true }), "ebgpMultiHop is for eBGP only"},
		{"multihop on eBGP", peer("p-ebgp-hop", func(s *v1alpha1.BGPPeerSpec) { s.EBGPMultiHop = true }), ""},
		{"BFD on a multihop peer", peer("p-hop-bfd", func(s *v1alpha1.BGPPeerSpec) {
			s.EBGPMultiHop, s.BFD = true, &v1alpha1.BFDSettings{Enabled: true}
		}), "BFD is single-hop"},
		{"source of another family", peer("p-src", func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "2001:db8::11" }), "same family"},
		{"node selector In without values", peer("p-sel-in", func(s *v1alpha1.BGPPeerSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: metav1.LabelSelectorOpIn}}}}
		}), "operators In and NotIn need values"},
		{"node selector Exists with values", peer("p-sel-ex", func(s *v1alpha1.BGPPeerSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: metav1.LabelSelectorOpExists, Values: []string{"1"}}}}}
		}), "Exists and DoesNotExist take none"},
		{"node selector with a node-selector operator", peer("p-sel-gt", func(s *v1alpha1.BGPPeerSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: "Gt", Values: []string{"1"}}}}}
		}), "spec.nodeSelectors[0].matchExpressions[0].operator"},
		{"full advertisement", adv("a-full", func(s *v1alpha1.BGPAdvertisementSpec) {
			s.IPAddressPools, s.Peers = []string{"web"}, []string{"tor-a"}
			s.AggregationLength, s.AggregationLengthV6 = i32(24), i32(64)
			lp := uint32(200)
			s.LocalPref = &lp
			s.Communities = []v1alpha1.Community{"65000:100", "large:64512:1:4294967295"}
		}), ""},
		{"community part too big", adv("a-comm", func(s *v1alpha1.BGPAdvertisementSpec) { s.Communities = []v1alpha1.Community{"70000:1"} }), "a standard community is two numbers up to 65535"},
		{"large community with two parts", adv("a-large", func(s *v1alpha1.BGPAdvertisementSpec) { s.Communities = []v1alpha1.Community{"large:1:2"} }), "spec.communities[0]"},
		{"not a community", adv("a-junk", func(s *v1alpha1.BGPAdvertisementSpec) { s.Communities = []v1alpha1.Community{"no-export"} }), "spec.communities[0]"},
		{"pool selector NotIn without values", adv("a-sel-notin", func(s *v1alpha1.BGPAdvertisementSpec) {
			s.IPAddressPoolSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn}}}}
		}), "spec.ipAddressPoolSelectors"},
		{"service selector DoesNotExist with values", adv("a-sel-dne", func(s *v1alpha1.BGPAdvertisementSpec) {
			s.ServiceSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpDoesNotExist, Values: []string{"web"}}}}}
		}), "spec.serviceSelectors"},
		{"selector label value too long", adv("a-sel-long", func(s *v1alpha1.BGPAdvertisementSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": strings.Repeat("x", 64)}}}
		}), "spec.nodeSelectors[0].matchLabels.rack"},
		{"aggregation longer than a host", adv("a-agg", func(s *v1alpha1.BGPAdvertisementSpec) { s.AggregationLength = i32(33) }), "spec.aggregationLength"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectValidation(t, tc.obj, tc.want, create) })
	}
	t.Run("defaults", func(t *testing.T) {
		p := peer("p-defaults", func(s *v1alpha1.BGPPeerSpec) { s.BFD = &v1alpha1.BFDSettings{Enabled: true} })
		must(t, k8s.Create(ctx, p))
		defer func() { _ = k8s.Delete(ctx, p) }()
		if p.Spec.PeerPort != 179 || p.Spec.BFD.ReceiveInterval != 300 || p.Spec.BFD.TransmitInterval != 300 || p.Spec.BFD.DetectMultiplier != 3 {
			t.Errorf("defaults not filled in: port %d, BFD %+v", p.Spec.PeerPort, *p.Spec.BFD)
		}
	})
}
