package lab

import (
	"net/netip"
	"testing"
)

func TestPlanAddresses(t *testing.T) {
	p := Plan{Index: 3, Nodes: MaxNodes}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	add := func(who string, a netip.Addr, in ...netip.Prefix) {
		t.Helper()
		if other, dup := seen[a]; dup {
			t.Errorf("%s and %s both have %s", who, other, a)
		}
		seen[a] = who
		ok := false
		for _, pfx := range in {
			ok = ok || pfx.Contains(a)
		}
		if !ok {
			t.Errorf("%s: %s is outside %v", who, a, in)
		}
	}
	r4, r6 := p.RouterFabric()
	add("router", r4, FabricV4)
	add("router", r6, FabricV6)
	c4, c6 := p.ControlPlaneFabric()
	add("control plane", c4, FabricV4)
	add("control plane", c6, FabricV6)
	rc4, rc6 := p.RouterClientSide()
	add("router client side", rc4, ClientNetV4)
	add("router client side", rc6, ClientNetV6)
	cl4, cl6 := p.Client()
	add("client", cl4, ClientNetV4)
	add("client", cl6, ClientNetV6)
	for i := 1; i <= p.Nodes; i++ {
		n4, n6 := p.NodeFabric(i)
		add("node", n4, FabricV4)
		add("node", n6, FabricV6)
		p4, p6 := p.PodCIDRs(i)
		if !ClusterCIDRV4.Contains(p4.Addr()) || !ClusterCIDRV6.Contains(p6.Addr()) {
			t.Errorf("node %d pods %s %s outside the cluster ranges", i, p4, p6)
		}
		add("pod gateway", p.PodGateway(i), p4)
		for _, k := range []int{0, MaxPodsPerNode - 1} {
			a4, a6 := p.PodAddrs(i, k)
			add("pod", a4, p4)
			add("pod", a6, p6)
		}
	}
	h, cp := p.HostLink()
	add("host", h.Addr(), netip.MustParsePrefix("198.18.0.0/24"))
	add("control plane host link", cp.Addr(), netip.MustParsePrefix("198.18.0.0/24"))
	if h.Masked() != cp.Masked() {
		t.Errorf("host link ends %s and %s are not on one /30", h, cp)
	}
	for _, svc := range []netip.Prefix{ServiceCIDRV4, ServiceCIDRV6} {
		for a, who := range seen {
			if svc.Contains(a) {
				t.Errorf("%s %s is inside the Service range %s", who, a, svc)
			}
		}
	}
}

func TestPlanReadableAddresses(t *testing.T) {
	p := Plan{Nodes: 3}
	for _, tc := range []struct {
		name string
		got  netip.Addr
		want string
	}{
		{"node-1 v4", first(p.NodeFabric(1)), "192.0.2.11"},
		{"node-1 v6", second(p.NodeFabric(1)), "2001:db8::11"},
		{"node-12 v6", second(p.NodeFabric(12)), "2001:db8::22"},
		{"first pod of node-2 v4", first(p.PodAddrs(2, 0)), "198.19.2.10"},
		{"first pod of node-2 v6", second(p.PodAddrs(2, 0)), "2001:db8:10:2::10"},
		{"client v6", second(p.Client()), "2001:db8:100::10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got.String() != tc.want {
				t.Errorf("got %s, want %s", tc.got, tc.want)
			}
		})
	}
	if got := mac(11); got != "02:00:00:00:00:11" {
		t.Errorf("mac(11) = %s", got)
	}
	h0, _ := Plan{Index: 0}.HostLink()
	h5, _ := Plan{Index: 5}.HostLink()
	if h0.String() != "198.18.0.1/30" || h5.String() != "198.18.0.21/30" {
		t.Errorf("host links %s %s", h0, h5)
	}
}

func TestPlanValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		plan Plan
		ok   bool
	}{
		{"three nodes", Plan{Nodes: 3}, true},
		{"no node", Plan{Nodes: 0}, false},
		{"too many nodes", Plan{Nodes: MaxNodes + 1}, false},
		{"negative index", Plan{Nodes: 1, Index: -1}, false},
		{"index past the host links", Plan{Nodes: 1, Index: MaxIndex + 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.plan.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func first(a, _ netip.Addr) netip.Addr  { return a }
func second(_, b netip.Addr) netip.Addr { return b }
