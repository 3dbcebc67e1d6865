package lab

import (
	"fmt"
	"net/netip"
)

// MaxNodes is the most nodes one lab holds (node addresses are .11 to .60 on the fabric).
const MaxNodes = 50

// MaxIndex bounds Config.Index: each index gets its own /30 between the host and the lab.
const MaxIndex = 63

// Plan is the lab's address plan. Every address comes from the documentation and
// benchmarking blocks, so nothing here can leak to a real network:
//
//	fabric (node network)  192.0.2.0/24     2001:db8::/64      router .1, control plane .2, node i .(10+i)
//	client network         198.51.100.0/24  2001:db8:100::/64  router .1, client .10
//	pods of node i         198.19.i.0/24    2001:db8:10:i::/64 gateway .1 on the node, pods from .10
//	Services (cluster IPs) 198.18.240.0/20  2001:db8:ffff::/112
//	host ↔ control plane   198.18.0.(4k)/30 (k = lab index): the only link the host has into the lab
//	second node uplinks    198.18.56.(8i)/29 (AddUplink)
//
// The fabric and the pods are the same in every lab; they live in the lab's own
// namespaces. Only the host link differs by index, so several labs can run at once.
type Plan struct {
	Index int
	Nodes int
}

// Fixed prefixes of the plan.
var (
	FabricV4      = netip.MustParsePrefix("192.0.2.0/24")
	FabricV6      = netip.MustParsePrefix("2001:db8::/64")
	ClientNetV4   = netip.MustParsePrefix("198.51.100.0/24")
	ClientNetV6   = netip.MustParsePrefix("2001:db8:100::/64")
	ClusterCIDRV4 = netip.MustParsePrefix("198.19.0.0/16")
	ClusterCIDRV6 = netip.MustParsePrefix("2001:db8:10::/48")
	ServiceCIDRV4 = netip.MustParsePrefix("198.18.240.0/20")
	ServiceCIDRV6 = netip.MustParsePrefix("2001:db8:ffff::/112")
	// UplinksV4 holds the second links between nodes and the router (AddUplink): node i's
	// is 198.18.56.(8i)/29.
	UplinksV4 = netip.MustParsePrefix("198.18.56.0/24")
)

// Validate reports a plan the address scheme cannot hold.
func (p Plan) Validate() error {
	if p.Nodes < 1 || p.Nodes > MaxNodes {
		return fmt.Errorf("nodes must be 1 to %d, not %d", MaxNodes, p.Nodes)
	}
	if p.Index < 0 || p.Index > MaxIndex {
		return fmt.Errorf("lab index must be 0 to %d, not %d", MaxIndex, p.Index)
	}
	return nil
}

// RouterFabric is the router's pair of addresses on the fabric: the nodes' gateway.
func (Plan) RouterFabric() (netip.Addr, netip.Addr) { return host(FabricV4, 1), host(FabricV6, 1) }

// ControlPlaneFabric is where the nodes reach the API server.
func (Plan) ControlPlaneFabric() (netip.Addr, netip.Addr) {
	return host(FabricV4, 2), host(FabricV6, 2)
}

// NodeFabric is node i's (1-based) pair of addresses on the fabric.
func (Plan) NodeFabric(i int) (netip.Addr, netip.Addr) {
	return host(FabricV4, 10+i), host(FabricV6, hex(10+i))
}

// RouterClientSide is the router's pair of addresses on the client network.
func (Plan) RouterClientSide() (netip.Addr, netip.Addr) {
	return host(ClientNetV4, 1), host(ClientNetV6, 1)
}

// Client is the client's pair of addresses.
func (Plan) Client() (netip.Addr, netip.Addr) {
	return host(ClientNetV4, 10), host(ClientNetV6, hex(10))
}

// PodCIDRs is node i's pair of pod prefixes.
func (Plan) PodCIDRs(i int) (netip.Prefix, netip.Prefix) {
	v4 := ClusterCIDRV4.Addr().As4()
	v4[2] = byte(i)
	v6 := ClusterCIDRV6.Addr().As16()
	v6[7] = byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(v4), 24), netip.PrefixFrom(netip.AddrFrom16(v6), 64)
}

// PodGateway is the address pods of node i route through (held by the node on every pod link).
func (p Plan) PodGateway(i int) netip.Addr {
	v4, _ := p.PodCIDRs(i)
	return host(v4, 1)
}

// PodAddrs is the pair of addresses of the k-th pod (0-based) of node i.
func (p Plan) PodAddrs(i, k int) (netip.Addr, netip.Addr) {
	v4, v6 := p.PodCIDRs(i)
	return host(v4, 10+k), host(v6, hex(10+k))
}

// MaxPodsPerNode bounds the pods one node runs.
const MaxPodsPerNode = 240

// HostLink is the host's and the control plane's address on the link between them.
func (p Plan) HostLink() (hostSide, cpSide netip.Prefix) {
	base := netip.AddrFrom4([4]byte{198, 18, 0, byte(4 * p.Index)})
	return netip.PrefixFrom(host(netip.PrefixFrom(base, 30), 1), 30), netip.PrefixFrom(host(netip.PrefixFrom(base, 30), 2), 30)
}

// host is the n-th address of prefix p.
func host(p netip.Prefix, n int) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	carry := n
	for i := len(b) - 1; i >= 0 && carry > 0; i-- {
		sum := int(b[i]) + carry
		b[i] = byte(sum)
		carry = sum >> 8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// hex makes the IPv6 host part read like the IPv4 one: node 11 is 2001:db8::11, not ::b.
func hex(n int) int {
	v := 0
	for shift := 0; n > 0; shift += 4 {
		v |= (n % 10) << shift
		n /= 10
	}
	return v
}
