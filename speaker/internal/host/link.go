package host

import (
	"net"
	"net/netip"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Link is an interface the speaker may answer ARP/NDP on.
type Link struct {
	// Name is the interface's name, at most 15 bytes.
	Name string
	// Index is the interface's index in its namespace. It means nothing on another node, so
	// it is not encoded.
	Index int
	// MAC is the interface's 6-byte Ethernet address.
	MAC net.HardwareAddr
	// Prefixes are the on-link prefixes of the interface's global unicast addresses (IPv4
	// and IPv6, not link-local), masked, without duplicates, and sorted as
	// netip.Prefix.Compare orders them: IPv4 first, then by address, then by length.
	Prefixes []netip.Prefix
}

// Holds tells whether one of the link's prefixes contains a.
func (l Link) Holds(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// encapEther is what netlink calls the link type of Ethernet interfaces (ARPHRD_ETHER).
const encapEther = "ether"

// usable picks the links the speaker can answer on and gives each the prefixes of its
// addresses; the result is sorted by name.
func usable(links []netlink.Link, addrs []netlink.Addr, exclude []string) []Link {
	prefixes := map[int][]netip.Prefix{}
	for _, a := range addrs {
		if p, ok := onLink(a); ok {
			prefixes[a.LinkIndex] = append(prefixes[a.LinkIndex], p)
		}
	}
	var out []Link
	for _, l := range links {
		attrs := l.Attrs()
		if attrs == nil || !canAnswer(attrs) || excluded(attrs.Name, exclude) {
			continue
		}
		out = append(out, Link{
			Name:     attrs.Name,
			Index:    attrs.Index,
			MAC:      slices.Clone(attrs.HardwareAddr),
			Prefixes: tidy(prefixes[attrs.Index]),
		})
	}
	slices.SortFunc(out, func(x, y Link) int { return strings.Compare(x.Name, y.Name) })
	return out
}

// canAnswer tells whether ARP and NDP answers on the link would reach the segment with the
// link's own MAC. An enslaved link (a bond slave, a bridge port) is left out: its master
// answers, and answers from the slave carry the wrong MAC.
func canAnswer(a *netlink.LinkAttrs) bool {
	switch {
	case a.Flags&net.FlagUp == 0, a.Flags&net.FlagLoopback != 0, a.RawFlags&syscall.IFF_NOARP != 0:
		return false
	case a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown:
		return false
	case a.MasterIndex != 0:
		return false
	case a.EncapType != encapEther, !isEthernetMAC(a.HardwareAddr):
		return false
	}
	return true
}

// isEthernetMAC tells a 6-byte address from the all-zero one an interface has before it
// gets a real address (a bond with no slaves).
func isEthernetMAC(mac net.HardwareAddr) bool {
	return len(mac) == 6 && slices.ContainsFunc(mac, func(b byte) bool { return b != 0 })
}

// excluded tells whether name is one of the patterns or matches one (path.Match).
func excluded(name string, patterns []string) bool {
	for _, p := range patterns {
		if p == name {
			return true
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// onLink gives the on-link prefix of a global unicast address. On a point-to-point address
// the prefix is the peer's.
func onLink(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil || a.Flags&syscall.IFA_F_DADFAILED != 0 {
		return netip.Prefix{}, false
	}
	local, ok := netip.AddrFromSlice(a.IP)
	if !ok || !local.Unmap().IsGlobalUnicast() {
		return netip.Prefix{}, false
	}
	if a.Peer != nil {
		return prefixOf(a.Peer)
	}
	return prefixOf(a.IPNet)
}

// prefixOf converts n to a masked netip.Prefix, IPv4 in its 4-byte form.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}, false
	}
	if ip.Is4In6() && bits == 128 {
		if ones < 96 {
			return netip.Prefix{}, false
		}
		ones, bits = ones-96, 32
	}
	ip = ip.Unmap()
	if ip.BitLen() != bits {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(ip, ones).Masked(), true
}

// tidy sorts ps and drops duplicates.
func tidy(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, netip.Prefix.Compare)
	return slices.Compact(ps)
}
