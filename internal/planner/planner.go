package planner

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
	"k8s.io/apimachinery/pkg/labels"
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
}

// Node is what the planner needs of a Node.
type Node struct {
	Name   string
	Labels map[string]string
	// NetworkUnavailable is the node's NetworkUnavailable condition being True.
	NetworkUnavailable bool
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
	// owner; OnNodeInterface means the interface holding the node's address (an
	// advertisement without interfaces).
	Interfaces      []string
	OnNodeInterface bool
}

// L2 decides the owner of every address that some Service holds, sorted by address.
func L2(in Input) []Decision {
	byAddr := map[netip.Addr][]*Service{}
	pools := map[netip.Addr][]string{}
	for i := range in.Services {
		s := &in.Services[i]
		for _, ip := range s.IPs {
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
	case len(common) == 0:
		// The Services disagree (different advertisements or endpoints): announce from a node
		// that serves some of them rather than from none.
		common = union
	}
	d.Owner = winner(common, addr)
	for _, s := range svcs {
		for _, ad := range matching(in, pools, s) {
			if nodeSelected(in.Nodes[d.Owner], ad) {
				d.Interfaces = append(d.Interfaces, ad.Interfaces...)
				d.OnNodeInterface = d.OnNodeInterface || len(ad.Interfaces) == 0
			}
		}
	}
	slices.Sort(d.Interfaces)
	d.Interfaces = slices.Compact(d.Interfaces)
	return d
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

// winner ranks the nodes by rendezvous hashing of (node, address); the highest score wins,
// ties (never seen in practice) by name.
func winner(nodes map[string]bool, addr netip.Addr) string {
	a := addr.String()
	best, bestScore := "", uint64(0)
	for n := range nodes {
		s := score(n, a)
		if best == "" || s > bestScore || (s == bestScore && strings.Compare(n, best) < 0) {
			best, bestScore = n, s
		}
	}
	return best
}

// score is the rendezvous weight of node for an address.
func score(node, addr string) uint64 {
	h := xxhash.New()
	_, _ = h.WriteString(node)
	_, _ = h.Write([]byte{0})
	_, _ = h.WriteString(addr)
	return h.Sum64()
}
