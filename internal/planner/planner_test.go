package planner

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

func members(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

func nodes(names ...string) map[string]Node {
	m := map[string]Node{}
	for _, n := range names {
		m[n] = Node{Name: n, Labels: map[string]string{"kubernetes.io/hostname": n}}
	}
	return m
}

func svc(key string, addrs ...string) Service {
	s := Service{Key: key, Labels: map[string]string{"app": strings.ReplaceAll(key, "/", "-")}}
	for _, a := range addrs {
		s.IPs = append(s.IPs, IP{Addr: netip.MustParseAddr(a), Pools: []string{"default"}})
	}
	return s
}

func sel(t *testing.T, s string) labels.Selector {
	t.Helper()
	out, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manyIPs is n Services with one address each.
func manyIPs(n int) []Service {
	out := make([]Service, n)
	for i := range out {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		out[i] = svc(fmt.Sprintf("ns/s%d", i), a.String())
	}
	return out
}

func owners(ds []Decision) map[netip.Addr]string {
	m := map[netip.Addr]string{}
	for _, d := range ds {
		m[d.Addr] = d.Owner
	}
	return m
}

func TestEvenSpreadAndDeterminism(t *testing.T) {
	in := Input{Members: members("a", "b", "c"), Nodes: nodes("a", "b", "c"), Services: manyIPs(3000), L2: []L2Advertisement{{Name: "all"}}}
	first := L2(in)
	count := map[string]int{}
	for _, d := range first {
		count[d.Owner]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if count[n] < 900 || count[n] > 1100 {
			t.Errorf("node %s owns %d of 3000 addresses; want about 1000 (%v)", n, count[n], count)
		}
	}
	// Same input in another order: the same owners.
	slices.Reverse(in.Services)
	if got := owners(L2(in)); !mapsEqual(got, owners(first)) {
		t.Error("owners depend on the order of the Services")
	}
}

func TestMinimalMovement(t *testing.T) {
	base := Input{Members: members("a", "b", "c"), Nodes: nodes("a", "b", "c", "d"), Services: manyIPs(2000), L2: []L2Advertisement{{Name: "all"}}}
	before := owners(L2(base))

	left := base
	left.Members = members("a", "b")
	moved := 0
	for addr, o := range owners(L2(left)) {
		if before[addr] != "c" && o != before[addr] {
			t.Fatalf("%s moved from %s to %s when c left", addr, before[addr], o)
		}
		if before[addr] == "c" {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("c owned nothing: the check proves nothing")
	}

	joined := base
	joined.Members = members("a", "b", "c", "d")
	gained := 0
	for addr, o := range owners(L2(joined)) {
		if o != before[addr] && o != "d" {
			t.Fatalf("%s moved from %s to %s when d joined", addr, before[addr], o)
		}
		if o == "d" {
			gained++
		}
	}
	if gained < 400 || gained > 600 {
		t.Errorf("d won %d of 2000 addresses; want about 500", gained)
	}
}

func TestEligibility(t *testing.T) {
	ip := "192.0.2.240"
	all := []L2Advertisement{{Name: "all"}}
	local := func(endpointNodes ...string) Service {
		s := svc("ns/web", ip)
		s.Local, s.EndpointNodes = true, members(endpointNodes...)
		return s
	}
	withNode := func(m map[string]Node, name string, f func(*Node)) map[string]Node {
		n := m[name]
		n.Labels = map[string]string{"kubernetes.io/hostname": name}
		f(&n)
		m[name] = n
		return m
	}
	for _, tc := range []struct {
		name       string
		in         Input
		candidates []string // the owner must be one of these ("" alone: no owner)
		reason     Reason
	}{
		{"no advertisement", Input{Members: members("a"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}}, []string{""}, NoAdvertisement},
		{"only members announce", Input{Members: members("b"), Nodes: nodes("a", "b"), Services: []Service{svc("ns/web", ip)}, L2: all}, []string{"b"}, ""},
		{"no member alive", Input{Members: members(), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}, L2: all}, []string{""}, NoEligibleNode},
		{"a member without a Node object", Input{Members: members("ghost"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}, L2: all}, []string{""}, NoEligibleNode},
		{"excluded node", Input{Members: members("a", "b"), Nodes: withNode(nodes("a", "b"), "a", func(n *Node) { n.Labels[LabelExcludeFromLB] = "" }), Services: []Service{svc("ns/web", ip)}, L2: all}, []string{"b"}, ""},
		{"network unavailable", Input{Members: members("a", "b"), Nodes: withNode(nodes("a", "b"), "b", func(n *Node) { n.NetworkUnavailable = true }), Services: []Service{svc("ns/web", ip)}, L2: all}, []string{"a"}, ""},
		{"node selector", Input{Members: members("a", "b", "c"), Nodes: withNode(nodes("a", "b", "c"), "c", func(n *Node) { n.Labels["edge"] = "true" }), Services: []Service{svc("ns/web", ip)},
			L2: []L2Advertisement{{Name: "edge", NodeSelectors: []labels.Selector{sel(t, "edge=true")}}}}, []string{"c"}, ""},
		{"node selector matches nobody", Input{Members: members("a"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)},
			L2: []L2Advertisement{{Name: "edge", NodeSelectors: []labels.Selector{sel(t, "edge=true")}}}}, []string{""}, NoEligibleNode},
		{"pool named", Input{Members: members("a"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}, L2: []L2Advertisement{{Name: "p", Pools: []string{"default"}}}}, []string{"a"}, ""},
		{"other pool named", Input{Members: members("a"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}, L2: []L2Advertisement{{Name: "p", Pools: []string{"other"}}}}, []string{""}, NoAdvertisement},
		{"pool selector", Input{Members: members("a"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}, PoolLabels: map[string]map[string]string{"default": {"l2": "yes"}},
			L2: []L2Advertisement{{Name: "p", PoolSelectors: []labels.Selector{sel(t, "l2=yes")}}}}, []string{"a"}, ""},
		{"pool selector misses", Input{Members: members("a"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}, PoolLabels: map[string]map[string]string{"default": {"l2": "no"}},
			L2: []L2Advertisement{{Name: "p", PoolSelectors: []labels.Selector{sel(t, "l2=yes")}}}}, []string{""}, NoAdvertisement},
		{"address outside every pool, all-pools advertisement", Input{Members: members("a"), Nodes: nodes("a"),
			Services: []Service{{Key: "ns/web", IPs: []IP{{Addr: netip.MustParseAddr(ip)}}}}, L2: all}, []string{"a"}, ""},
		{"address outside every pool, named-pool advertisement", Input{Members: members("a"), Nodes: nodes("a"),
			Services: []Service{{Key: "ns/web", IPs: []IP{{Addr: netip.MustParseAddr(ip)}}}}, L2: []L2Advertisement{{Name: "p", Pools: []string{"default"}}}}, []string{""}, NoAdvertisement},
		{"service selector matches", Input{Members: members("a"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}, L2: []L2Advertisement{{Name: "s", ServiceSelectors: []labels.Selector{sel(t, "app=ns-web")}}}}, []string{"a"}, ""},
		{"service selector", Input{Members: members("a"), Nodes: nodes("a"), Services: []Service{svc("ns/web", ip)}, L2: []L2Advertisement{{Name: "s", ServiceSelectors: []labels.Selector{sel(t, "app=ns-db")}}}}, []string{""}, NoAdvertisement},
		{"Local: only nodes with endpoints", Input{Members: members("a", "b", "c"), Nodes: nodes("a", "b", "c"), Services: []Service{local("b")}, L2: all}, []string{"b"}, ""},
		{"Local: endpoints on two nodes", Input{Members: members("a", "b", "c"), Nodes: nodes("a", "b", "c"), Services: []Service{local("b", "c")}, L2: all}, []string{"b", "c"}, ""},
		{"Local: no endpoints", Input{Members: members("a", "b"), Nodes: nodes("a", "b"), Services: []Service{local()}, L2: all}, []string{""}, NoLocalEndpoints},
		{"Local: endpoints only on a dead node", Input{Members: members("a"), Nodes: nodes("a", "b"), Services: []Service{local("b")}, L2: all}, []string{""}, NoLocalEndpoints},
		{"Local: endpoints only on an excluded node", Input{Members: members("a", "b"), Nodes: withNode(nodes("a", "b"), "b", func(n *Node) { n.Labels[LabelExcludeFromLB] = "true" }), Services: []Service{local("b")}, L2: all}, []string{""}, NoLocalEndpoints},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := L2(tc.in)
			if len(ds) != 1 {
				t.Fatalf("%d decisions", len(ds))
			}
			d := ds[0]
			if !slices.Contains(tc.candidates, d.Owner) || d.Reason != tc.reason {
				t.Errorf("owner %q reason %q, want one of %q and reason %q", d.Owner, d.Reason, tc.candidates, tc.reason)
			}
		})
	}
}

func TestSharedAddressHasOneOwner(t *testing.T) {
	ip := "192.0.2.241"
	cluster := svc("ns/tcp", ip)
	local := svc("ns/udp", ip)
	local.Local, local.EndpointNodes = true, members("c")
	in := Input{Members: members("a", "b", "c"), Nodes: nodes("a", "b", "c"), Services: []Service{cluster, local}, L2: []L2Advertisement{{Name: "all"}}}
	ds := L2(in)
	if len(ds) != 1 {
		t.Fatalf("a shared address gave %d decisions", len(ds))
	}
	if ds[0].Owner != "c" || !slices.Equal(ds[0].Services, []string{"ns/tcp", "ns/udp"}) {
		t.Errorf("decision %+v; want owner c (the only node that serves both) for both Services", ds[0])
	}
	// Services that no single node serves entirely still get one owner.
	other := svc("ns/other", ip)
	other.Local, other.EndpointNodes = true, members("a")
	in.Services = append(in.Services, other)
	if d := L2(in)[0]; d.Owner != "a" && d.Owner != "c" {
		t.Errorf("owner %q; want a node that serves some of the Services", d.Owner)
	}
}

func TestInterfaces(t *testing.T) {
	ns := nodes("a")
	ns["a"].Labels["rack"] = "1"
	in := Input{Members: members("a"), Nodes: ns, Services: []Service{svc("ns/web", "192.0.2.242")}, L2: []L2Advertisement{
		{Name: "vlan", Interfaces: []string{"eth1", "eth2"}},
		{Name: "rack", Interfaces: []string{"eth2", "eth3"}, NodeSelectors: []labels.Selector{labels.SelectorFromSet(labels.Set{"rack": "1"})}},
		{Name: "other-rack", Interfaces: []string{"eth9"}, NodeSelectors: []labels.Selector{labels.SelectorFromSet(labels.Set{"rack": "2"})}},
	}}
	d := L2(in)[0]
	if !slices.Equal(d.Interfaces, []string{"eth1", "eth2", "eth3"}) || d.OnNodeInterface {
		t.Errorf("interfaces %v (node's own: %v); want eth1 eth2 eth3 from the advertisements that select node a", d.Interfaces, d.OnNodeInterface)
	}
	in.L2 = append(in.L2, L2Advertisement{Name: "plain"})
	if d := L2(in)[0]; !d.OnNodeInterface {
		t.Error("an advertisement without interfaces should add the node's own interface")
	}
}

func TestFor(t *testing.T) {
	in := Input{Members: members("a", "b"), Nodes: nodes("a", "b"), Services: manyIPs(50), L2: []L2Advertisement{{Name: "all"}}}
	ds := L2(in)
	a, b := For(ds, "a"), For(ds, "b")
	if len(a)+len(b) != 50 || len(a) == 0 || len(b) == 0 {
		t.Errorf("a owns %d and b %d of 50", len(a), len(b))
	}
	for _, d := range a {
		if d.Owner != "a" {
			t.Errorf("For(a) returned %+v", d)
		}
	}
}

func mapsEqual(a, b map[netip.Addr]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func BenchmarkL2TenThousandAddresses(b *testing.B) {
	in := Input{Members: members("a", "b", "c"), Nodes: nodes("a", "b", "c"), Services: manyIPs(10000), L2: []L2Advertisement{{Name: "all"}}}
	for b.Loop() {
		L2(in)
	}
}

// With the nodes' links known, only a node that can answer wins, on the interfaces it has.
func TestLinks(t *testing.T) {
	p := netip.MustParsePrefix
	lan := Link{Name: "eth0", Prefixes: []netip.Prefix{p("192.0.2.0/24"), p("2001:db8::/64")}}
	vlan := Link{Name: "vlan7", Prefixes: []netip.Prefix{p("198.51.100.0/24")}}
	v4only := Link{Name: "eth0", Prefixes: []netip.Prefix{p("192.0.2.0/24")}}
	addrs := func(n map[string]Node, ips ...string) map[string]Node {
		for name, node := range n {
			for _, ip := range ips {
				node.Addresses = append(node.Addresses, netip.MustParseAddr(ip))
			}
			n[name] = node
		}
		return n
	}
	for _, tc := range []struct {
		name   string
		links  map[string][]Link
		ads    []L2Advertisement
		addr   string
		owners []string // acceptable owners
		ifs    []string
		reason Reason
	}{
		{"the link on the address's prefix", map[string][]Link{"a": {lan, vlan}, "b": {lan, vlan}}, []L2Advertisement{{Name: "all"}}, "198.51.100.7", []string{"a", "b"}, []string{"vlan7"}, ""},
		{"IPv6 prefix on a node listing only IPv4", map[string][]Link{"a": {lan}, "b": {lan}}, []L2Advertisement{{Name: "all"}}, "2001:db8::7", []string{"a", "b"}, []string{"eth0"}, ""},
		{"no prefix: the node's own address of the family", map[string][]Link{"a": {lan}, "b": {lan}}, []L2Advertisement{{Name: "all"}}, "203.0.113.7", []string{"a", "b"}, []string{"eth0"}, ""},
		{"only one node has an interface", map[string][]Link{"a": {v4only}, "b": {}}, []L2Advertisement{{Name: "all"}}, "2001:db8::7", nil, nil, NoInterface},
		{"the excluded node loses", map[string][]Link{"a": {}, "b": {lan}}, []L2Advertisement{{Name: "all"}}, "192.0.2.7", []string{"b"}, []string{"eth0"}, ""},
		{"named interfaces present on one node", map[string][]Link{"a": {lan}, "b": {lan, vlan}}, []L2Advertisement{{Name: "vlan", Interfaces: []string{"vlan7", "vlan9"}}}, "192.0.2.7", []string{"b"}, []string{"vlan7"}, ""},
		{"named interfaces nowhere", map[string][]Link{"a": {lan}, "b": {lan}}, []L2Advertisement{{Name: "vlan", Interfaces: []string{"vlan9"}}}, "192.0.2.7", nil, nil, NoInterface},
		{"unknown links are not restricted", map[string][]Link{"a": {}}, []L2Advertisement{{Name: "vlan", Interfaces: []string{"vlan9"}}}, "192.0.2.7", []string{"b"}, []string{"vlan9"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Members: members("a", "b"), Nodes: addrs(nodes("a", "b"), "192.0.2.11"), Links: tc.links,
				Services: []Service{svc("ns/web", tc.addr)}, L2: tc.ads}
			d := L2(in)[0]
			if d.Reason != tc.reason || (tc.owners != nil && !slices.Contains(tc.owners, d.Owner)) || (tc.owners == nil && d.Owner != "") {
				t.Fatalf("owner %q reason %q, want one of %v reason %q", d.Owner, d.Reason, tc.owners, tc.reason)
			}
			if !slices.Equal(d.Interfaces, tc.ifs) || d.OnNodeInterface {
				t.Errorf("interfaces %v (node's own %v), want %v", d.Interfaces, d.OnNodeInterface, tc.ifs)
			}
		})
	}
	// Over many addresses, a node without links loses all and the others keep theirs.
	in := Input{Members: members("a", "b", "c"), Nodes: nodes("a", "b", "c"), Services: manyIPs(300), L2: []L2Advertisement{{Name: "all"}}}
	before := owners(L2(in))
	in.Links = map[string][]Link{"a": {}, "b": {{Name: "eth0", Prefixes: []netip.Prefix{p("198.18.0.0/15")}}}, "c": {{Name: "eth0", Prefixes: []netip.Prefix{p("198.18.0.0/15")}}}}
	after := owners(L2(in))
	for a, o := range after {
		if o == "a" || o == "" || (before[a] != "a" && before[a] != o) {
			t.Fatalf("%s: %q before, %q after a lost its links", a, before[a], o)
		}
	}
}
