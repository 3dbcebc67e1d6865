package layer2

import (
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// allNodes is the IPv6 all-nodes multicast group, where unsolicited advertisements go.
var allNodes = netip.MustParseAddr("ff02::1")

// arpReply returns the reply to an ARP packet: a request for an owned address gets one
// saying the address is at mac. Anything else gets nil.
func arpReply(p *arp.Packet, mac net.HardwareAddr, owns func(netip.Addr) bool) (*arp.Packet, error) {
	if p.Operation != arp.OperationRequest || !p.TargetIP.Is4() || !owns(p.TargetIP) {
		return nil, nil
	}
	// A probe (sender 0.0.0.0) is answered like any request: the address is in use.
	return arp.NewPacket(arp.OperationReply, mac, p.TargetIP, p.SenderHardwareAddr, p.SenderIP)
}

// gratuitousARP is the announcement of a taken-over address: a broadcast request whose
// sender and target are the address, which updates every neighbour that has an entry for it.
func gratuitousARP(addr netip.Addr, mac net.HardwareAddr) (*arp.Packet, error) {
	return arp.NewPacket(arp.OperationRequest, mac, addr, ethernetBroadcast, addr)
}

var ethernetBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ndpAnswer returns the neighbour advertisement for a message received from src, and where to
// send it: a solicitation for an owned address gets a solicited advertisement back to its
// sender, or, from the unspecified address (duplicate-address detection), an unsolicited
// one to all nodes. Anything else gets nil.
func ndpAnswer(m ndp.Message, src netip.Addr, mac net.HardwareAddr, owns func(netip.Addr) bool) (*ndp.NeighborAdvertisement, netip.Addr) {
	ns, ok := m.(*ndp.NeighborSolicitation)
	if !ok || !ns.TargetAddress.Is6() || ns.TargetAddress.Is4In6() || !owns(ns.TargetAddress) {
		return nil, netip.Addr{}
	}
	na := advertisement(ns.TargetAddress, mac)
	if src.IsUnspecified() || !src.IsValid() {
		return na, allNodes
	}
	na.Solicited = true
	return na, src
}

// advertisement says addr is at mac, overriding whatever neighbours had.
func advertisement(addr netip.Addr, mac net.HardwareAddr) *ndp.NeighborAdvertisement {
	return &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
}
