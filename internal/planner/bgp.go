package planner

import (
	"maps"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// BGPAdvertisement is the compiled form of a BGPAdvertisement.
type BGPAdvertisement struct {
	Name             string
	Pools            []string
	PoolSelectors    []labels.Selector
	ServiceSelectors []labels.Selector
	NodeSelectors    []labels.Selector
	// Peers names the BGPPeers to announce to; empty: all.
	Peers []string
	// AggregationLength(V6) is the announced prefix length; 0 means host routes.
	AggregationLength, AggregationLengthV6 int
	LocalPref                              *uint32
	Communities                            []string
}

// Peer is what the planner needs of a BGPPeer: its name and which nodes peer with it.
type Peer struct {
	Name          string
	NodeSelectors []labels.Selector
}

// Route is one prefix a node announces over BGP, with its path attributes.
type Route struct {
	Prefix netip.Prefix
	// Peers the route goes to, sorted.
	Peers []string
	// Communities, sorted and unique, from every advertisement behind the route.
	Communities []string
	// LocalPref is the highest asked for (nil: none).
	LocalPref *uint32
	// Services behind the route, sorted.
	Services []string
	// Addrs are the Service addresses the prefix covers, sorted.
	Addrs []netip.Addr
}

// PeersFor names the BGPPeers a node peers with, sorted.
func PeersFor(in Input, node string) []string {
	var out []string
	for _, p := range in.Peers {
		if anyMatches(p.NodeSelectors, in.Nodes[node].Labels) {
			out = append(out, p.Name)
		}
	}
	slices.Sort(out)
	return out
}

// BGPFor lists the routes node announces, sorted by prefix. An address is announced when a
// BGP advertisement selects it and its Service, the advertisement's node selectors take the
// node, and the node may announce the Service at all (known, network available, not excluded,
// for Local a ready endpoint here): every such node announces, and the router spreads the
// traffic over them. Addresses are aggregated to the advertisement's lengths and sent to the
// peers it names (all when none) that peer with this node. An advertisement whose
// aggregation length is shorter than a pool allows (the aggregate would reach outside the
// pool) announces nothing of that pool's family from that pool. Liveness is not asked: a node
// whose speaker runs is alive, and a dead one's routes go with its sessions.
func BGPFor(in Input, node string) []Route {
	peersHere := peerSet(in, node)
	byPrefix := map[netip.Prefix]*routeAcc{}
	fits := aggFits{}
	for i := range in.Services {
		s := &in.Services[i]
		for _, c := range contributions(in, node, peersHere, fits, s) {
			acc := byPrefix[c.prefix]
			if acc == nil {
				acc = newRouteAcc()
				byPrefix[c.prefix] = acc
			}
			acc.add(s.Key, c)
		}
	}
	out := make([]Route, 0, len(byPrefix))
	for _, prefix := range slices.SortedFunc(maps.Keys(byPrefix), comparePrefix) {
		out = append(out, byPrefix[prefix].route(prefix))
	}
	return out
}

// peerSet is PeersFor as a set.
func peerSet(in Input, node string) map[string]bool {
	out := map[string]bool{}
	for _, p := range PeersFor(in, node) {
		out[p] = true
	}
	return out
}

// contribution is what one address of a Service adds to a route under one advertisement.
type contribution struct {
	prefix netip.Prefix
	addr   netip.Addr
	peers  []string
	ad     *BGPAdvertisement
}

// contributions lists what Service s adds to node's routes: for each of its addresses, each
// advertisement that takes it and the node, toward the peers it names that peer here.
func contributions(in Input, node string, peersHere map[string]bool, fits aggFits, s *Service) []contribution {
	if _, ok := mayAnnounce(in, node, s); !ok {
		return nil
	}
	n := in.Nodes[node]
	var out []contribution
	for _, ip := range s.IPs {
		for j := range in.BGP {
			ad := &in.BGP[j]
			if !fits.takes(in, j, ip) || !anyMatches(ad.ServiceSelectors, s.Labels) || !anyMatches(ad.NodeSelectors, n.Labels) {
				continue
			}
			if peers := adPeers(ad, peersHere); len(peers) > 0 {
				out = append(out, contribution{prefix: aggregate(ip.Addr, ad), addr: ip.Addr, peers: peers, ad: ad})
			}
		}
	}
	return out
}

func adPeers(ad *BGPAdvertisement, here map[string]bool) []string {
	if len(ad.Peers) == 0 {
		return slices.Collect(maps.Keys(here))
	}
	var out []string
	for _, p := range ad.Peers {
		if here[p] {
			out = append(out, p)
		}
	}
	return out
}

// aggregate is the prefix an address is announced as.
func aggregate(a netip.Addr, ad *BGPAdvertisement) netip.Prefix {
	bits := a.BitLen()
	if l := ad.AggregationLength; a.Is4() && l > 0 {
		bits = l
	}
	if l := ad.AggregationLengthV6; a.Is6() && l > 0 {
		bits = l
	}
	return netip.PrefixFrom(a, bits).Masked()
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// routeAcc gathers what several addresses and advertisements contribute to one prefix.
type routeAcc struct {
	peers, communities, services map[string]bool
	addrs                        map[netip.Addr]bool
	localPref                    *uint32
}

func newRouteAcc() *routeAcc {
	return &routeAcc{peers: map[string]bool{}, communities: map[string]bool{}, services: map[string]bool{}, addrs: map[netip.Addr]bool{}}
}

func (r *routeAcc) add(svc string, c contribution) {
	ad := c.ad
	r.services[svc] = true
	r.addrs[c.addr] = true
	for _, p := range c.peers {
		r.peers[p] = true
	}
	for _, c := range ad.Communities {
		r.communities[c] = true
	}
	if ad.LocalPref != nil && (r.localPref == nil || *ad.LocalPref > *r.localPref) {
		lp := *ad.LocalPref
		r.localPref = &lp
	}
}

func (r *routeAcc) route(p netip.Prefix) Route {
	return Route{Prefix: p, Peers: slices.Sorted(maps.Keys(r.peers)), Communities: slices.Sorted(maps.Keys(r.communities)),
		LocalPref: r.localPref, Services: slices.Sorted(maps.Keys(r.services)), Addrs: slices.SortedFunc(maps.Keys(r.addrs), netip.Addr.Compare)}
}
