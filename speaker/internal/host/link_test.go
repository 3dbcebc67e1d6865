package host

import (
	"net"
	"net/netip"
	"reflect"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func ipNet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip // keep the host bits, as the kernel reports them
	if v4 := ip.To4(); v4 != nil {
		n.IP = v4
	}
	return n
}

// veth is an up, operationally up Ethernet link; change adjusts it.
func veth(index int, name, hw string, change func(*netlink.LinkAttrs)) netlink.Link {
	a := netlink.LinkAttrs{Index: index, Name: name, HardwareAddr: mac(hw), Flags: net.FlagUp | net.FlagBroadcast | net.FlagMulticast,
		RawFlags: syscall.IFF_UP | syscall.IFF_BROADCAST | syscall.IFF_MULTICAST, OperState: netlink.OperUp, EncapType: "ether"}
	if change != nil {
		change(&a)
	}
	return &netlink.Veth{LinkAttrs: a}
}

func addr(index int, cidr string) netlink.Addr {
	return netlink.Addr{LinkIndex: index, IPNet: ipNet(cidr)}
}

func names(links []Link) []string {
	var out []string
	for _, l := range links {
		out = append(out, l.Name)
	}
	return out
}

func TestUsableChoosesLinks(t *testing.T) {
	tests := []struct {
		name    string
		link    netlink.Link
		exclude []string
		want    bool
	}{
		{name: "up Ethernet", link: veth(2, "eth0", "02:00:00:00:07:01", nil), want: true},
		{name: "operational state unknown", link: veth(2, "eth0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.OperState = netlink.OperUnknown }), want: true},
		{name: "administratively down", link: veth(2, "eth0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.Flags &^= net.FlagUp; a.OperState = netlink.OperDown })},
		{name: "peer down", link: veth(2, "eth0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.OperState = netlink.OperLowerLayerDown })},
		{name: "operationally down", link: veth(2, "eth0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.OperState = netlink.OperDown })},
		{name: "dormant", link: veth(2, "eth0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.OperState = netlink.OperDormant })},
		{name: "loopback", link: veth(1, "lo", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.Flags |= net.FlagLoopback; a.EncapType = "loopback" })},
		{name: "NOARP", link: veth(2, "eth0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.RawFlags |= syscall.IFF_NOARP })},
		{name: "bond slave or bridge port", link: veth(2, "eth0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.MasterIndex = 9 })},
		{name: "not Ethernet", link: veth(2, "wg0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.EncapType = "none" })},
		{name: "no MAC", link: veth(2, "eth0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.HardwareAddr = nil })},
		{name: "long MAC", link: veth(2, "ib0", "02:00:00:00:07:01", func(a *netlink.LinkAttrs) { a.HardwareAddr = make(net.HardwareAddr, 20) })},
		{name: "all-zero MAC", link: veth(2, "bond0", "00:00:00:00:00:00", nil)},
		{name: "excluded by name", link: veth(2, "eth0", "02:00:00:00:07:01", nil), exclude: []string{"eth0"}},
		{name: "excluded by pattern", link: veth(2, "cali1234", "02:00:00:00:07:01", nil), exclude: []string{"eth9", "cali*"}},
		{name: "not matched by the pattern", link: veth(2, "eth0", "02:00:00:00:07:01", nil), exclude: []string{"eth?1", "cali*"}, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := usable([]netlink.Link{tc.link}, nil, tc.exclude)
			if (len(got) == 1) != tc.want {
				t.Fatalf("usable = %v, want the link: %v", names(got), tc.want)
			}
		})
	}
}

func TestUsablePrefixes(t *testing.T) {
	links := []netlink.Link{
		veth(3, "vlan10", "02:00:00:00:07:03", nil),
		veth(2, "eth0", "02:00:00:00:07:02", nil),
		veth(4, "eth1", "02:00:00:00:07:04", nil),
	}
	peer := addr(2, "192.0.2.77/32")
	peer.Peer = ipNet("192.0.2.64/28")
	failed := addr(2, "2001:db8:9::1/64")
	failed.Flags = syscall.IFA_F_DADFAILED
	addrs := []netlink.Addr{
		addr(2, "2001:db8:1::1/64"),
		addr(2, "192.0.2.10/24"),
		addr(2, "192.0.2.11/24"), // same prefix again
		addr(2, "fe80::1/64"),    // link-local
		addr(2, "169.254.1.1/16"),
		addr(2, "198.51.100.7/25"),
		peer,
		failed,
		addr(3, "2001:db8:a::1/48"),
		addr(7, "203.0.113.1/24"), // a link not listed
		{LinkIndex: 2},            // no address at all
	}
	want := []Link{
		{Name: "eth0", Index: 2, MAC: mac("02:00:00:00:07:02"), Prefixes: []netip.Prefix{
			netip.MustParsePrefix("192.0.2.0/24"),
			netip.MustParsePrefix("192.0.2.64/28"),
			netip.MustParsePrefix("198.51.100.0/25"),
			netip.MustParsePrefix("2001:db8:1::/64"),
		}},
		{Name: "eth1", Index: 4, MAC: mac("02:00:00:00:07:04")},
		{Name: "vlan10", Index: 3, MAC: mac("02:00:00:00:07:03"), Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:a::/48")}},
	}
	got := usable(links, addrs, nil)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("usable =\n%v\nwant\n%v", got, want)
	}
}

func TestPrefixOf(t *testing.T) {
	tests := []struct {
		name string
		in   *net.IPNet
		want string // "" for none
	}{
		{name: "IPv4", in: ipNet("192.0.2.9/24"), want: "192.0.2.0/24"},
		{name: "IPv4 in 16 bytes, 32-bit mask", in: &net.IPNet{IP: net.ParseIP("192.0.2.9"), Mask: net.CIDRMask(24, 32)}, want: "192.0.2.0/24"},
		{name: "IPv4 in 16 bytes, 128-bit mask", in: &net.IPNet{IP: net.ParseIP("192.0.2.9"), Mask: net.CIDRMask(120, 128)}, want: "192.0.2.0/24"},
		{name: "IPv6", in: ipNet("2001:db8::9/64"), want: "2001:db8::/64"},
		{name: "IPv6 with an IPv4 mask", in: &net.IPNet{IP: net.ParseIP("2001:db8::9"), Mask: net.CIDRMask(24, 32)}},
		{name: "non-contiguous mask", in: &net.IPNet{IP: net.IPv4(192, 0, 2, 9).To4(), Mask: net.IPv4Mask(255, 0, 255, 0)}},
		{name: "no address", in: &net.IPNet{Mask: net.CIDRMask(24, 32)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := prefixOf(tc.in)
			got := ""
			if ok {
				got = p.String()
			}
			if got != tc.want {
				t.Errorf("prefixOf(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestHolds(t *testing.T) {
	l := Link{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}}
	tests := []struct {
		addr string
		want bool
	}{
		{"192.0.2.1", true},
		{"192.0.2.255", true},
		{"::ffff:192.0.2.7", true},
		{"192.0.3.1", false},
		{"2001:db8:1::240", true},
		{"2001:db8:2::240", false},
		{"198.51.100.1", false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			if got := l.Holds(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Errorf("Holds(%s) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
	if (Link{}).Holds(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a link without prefixes holds an address")
	}
}

func TestOpenRejectsBadPattern(t *testing.T) {
	if h, err := Open([]string{"eth["}); err == nil {
		h.Close()
		t.Fatal("Open accepted a malformed pattern")
	}
}
