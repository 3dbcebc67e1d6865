package planner

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/iprange"
	"github.com/vipcast/vipcast/internal/poolset"
)

// Objects are the API objects a plan is made from, as a speaker or the controller reads
// them.
type Objects struct {
	Services []corev1.Service
	Slices   []discoveryv1.EndpointSlice
	Nodes    []corev1.Node
	Pools    []v1alpha1.IPAddressPool
	L2       []v1alpha1.L2Advertisement
	BGP      []v1alpha1.BGPAdvertisement
	Peers    []v1alpha1.BGPPeer
	// LBClass is the loadBalancerClass handled ("" for Services without one).
	LBClass string
	// Members are the live speakers' nodes.
	Members map[string]bool
	// Links are the interfaces each member can answer on (see Input.Links).
	Links map[string][]Link
	// BadAdvertisement hears of an advertisement or peer skipped for a selector that does not
	// parse.
	BadAdvertisement func(name string, err error)
}

// Input turns the objects into the planner's plain values.
func (w Objects) Input() Input {
	in, snap := w.Base()
	bySvc := slicesByService(w.Slices)
	for i := range w.Services {
		s := &w.Services[i]
		if ps, ok := ServiceOf(s, w.LBClass, bySvc[s.Namespace+"/"+s.Name], snap); ok {
			in.Services = append(in.Services, ps)
		}
	}
	return in
}

// Base is Input without the Services, and the pools' snapshot to place their addresses
// with (ServiceOf).
func (w Objects) Base() (Input, *poolset.Snapshot) {
	in := Input{Members: w.Members, Links: w.Links, Nodes: map[string]Node{}, PoolLabels: map[string]map[string]string{},
		PoolRanges: map[string][]iprange.Range{}}
	for i := range w.Nodes {
		in.Nodes[w.Nodes[i].Name] = nodeOf(&w.Nodes[i])
	}
	snap := poolset.Build(w.Pools)
	for _, p := range w.Pools {
		in.PoolLabels[p.Name] = p.Labels
		in.PoolRanges[p.Name] = snap.Pool(p.Name).Declared
	}
	bad := func(name string, err error) {
		if w.BadAdvertisement != nil {
			w.BadAdvertisement(name, err)
		}
	}
	for _, ad := range w.L2 {
		if c, err := compileL2(ad); err != nil {
			bad(ad.Name, err)
		} else {
			in.L2 = append(in.L2, c)
		}
	}
	for _, ad := range w.BGP {
		if c, err := compileBGP(ad); err != nil {
			bad(ad.Name, err)
		} else {
			in.BGP = append(in.BGP, c)
		}
	}
	for _, p := range w.Peers {
		if sels, err := poolset.Selectors(p.Spec.NodeSelectors); err != nil {
			bad(p.Name, err)
		} else {
			in.Peers = append(in.Peers, Peer{Name: p.Name, NodeSelectors: sels})
		}
	}
	return in, snap
}

// ServiceOf is what the planner needs of a Service, given its EndpointSlices and the pools'
// snapshot; false when vipcast does not handle it or it holds no address.
func ServiceOf(s *corev1.Service, class string, slices []*discoveryv1.EndpointSlice, snap *poolset.Snapshot) (Service, bool) {
	if !Handled(s, class) {
		return Service{}, false
	}
	ps := Service{Key: s.Namespace + "/" + s.Name, Labels: s.Labels,
		Local: s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal}
	if ps.Local {
		ps.EndpointNodes = endpointNodes(slices, s.Spec.PublishNotReadyAddresses)
	}
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			ps.IPs = append(ps.IPs, IP{Addr: a, Pools: snap.DeclaringPools(a)})
		}
	}
	return ps, len(ps.IPs) > 0
}

// ServiceKey is the namespace/name of the Service an EndpointSlice belongs to ("" for none).
func ServiceKey(sl *discoveryv1.EndpointSlice) string {
	if name := sl.Labels[discoveryv1.LabelServiceName]; name != "" {
		return sl.Namespace + "/" + name
	}
	return ""
}

// slicesByService groups EndpointSlices by their Service's namespace/name.
func slicesByService(all []discoveryv1.EndpointSlice) map[string][]*discoveryv1.EndpointSlice {
	out := map[string][]*discoveryv1.EndpointSlice{}
	for i := range all {
		if key := ServiceKey(&all[i]); key != "" {
			out[key] = append(out[key], &all[i])
		}
	}
	return out
}

// nodeOf is what the planner needs of a Node.
func nodeOf(n *corev1.Node) Node {
	pn := Node{Name: n.Name, Labels: n.Labels}
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP {
			pn.Addresses = append(pn.Addresses, ip)
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			pn.NetworkUnavailable = true
		}
	}
	return pn
}

// Handled tells whether vipcast handles a Service: a LoadBalancer of the given class.
func Handled(s *corev1.Service, class string) bool {
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if s.Spec.LoadBalancerClass == nil {
		return class == ""
	}
	return *s.Spec.LoadBalancerClass == class
}

// endpointNodes are the nodes with a ready endpoint in the slices (with anyState, every node
// with an endpoint: the Service publishes not-ready addresses).
func endpointNodes(slices []*discoveryv1.EndpointSlice, anyState bool) map[string]bool {
	out := map[string]bool{}
	for _, sl := range slices {
		for _, e := range sl.Endpoints {
			if e.NodeName == nil || (!anyState && e.Conditions.Ready != nil && !*e.Conditions.Ready) {
				continue
			}
			out[*e.NodeName] = true
		}
	}
	return out
}

// selectors compiles an advertisement's pool, Service and node selectors; the first bad one
// is the error.
func selectors(pools, services, nodes []metav1.LabelSelector) (p, s, n []labels.Selector, err error) {
	if p, err = poolset.Selectors(pools); err != nil {
		return nil, nil, nil, err
	}
	if s, err = poolset.Selectors(services); err != nil {
		return nil, nil, nil, err
	}
	if n, err = poolset.Selectors(nodes); err != nil {
		return nil, nil, nil, err
	}
	return p, s, n, nil
}

func compileL2(ad v1alpha1.L2Advertisement) (L2Advertisement, error) {
	c := L2Advertisement{Name: ad.Name, Pools: ad.Spec.IPAddressPools}
	var err error
	if c.PoolSelectors, c.ServiceSelectors, c.NodeSelectors, err = selectors(ad.Spec.IPAddressPoolSelectors, ad.Spec.ServiceSelectors, ad.Spec.NodeSelectors); err != nil {
		return c, err
	}
	for _, i := range ad.Spec.Interfaces {
		c.Interfaces = append(c.Interfaces, string(i))
	}
	return c, nil
}

func compileBGP(ad v1alpha1.BGPAdvertisement) (BGPAdvertisement, error) {
	c := BGPAdvertisement{Name: ad.Name, Pools: ad.Spec.IPAddressPools, Peers: ad.Spec.Peers, LocalPref: ad.Spec.LocalPref}
	var err error
	if c.PoolSelectors, c.ServiceSelectors, c.NodeSelectors, err = selectors(ad.Spec.IPAddressPoolSelectors, ad.Spec.ServiceSelectors, ad.Spec.NodeSelectors); err != nil {
		return c, err
	}
	if ad.Spec.AggregationLength != nil {
		c.AggregationLength = int(*ad.Spec.AggregationLength)
	}
	if ad.Spec.AggregationLengthV6 != nil {
		c.AggregationLengthV6 = int(*ad.Spec.AggregationLengthV6)
	}
	for _, cm := range ad.Spec.Communities {
		c.Communities = append(c.Communities, string(cm))
	}
	return c, nil
}
