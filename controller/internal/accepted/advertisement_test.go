package accepted

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

func pool(name string, labels map[string]string, addrs ...string) v1alpha1.IPAddressPool {
	p := v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(a))
	}
	return p
}

func peer(name string, myASN, peerASN uint32) v1alpha1.BGPPeer {
	return v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: v1alpha1.BGPPeerSpec{MyASN: myASN, PeerASN: peerASN, PeerAddress: "192.0.2.1"}}
}

// badSelector parses as far as the API server is concerned, not as a label selector.
var badSelector = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "not a label value"}}}

// want is what a test expects of a condition: status, reason and text in the message.
type want struct {
	status   metav1.ConditionStatus
	reason   string
	contains []string
}

func check(t *testing.T, c metav1.Condition, w want, generation int64) {
	t.Helper()
	if c.Type != v1alpha1.ConditionAccepted || c.Status != w.status || c.Reason != w.reason || c.ObservedGeneration != generation {
		t.Errorf("condition %s %s/%s (generation %d): %s; want %s/%s (generation %d)", c.Type, c.Status, c.Reason, c.ObservedGeneration, c.Message, w.status, w.reason, generation)
	}
	for _, s := range w.contains {
		if !strings.Contains(c.Message, s) {
			t.Errorf("message %q does not say %q", c.Message, s)
		}
	}
}

func TestL2(t *testing.T) {
	pools := []v1alpha1.IPAddressPool{pool("web", nil, "192.0.2.0/28")}
	for _, tc := range []struct {
		name string
		spec v1alpha1.L2AdvertisementSpec
		want want
	}{
		{"every pool", v1alpha1.L2AdvertisementSpec{}, want{metav1.ConditionTrue, ReasonAccepted, nil}},
		{"a pool that exists", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"web"}}, want{metav1.ConditionTrue, ReasonAccepted, nil}},
		{"pools that do not exist", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"web", "gone", "db"}},
			want{metav1.ConditionFalse, ReasonPoolNotFound, []string{"IPAddressPool db and gone named in ipAddressPools does not exist"}}},
		{"a bad node selector", v1alpha1.L2AdvertisementSpec{NodeSelectors: badSelector},
			want{metav1.ConditionFalse, ReasonInvalidSelector, []string{"nodeSelectors[0]", "the speakers ignore this advertisement"}}},
		{"a bad selector comes before a missing pool, both told", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"gone"}, ServiceSelectors: badSelector},
			want{metav1.ConditionFalse, ReasonInvalidSelector, []string{"serviceSelectors[0]", "IPAddressPool gone"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "ad", Generation: 3}, Spec: tc.spec}
			check(t, L2(ad, pools), tc.want, 3)
		})
	}
}

func TestBGP(t *testing.T) {
	i32 := func(v int32) *int32 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	pools := []v1alpha1.IPAddressPool{
		pool("web", map[string]string{"tier": "edge"}, "203.0.113.0/28", "2001:db8::/120"),
		pool("wide", nil, "198.51.100.0/24"),
		pool("range", nil, "192.0.2.10-192.0.2.20"),
	}
	peers := []v1alpha1.BGPPeer{peer("ibgp", 64512, 64512), peer("tor-a", 64512, 64513), peer("tor-b", 64512, 64514)}
	for _, tc := range []struct {
		name string
		spec v1alpha1.BGPAdvertisementSpec
		want want
	}{
		{"everything, host routes", v1alpha1.BGPAdvertisementSpec{}, want{metav1.ConditionTrue, ReasonAccepted, nil}},
		{"aggregation the pools allow", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"web", "wide"}, AggregationLength: i32(28), AggregationLengthV6: i32(120)},
			want{metav1.ConditionTrue, ReasonAccepted, nil}},
		{"aggregation wider than a CIDR pool", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"web", "wide"}, AggregationLength: i32(24)},
			want{metav1.ConditionFalse, ReasonAggregationTooWide, []string{"aggregationLength 24 is shorter than the /28 pool web allows", "outside 203.0.113.0/28", "none of its IPv4 addresses"}}},
		{"IPv6 aggregation wider than the pool", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"web"}, AggregationLengthV6: i32(64)},
			want{metav1.ConditionFalse, ReasonAggregationTooWide, []string{"aggregationLengthV6 64 is shorter than the /120 pool web allows", "IPv6"}}},
		{"aggregation wider than a from-to range", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"range"}, AggregationLength: i32(30)},
			want{metav1.ConditionFalse, ReasonAggregationTooWide, []string{"the /32 pool range allows", "192.0.2.10-192.0.2.20"}}},
		{"every pool: each is checked", v1alpha1.BGPAdvertisementSpec{AggregationLength: i32(26)},
			want{metav1.ConditionFalse, ReasonAggregationTooWide, []string{"pool web", "pool range"}}},
		{"pools selected by label are checked", v1alpha1.BGPAdvertisementSpec{
			IPAddressPoolSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "edge"}}}, AggregationLength: i32(24)},
			want{metav1.ConditionFalse, ReasonAggregationTooWide, []string{"pool web"}}},
		{"aggregation 0 is host routes", v1alpha1.BGPAdvertisementSpec{AggregationLength: i32(0)}, want{metav1.ConditionTrue, ReasonAccepted, nil}},
		{"a pool that does not exist", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"gone"}},
			want{metav1.ConditionFalse, ReasonPoolNotFound, []string{"IPAddressPool gone"}}},
		{"a peer that does not exist", v1alpha1.BGPAdvertisementSpec{Peers: []string{"ibgp", "spine"}},
			want{metav1.ConditionFalse, ReasonPeerNotFound, []string{"BGPPeer spine named in peers does not exist"}}},
		{"localPref to iBGP only", v1alpha1.BGPAdvertisementSpec{Peers: []string{"ibgp"}, LocalPref: u32(200)}, want{metav1.ConditionTrue, ReasonAccepted, nil}},
		{"localPref with every peer: the eBGP ones are named", v1alpha1.BGPAdvertisementSpec{LocalPref: u32(200)},
			want{metav1.ConditionFalse, ReasonLocalPrefOnEBGP, []string{"localPref 200 is not sent to the eBGP peer(s) tor-a and tor-b", "still get the addresses"}}},
		{"localPref to a named eBGP peer", v1alpha1.BGPAdvertisementSpec{Peers: []string{"ibgp", "tor-b"}, LocalPref: u32(50)},
			want{metav1.ConditionFalse, ReasonLocalPrefOnEBGP, []string{"peer(s) tor-b ("}}},
		{"a bad selector", v1alpha1.BGPAdvertisementSpec{IPAddressPoolSelectors: badSelector},
			want{metav1.ConditionFalse, ReasonInvalidSelector, []string{"ipAddressPoolSelectors[0]", "ignore"}}},
		{"precedence: selector, pool, peer, aggregation, localPref; all told", v1alpha1.BGPAdvertisementSpec{
			IPAddressPools: []string{"web", "gone"}, Peers: []string{"spine", "tor-a"}, AggregationLength: i32(24), LocalPref: u32(1), NodeSelectors: badSelector},
			want{metav1.ConditionFalse, ReasonInvalidSelector, []string{"nodeSelectors[0]", "IPAddressPool gone", "BGPPeer spine", "pool web allows", "tor-a"}}},
		{"precedence without the selector", v1alpha1.BGPAdvertisementSpec{
			Peers: []string{"spine", "tor-a"}, AggregationLength: i32(24), LocalPref: u32(1)},
			want{metav1.ConditionFalse, ReasonPeerNotFound, []string{"BGPPeer spine", "pool web allows", "tor-a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ad := &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "ad", Generation: 2}, Spec: tc.spec}
			check(t, BGP(ad, pools, peers), tc.want, 2)
		})
	}
}
