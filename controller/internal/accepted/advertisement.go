package accepted

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/iprange"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/internal/poolset"
)

// selectorField is one list of label selectors of an object, by its field name.
type selectorField struct {
	name string
	sels []metav1.LabelSelector
}

// L2 is the Accepted condition of an L2Advertisement, given every pool.
func L2(ad *v1alpha1.L2Advertisement, pools []v1alpha1.IPAddressPool) metav1.Condition {
	var v verdict
	s := &ad.Spec
	checkSelectors(&v, "advertisement", selectorField{"ipAddressPoolSelectors", s.IPAddressPoolSelectors},
		selectorField{"serviceSelectors", s.ServiceSelectors}, selectorField{"nodeSelectors", s.NodeSelectors})
	checkPoolsExist(&v, s.IPAddressPools, pools)
	return v.condition(ad.Generation, "the speakers use this advertisement as written")
}

// BGP is the Accepted condition of a BGPAdvertisement, given every pool and peer.
func BGP(ad *v1alpha1.BGPAdvertisement, pools []v1alpha1.IPAddressPool, peers []v1alpha1.BGPPeer) metav1.Condition {
	var v verdict
	s := &ad.Spec
	checkSelectors(&v, "advertisement", selectorField{"ipAddressPoolSelectors", s.IPAddressPoolSelectors},
		selectorField{"serviceSelectors", s.ServiceSelectors}, selectorField{"nodeSelectors", s.NodeSelectors})
	checkPoolsExist(&v, s.IPAddressPools, pools)
	checkPeersExist(&v, s.Peers, peers)
	checkAggregation(&v, s, pools)
	checkLocalPref(&v, s, peers)
	return v.condition(ad.Generation, "the speakers use this advertisement as written")
}

// checkSelectors reports the selectors that do not parse: the planner then skips the
// whole object.
func checkSelectors(v *verdict, what string, fields ...selectorField) {
	var bad []string
	for _, f := range fields {
		for i := range f.sels {
			if _, err := metav1.LabelSelectorAsSelector(&f.sels[i]); err != nil {
				bad = append(bad, fmt.Sprintf("%s[%d]: %v", f.name, i, err))
			}
		}
	}
	if len(bad) > 0 {
		v.add(ReasonInvalidSelector, fmt.Sprintf("%s; the speakers ignore this %s", strings.Join(bad, "; "), what))
	}
}

func checkPoolsExist(v *verdict, names []string, pools []v1alpha1.IPAddressPool) {
	var missing []string
	for _, n := range names {
		if !slices.ContainsFunc(pools, func(p v1alpha1.IPAddressPool) bool { return p.Name == n }) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		v.add(ReasonPoolNotFound, fmt.Sprintf("IPAddressPool %s named in ipAddressPools does not exist", list(missing)))
	}
}

func checkPeersExist(v *verdict, names []string, peers []v1alpha1.BGPPeer) {
	var missing []string
	for _, n := range names {
		if !slices.ContainsFunc(peers, func(p v1alpha1.BGPPeer) bool { return p.Name == n }) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		v.add(ReasonPeerNotFound, fmt.Sprintf("BGPPeer %s named in peers does not exist", list(missing)))
	}
}

// checkAggregation reports each selected pool and family whose aggregate would reach
// outside the pool: the planner announces none of those addresses for this advertisement.
func checkAggregation(v *verdict, s *v1alpha1.BGPAdvertisementSpec, pools []v1alpha1.IPAddressPool) {
	snap := poolset.Build(pools)
	for _, name := range selectedPools(s, pools) {
		p := snap.Pool(name)
		for _, f := range []struct {
			field  string
			length *int32
			fam    iprange.Family
		}{{"aggregationLength", s.AggregationLength, iprange.IPv4}, {"aggregationLengthV6", s.AggregationLengthV6, iprange.IPv6}} {
			if f.length == nil {
				continue
			}
			bits := int(*f.length)
			if shortest, tooWide := planner.AggregationTooWide(p.Declared, f.fam, bits); tooWide {
				v.add(ReasonAggregationTooWide, fmt.Sprintf("%s %d is shorter than the /%d pool %s allows (a /%d would reach outside %s): this advertisement announces none of its %s addresses",
					f.field, bits, shortest, name, bits, describeRanges(p.Declared, f.fam), f.fam))
			}
		}
	}
}

// selectedPools are the pools an advertisement selects that exist, sorted: those it names
// and those its selectors match (both empty: every pool), as the planner selects them.
func selectedPools(s *v1alpha1.BGPAdvertisementSpec, pools []v1alpha1.IPAddressPool) []string {
	all := len(s.IPAddressPools) == 0 && len(s.IPAddressPoolSelectors) == 0
	sels, err := poolset.Selectors(s.IPAddressPoolSelectors)
	if err != nil {
		sels = nil // the advertisement is ignored; still check the pools it names
	}
	var out []string
	for _, p := range pools {
		if all || slices.Contains(s.IPAddressPools, p.Name) || slices.ContainsFunc(sels, func(sel labels.Selector) bool { return sel.Matches(labels.Set(p.Labels)) }) {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

func describeRanges(rs []iprange.Range, fam iprange.Family) string {
	var parts []string
	for _, r := range rs {
		if r.Family() == fam {
			parts = append(parts, r.String())
		}
	}
	return strings.Join(parts, ", ")
}

// checkLocalPref reports the eBGP peers the advertisement targets: GoBGP sends LOCAL_PREF
// on iBGP sessions only, so they get the addresses without it.
func checkLocalPref(v *verdict, s *v1alpha1.BGPAdvertisementSpec, peers []v1alpha1.BGPPeer) {
	if s.LocalPref == nil {
		return
	}
	var ebgp []string
	for _, p := range peers {
		targeted := len(s.Peers) == 0 || slices.Contains(s.Peers, p.Name)
		if targeted && p.Spec.MyASN != p.Spec.PeerASN {
			ebgp = append(ebgp, p.Name)
		}
	}
	if len(ebgp) > 0 {
		slices.Sort(ebgp)
		v.add(ReasonLocalPrefOnEBGP, fmt.Sprintf("localPref %d is not sent to the eBGP peer(s) %s (LOCAL_PREF is for iBGP, where myASN equals peerASN): they still get the addresses, without it",
			*s.LocalPref, list(ebgp)))
	}
}
