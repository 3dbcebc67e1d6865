package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"time"

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

// naClaim tells whether a neighbour advertisement claims an owned address for another MAC
// (the MAC in its target link-layer address option), and returns both.
func naClaim(m ndp.Message, mac net.HardwareAddr, owns func(netip.Addr) bool) (netip.Addr, net.HardwareAddr, bool) {
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || !na.TargetAddress.Is6() || !owns(na.TargetAddress) {
		return netip.Addr{}, nil, false
	}
	for _, o := range na.Options {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target && len(l.Addr) == 6 && !bytes.Equal(l.Addr, mac) {
			return na.TargetAddress, l.Addr, true
		}
	}
	return netip.Addr{}, nil, false
}

// limiter lets one event through per interval and counts the ones it held back.
type limiter struct {
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed uint64
}

// allow tells whether to let an event at now through, and how many were held back since the
// last one let through.
func (l *limiter) allow(now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
