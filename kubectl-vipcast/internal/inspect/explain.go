package inspect

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/iprange"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/internal/poolset"
)

// Explanation is the chain for one Service, each step in words.
type Explanation struct {
	Service string `json:"service"`
	// Handled says whether vipcast allocates for the Service; Why says why not, or how.
	Handled bool   `json:"handled"`
	Why     string `json:"why"`
	// Allocation is the IPAllocated condition in words ("" when there is none yet).
	Allocation string `json:"allocation,omitempty"`
	// Allocated is the condition's status: true when the Service holds what it asked for.
	Allocated bool          `json:"allocated"`
	Pools     []PoolVerdict `json:"pools,omitempty"`
	Addresses []AddrVerdict `json:"addresses,omitempty"`
	// Announced is the Announced condition in words.
	Announced string `json:"announced,omitempty"`
}

// PoolVerdict is one pool as the allocator would weigh it for this Service.
type PoolVerdict struct {
	Pool    string `json:"pool"`
	Verdict string `json:"verdict"`
}

// AddrVerdict is who announces one address, and how, or the planner's reason why nobody does.
type AddrVerdict struct {
	Address string `json:"address"`
	// Owner is the node the plan gives the address over layer 2 ("" for none).
	Owner      string   `json:"owner,omitempty"`
	Interfaces []string `json:"interfaces,omitempty"`
	// Reason is the planner's reason when nobody announces it over layer 2.
	Reason string `json:"reason,omitempty"`
	// BGP lists the nodes that announce it over BGP (and to which peers).
	BGP []string `json:"bgp,omitempty"`
	// Reported is what the speakers report doing with it: node → how.
	Reported map[string]string `json:"reported,omitempty"`
	// Words is all of it in a sentence.
	Words string `json:"words"`
}

// ErrNotFound says the Service or node named does not exist.
var ErrNotFound = fmt.Errorf("not found")

// Explain explains the Service ns/name.
func Explain(c *Cluster, ns, name string) (*Explanation, error) {
	svc := c.service(ns, name)
	if svc == nil {
		return nil, fmt.Errorf("service %s/%s: %w", ns, name, ErrNotFound)
	}
	e := &Explanation{Service: ns + "/" + name}
	e.Handled, e.Why = handled(svc, c.LBClass)
	if !e.Handled {
		return e, nil
	}
	if cond := condition(svc.Status.Conditions, v1alpha1.ConditionIPAllocated); cond != nil {
		e.Allocated = cond.Status == "True"
		e.Allocation = fmt.Sprintf("%s, %s: %s", cond.Status, cond.Reason, cond.Message)
		if advice := allocationAdvice[cond.Reason]; advice != "" {
			e.Allocation += " — " + advice
		}
	} else {
		e.Allocation = "no IPAllocated condition yet: the controller has not handled the Service (is it running, and with this --lb-class?)"
	}
	snap := poolset.Build(c.Pools)
	held := ingress(svc)
	e.Pools = poolVerdicts(snap, svc, c.namespaceLabels(ns), held)
	members, links := c.Members()
	in := c.objects(members, links).Input()
	key := ns + "/" + name
	decisions := map[netip.Addr]planner.Decision{}
	for _, d := range planner.L2(in) {
		decisions[d.Addr] = d
	}
	bgp := map[netip.Addr][]string{}
	for node := range members {
		for _, r := range planner.BGPFor(in, node) {
			if !slices.Contains(r.Services, key) {
				continue
			}
			for _, a := range r.Addrs {
				bgp[a] = append(bgp[a], fmt.Sprintf("%s as %s to %s", node, r.Prefix, strings.Join(r.Peers, ", ")))
			}
		}
	}
	reported := c.reported()
	for _, a := range held {
		v := AddrVerdict{Address: a.String(), Reported: reported[a]}
		if d, ok := decisions[a]; ok {
			v.Owner, v.Interfaces, v.Reason = d.Owner, d.Interfaces, string(d.Reason)
		}
		v.BGP = bgp[a]
		slices.Sort(v.BGP)
		v.Words = addrWords(v, len(members))
		e.Addresses = append(e.Addresses, v)
	}
	if cond := condition(svc.Status.Conditions, v1alpha1.ConditionAnnounced); cond != nil {
		e.Announced = fmt.Sprintf("%s, %s: %s", cond.Status, cond.Reason, cond.Message)
	}
	return e, nil
}

// handled says whether vipcast allocates for the Service, in words.
func handled(svc *corev1.Service, class string) (bool, string) {
	switch {
	case svc.Spec.Type != corev1.ServiceTypeLoadBalancer:
		return false, fmt.Sprintf("not handled: type %s, vipcast handles type LoadBalancer only", svc.Spec.Type)
	case svc.Spec.LoadBalancerClass == nil && class == "":
		return true, "handled: type LoadBalancer without loadBalancerClass"
	case svc.Spec.LoadBalancerClass == nil:
		return false, fmt.Sprintf("not handled: no loadBalancerClass, and vipcast handles class %s only (--lb-class)", class)
	case *svc.Spec.LoadBalancerClass == class:
		return true, "handled: loadBalancerClass " + class
	default:
		return false, fmt.Sprintf("not handled: loadBalancerClass %s belongs to another load balancer", *svc.Spec.LoadBalancerClass)
	}
}

// poolVerdicts weighs every pool for the Service in the allocator's order.
func poolVerdicts(snap *poolset.Snapshot, svc *corev1.Service, nsLabels map[string]string, held []netip.Addr) []PoolVerdict {
	named, _, _ := v1alpha1.Annotation(svc.Annotations, v1alpha1.AnnotationAddressPool)
	named = strings.TrimSpace(named)
	requested, _, _ := v1alpha1.Annotation(svc.Annotations, v1alpha1.AnnotationLoadBalancerIPs)
	var out []PoolVerdict
	if named != "" && snap.Pool(named) == nil {
		out = append(out, PoolVerdict{Pool: named, Verdict: "named by the Service, but there is no IPAddressPool of that name"})
	}
	seen := map[string]bool{}
	for _, p := range snap.Ordered() {
		seen[p.Name] = true
		out = append(out, PoolVerdict{Pool: p.Name, Verdict: poolVerdict(p, svc, nsLabels, held, named, requested)})
	}
	for _, name := range snap.Names() { // those the allocator does not try at all
		if !seen[name] {
			out = append(out, PoolVerdict{Pool: name, Verdict: poolVerdict(snap.Pool(name), svc, nsLabels, held, named, requested)})
		}
	}
	return out
}

func poolVerdict(p *poolset.Pool, svc *corev1.Service, nsLabels map[string]string, held []netip.Addr, named, requested string) string {
	var holds []string
	for _, a := range held {
		for _, r := range p.Declared {
			if r.Contains(a) {
				holds = append(holds, a.String())
				break
			}
		}
	}
	if len(holds) > 0 {
		return "holds " + strings.Join(holds, ", ") + " for it"
	}
	switch {
	case p.Err != nil:
		return "unusable: " + p.Err.Error()
	case p.Terminating:
		return "being deleted: hands out nothing new"
	case named != "" && named != p.Name:
		return "not considered: the Service names pool " + named
	case !p.Serves(svc.Namespace, nsLabels, svc.Labels):
		return "refused: its serviceAllocation " + p.Allocation.Describe()
	case named == "" && requested == "" && !p.AutoAssign:
		return "not considered: autoAssign is false and the Service neither names it nor asks for one of its addresses"
	}
	var fams []string
	for _, f := range p.Families() {
		fams = append(fams, familyName(f))
	}
	if len(fams) == 0 {
		return "has no address to hand out (all of it overlaps other pools)"
	}
	return "could serve it (" + strings.Join(fams, " and ") + "); see the allocation above for why it holds nothing from here"
}

func familyName(f iprange.Family) string {
	if f == iprange.IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// allocationAdvice says what to look at for each reason of the IPAllocated condition.
var allocationAdvice = map[string]string{
	"PoolExhausted":          "every pool that may serve it is full: grow a pool, add one, or free an address",
	"NoMatchingPool":         "no pool may serve it: see each pool below (the pool it names, autoAssign, serviceAllocation, families)",
	"RequestedIPUnavailable": "the address it asks for is held by another Service (named in the message) or lies outside every pool",
	"SharingConflict":        "Services with its sharing key already use a port it needs, or (Local) select other pods",
	"SharingNotAllowed":      "the shared address belongs to another namespace: both Services need vipcast.io/allow-shared-ip-namespaces naming each other's",
	"InvalidAnnotation":      "an annotation does not parse: fix it (the Service keeps what it had)",
	"NotAllowedByPool":       "the pool's serviceAllocation does not admit it: it keeps the address it had, but would not get it now",
	"OutsidePool":            "no pool holds the address any more: it is kept, and a pool that holds it again takes it back",
}

// reasonWords says a planner reason in words.
var reasonWords = map[string]string{
	string(planner.NoAdvertisement):  "no L2Advertisement or BGPAdvertisement selects the address's pool and the Service",
	string(planner.NoEligibleNode):   "advertisements select it, but no node with a Ready speaker may announce it (node selectors, excluded or unavailable nodes)",
	string(planner.NoLocalEndpoints): "externalTrafficPolicy is Local and no node with a Ready speaker has a ready endpoint of the Service",
	string(planner.NoInterface):      "nodes may announce it, but none has an interface to answer on (the advertisement's interfaces are missing or excluded there, or no interface holds the address's prefix)",
}

// ReasonWords is the sentence for a planner reason.
func ReasonWords(r string) string {
	if w, ok := reasonWords[r]; ok {
		return w
	}
	return r
}

func addrWords(v AddrVerdict, members int) string {
	var parts []string
	switch {
	case v.Owner != "":
		how := "on the interface holding the node's address"
		if len(v.Interfaces) > 0 {
			how = "on " + strings.Join(v.Interfaces, ", ")
		}
		parts = append(parts, fmt.Sprintf("announced over L2 (ARP/NDP) by %s %s", v.Owner, how))
	case v.Reason != "" && len(v.BGP) == 0:
		parts = append(parts, fmt.Sprintf("not announced over L2: %s (%s)", ReasonWords(v.Reason), v.Reason))
	}
	if len(v.BGP) > 0 {
		parts = append(parts, "announced over BGP by "+strings.Join(v.BGP, "; "))
	}
	if members == 0 {
		parts = append(parts, "no speaker reports Ready, so the plan has no node to give it")
	}
	if len(v.Reported) > 0 {
		var rep []string
		for _, n := range sortedKeys(v.Reported) {
			rep = append(rep, n+" ("+v.Reported[n]+")")
		}
		parts = append(parts, "reported by "+strings.Join(rep, ", "))
	} else {
		parts = append(parts, "no speaker reports announcing it")
	}
	return strings.Join(parts, "; ")
}
