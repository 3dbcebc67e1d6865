package planner

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vipcast/vipcast/internal/iprange"
)

// Well-known node labels and conditions the planner honours.
const (
	// LabelExcludeFromLB keeps a node from announcing any LoadBalancer address.
	LabelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"
)

// Input is everything the planner looks at.
type Input struct {
	// Members are the nodes whose speakers are alive.
	Members map[string]bool
	// Nodes by name.
	Nodes map[string]Node
	// Services that hold LoadBalancer addresses.
	Services []Service
	// L2 are the L2Advertisements.
	L2 []L2Advertisement
	// BGP are the BGPAdvertisements, Peers the BGPPeers.
	BGP   []BGPAdvertisement
	Peers []Peer
	// PoolLabels are the labels of each pool, for pool selectors.
	PoolLabels map[string]map[string]string
	// PoolRanges are the addresses each pool declares, normalized, for BGP aggregation. A
	// pool missing here is not checked.
	PoolRanges map[string][]iprange.Range
	// Links are the interfaces each node's speaker can answer on (up, not excluded, not
	// enslaved), as the speakers publish them. A node missing here is not restricted (its
	// links are unknown); a node listed with none can announce nothing over layer 2.
	Links map[string][]Link
}

// Link is an interface a node can answer on and its on-link prefixes.
type Link struct {
	Name     string
	Prefixes []netip.Prefix
}

// holds tells whether one of the link's prefixes contains a.
func (l Link) holds(a netip.Addr) bool {
	for _, p := range l.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Node is what the planner needs of a Node.
type Node struct {
	Name   string
	Labels map[string]string
	// NetworkUnavailable is the node's NetworkUnavailable condition being True.
	NetworkUnavailable bool
	// Addresses are the node's InternalIPs.
	Addresses []netip.Addr
}

// Service is a LoadBalancer Service with addresses in its status.
type Service struct {
	// Key is namespace/name.
	Key    string
	Labels map[string]string
	IPs    []IP
	// Local is externalTrafficPolicy: Local.
	Local bool
	// EndpointNodes are the nodes with a ready endpoint of the Service (not-ready ones too
	// when the Service publishes not-ready addresses). Only read when Local.
	EndpointNodes map[string]bool
}

// IP is one address of a Service and the pools that declare it (none for an address left
// outside every pool).
type IP struct {
	Addr  netip.Addr
	Pools []string
}

// L2Advertisement is the compiled form of an L2Advertisement. Empty pool lists select every
// pool, empty selector lists everything of their kind.
type L2Advertisement struct {
	Name             string
	Pools            []string
	PoolSelectors    []labels.Selector
	ServiceSelectors []labels.Selector
	NodeSelectors    []labels.Selector
	Interfaces       []string
}

// Reason says why an address has no owner.
type Reason string

// Reasons an address is not announced.
const (
	// NoAdvertisement: no L2Advertisement selects the address and its Services.
	NoAdvertisement Reason = "NoAdvertisement"
	// NoEligibleNode: advertisements select it, but no live node may announce it.
	NoEligibleNode Reason = "NoEligibleNode"
	// NoLocalEndpoints: the Service is Local and no live, eligible node has a ready endpoint.
	NoLocalEndpoints Reason = "NoLocalEndpoints"
	// NoInterface: live nodes may announce it, but none has an interface to answer on (the
	// advertisement's interfaces are missing, down or excluded there, or no interface is on
	// a prefix holding the address or the node's address).
	NoInterface Reason = "NoInterface"
)

// Decision is the verdict for one address.
type Decision struct {
	Addr netip.Addr
	// Owner is the node that announces the address ("" when none may).
	Owner string
	// Reason says why there is no owner.
	Reason Reason
	// Services holding the address, sorted.
	Services []string
	// Interfaces the owner answers on, from the advertisements that select it and the
	// owner, resolved against the owner's links when they are known. With unknown links,
	// OnNodeInterface means the interface holding the node's address (an advertisement
	// without interfaces), for the owner to find.
	Interfaces      []string
	OnNodeInterface bool
	// partial: no node serves every Service of the address, so the owner serves only some
	// (a member joining may change that whatever it ranks).
	partial bool
}

// L2 decides the owner of every address that some Service holds, sorted by address.
func L2(in Input) []Decision {
	byAddr := map[netip.Addr][]*Service{}
	pools := map[netip.Addr][]string{}
	for i := range in.Services {
		s := &in.Services[i]
		for _, ip := range s.IPs {
			if held := byAddr[ip.Addr]; len(held) > 0 && held[len(held)-1] == s {
				continue // listed twice by the same Service
			}
			byAddr[ip.Addr] = append(byAddr[ip.Addr], s)
			pools[ip.Addr] = ip.Pools
		}
	}
	out := make([]Decision, 0, len(byAddr))
	for addr, svcs := range byAddr {
		out = append(out, decide(in, addr, pools[addr], svcs))
	}
	slices.SortFunc(out, func(a, b Decision) int { return a.Addr.Compare(b.Addr) })
	return out
}

// For returns the decisions node owns.
func For(decisions []Decision, node string) []Decision {
	var out []Decision
	for _, d := range decisions {
		if d.Owner == node {
			out = append(out, d)
		}
	}
	return out
}

func decide(in Input, addr netip.Addr, pools []string, svcs []*Service) Decision {
	d := Decision{Addr: addr}
	for _, s := range svcs {
		d.Services = append(d.Services, s.Key)
	}
	slices.Sort(d.Services)
	// Each Service's eligible nodes; a shared address goes to a node that can serve them all.
	var common map[string]bool
	var union map[string]bool
	anyAdvert, anyLocal := false, false
	for _, s := range svcs {
		ads := matching(in, pools, s)
		if len(ads) == 0 {
			continue
		}
		anyAdvert = true
		anyLocal = anyLocal || s.Local
		el := eligible(in, ads, s)
		union = merge(union, el, false)
		if common == nil {
			common = el
		} else {
			common = merge(common, el, true)
		}
	}
	switch {
	case !anyAdvert:
		d.Reason = NoAdvertisement
		return d
	case len(union) == 0:
		d.Reason = NoEligibleNode
		if anyLocal && someNodeWithoutEndpoints(in, pools, svcs) {
			d.Reason = NoLocalEndpoints
		}
		return d
	}
	// Only a node with an interface to answer on may win. The Services disagree when no node
	// serves them all (different advertisements or endpoints): then announce from a node
	// that serves some of them rather than from none.
	owner := firstCapable(in, addr, pools, svcs, common)
	if owner == "" {
		owner = firstCapable(in, addr, pools, svcs, union)
		d.partial = owner != ""
	}
	if owner == "" {
		d.Reason = NoInterface
		return d
	}
	d.Owner = owner
	d.Interfaces, d.OnNodeInterface = interfacesOn(in, d.Owner, addr, pools, svcs)
	return d
}

// firstCapable ranks the nodes by rendezvous hashing of (node, address), ties (never seen
// in practice) by name, and returns the first that has an interface to answer on for addr
// ("" when none has). Ranking first keeps the usual cost to one check per address.
func firstCapable(in Input, addr netip.Addr, pools []string, svcs []*Service, nodes map[string]bool) string {
	type ranked struct {
		name  string
		score uint64
	}
	a := addr.String()
	order := make([]ranked, 0, len(nodes))
	for n := range nodes {
		order = append(order, ranked{n, score(n, a)})
	}
	slices.SortFunc(order, func(x, y ranked) int {
		return cmp.Or(cmp.Compare(y.score, x.score), strings.Compare(x.name, y.name))
	})
	for _, r := range order {
		if ifs, onNode := interfacesOn(in, r.name, addr, pools, svcs); len(ifs) > 0 || onNode {
			return r.name
		}
	}
	return ""
}

// interfacesOn lists the interfaces node answers on for addr: those the advertisements
// selecting it name, and for an advertisement naming none, the one on a prefix holding addr,
// else the one on a prefix holding the node's address of the family. With the node's links
// unknown, the named interfaces are taken as they are and onNode asks the node to find its
// own.
func interfacesOn(in Input, node string, addr netip.Addr, pools []string, svcs []*Service) (ifs []string, onNode bool) {
	links, known := in.Links[node]
	n := in.Nodes[node]
	for _, s := range svcs {
		for _, ad := range matching(in, pools, s) {
			if !nodeSelected(n, ad) {
				continue
			}
			switch {
			case !known && len(ad.Interfaces) == 0:
				onNode = true
			case !known:
				ifs = append(ifs, ad.Interfaces...)
			case len(ad.Interfaces) == 0:
				if name := defaultLink(links, addr, n.Addresses); name != "" {
					ifs = append(ifs, name)
				}
			default:
				for _, l := range links {
					if slices.Contains(ad.Interfaces, l.Name) {
						ifs = append(ifs, l.Name)
					}
				}
			}
		}
	}
	slices.Sort(ifs)
	return slices.Compact(ifs), onNode
}

// ResolveInterfaces finishes, on the owner, a decision made without its links (the others
// read them truncated): of the interfaces named, those it has, and with onNode the link on
// a prefix holding addr, else on a prefix holding one of the node's addresses of the family.
func ResolveInterfaces(links []Link, addr netip.Addr, nodeAddrs []netip.Addr, named []string, onNode bool) []string {
	var out []string
	for _, l := range links {
		if slices.Contains(named, l.Name) {
			out = append(out, l.Name)
		}
	}
	if onNode {
		if name := defaultLink(links, addr, nodeAddrs); name != "" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// defaultLink names the link on a prefix holding addr, else the one on a prefix holding
// the node's address of addr's family ("" when neither exists).
func defaultLink(links []Link, addr netip.Addr, nodeAddrs []netip.Addr) string {
	for _, l := range links {
		if l.holds(addr) {
			return l.Name
		}
	}
	for _, a := range nodeAddrs {
		if a.Is4() != addr.Is4() {
			continue
		}
		for _, l := range links {
			if l.holds(a) {
				return l.Name
			}
		}
	}
	return ""
}

// someNodeWithoutEndpoints tells whether a node would be eligible if the Local Services had
// endpoints everywhere: then the missing endpoints are the reason.
func someNodeWithoutEndpoints(in Input, pools []string, svcs []*Service) bool {
	for _, s := range svcs {
		cluster := *s
		cluster.Local = false
		if ads := matching(in, pools, s); len(ads) > 0 && len(eligible(in, ads, &cluster)) > 0 {
			return true
		}
	}
	return false
}

// matching lists the advertisements that select the address's pools and the Service.
func matching(in Input, pools []string, s *Service) []*L2Advertisement {
	var out []*L2Advertisement
	for i := range in.L2 {
		ad := &in.L2[i]
		if selectsPool(in, ad.Pools, ad.PoolSelectors, pools) && anyMatches(ad.ServiceSelectors, s.Labels) {
			out = append(out, ad)
		}
	}
	return out
}

// selectsPool tells whether an advertisement naming names and selecting by sels takes an
// address declared by pools (both empty: every address).
func selectsPool(in Input, names []string, sels []labels.Selector, pools []string) bool {
	if len(names) == 0 && len(sels) == 0 {
		return true
	}
	for _, p := range pools {
		if slices.Contains(names, p) {
			return true
		}
		for _, sel := range sels {
			if sel.Matches(labels.Set(in.PoolLabels[p])) {
				return true
			}
		}
	}
	return false
}

// eligible lists the live nodes that may announce for s under any of ads.
func eligible(in Input, ads []*L2Advertisement, s *Service) map[string]bool {
	out := map[string]bool{}
	for name := range in.Members {
		n, ok := mayAnnounce(in, name, s)
		if !ok {
			continue
		}
		for _, ad := range ads {
			if nodeSelected(n, ad) {
				out[name] = true
				break
			}
		}
	}
	return out
}

// mayAnnounce tells whether a node may announce s at all: known, network available, not
// excluded from load balancers, and for Local holding a ready endpoint.
func mayAnnounce(in Input, name string, s *Service) (Node, bool) {
	n, known := in.Nodes[name]
	if !known || n.NetworkUnavailable {
		return n, false
	}
	if _, excluded := n.Labels[LabelExcludeFromLB]; excluded {
		return n, false
	}
	return n, !s.Local || s.EndpointNodes[name]
}

func nodeSelected(n Node, ad *L2Advertisement) bool { return anyMatches(ad.NodeSelectors, n.Labels) }

func anyMatches(sels []labels.Selector, l map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	for _, s := range sels {
		if s.Matches(labels.Set(l)) {
			return true
		}
	}
	return false
}

// merge returns the intersection (and=true) or the union of two sets.
func merge(a, b map[string]bool, and bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		if !and || b[k] {
			out[k] = true
		}
	}
	if !and {
		for k := range b {
			out[k] = true
		}
	}
	return out
}

// outranks tells whether node ranks before other for addr (firstCapable's order).
func outranks(node, other, addr string) bool {
	a, b := score(node, addr), score(other, addr)
	return a > b || (a == b && node < other)
}

// score is the rendezvous weight of node for an address.
func score(node, addr string) uint64 {
	h := xxhash.New()
	_, _ = h.WriteString(node)
	_, _ = h.Write([]byte{0})
	_, _ = h.WriteString(addr)
	return h.Sum64()
}
