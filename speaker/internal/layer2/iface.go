package layer2

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
)

// responder answers on one interface: an AF_PACKET socket for ARP and an ICMPv6 socket for
// NDP (either may be missing when the interface has no address of that family).
type responder struct {
	ifi  *net.Interface
	arp  *packet.Conn
	ndp  *ndp.Conn
	owns func(netip.Addr) bool
	// conflict hears of another MAC claiming an owned address.
	conflict func(r *responder, addr netip.Addr, mac net.HardwareAddr)
	stats    *Stats
	log      logr.Logger
	// sendLog keeps a flood of failed sends from becoming a flood of log lines.
	sendLog limiter

	mu      sync.Mutex
	groups  map[netip.Addr]int // solicited-node groups joined, by how many owned addresses
	done    sync.WaitGroup
	closing atomic.Bool
}

func openResponder(name string, owns func(netip.Addr) bool, conflict func(*responder, netip.Addr, net.HardwareAddr), stats *Stats, log logr.Logger) (*responder, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address", name)
	}
	r := &responder{ifi: ifi, owns: owns, conflict: conflict, stats: stats, sendLog: limiter{every: 10 * time.Second}, log: log.WithValues("interface", name), groups: map[netip.Addr]int{}}
	if r.arp, err = packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil); err != nil {
		return nil, fmt.Errorf("ARP socket on %s: %w", name, err)
	}
	// ndp addresses link-local peers with the interface's name as zone, which Go resolves in
	// the network namespace of whichever thread writes; the index is the same everywhere.
	byIndex := *ifi
	byIndex.Name = strconv.Itoa(ifi.Index)
	if r.ndp, _, err = ndp.Listen(&byIndex, ndp.LinkLocal); err != nil {
		// No link-local address: no IPv6 here; ARP still works.
		r.log.V(1).Info("No NDP on interface", "reason", err.Error())
		r.ndp = nil
	} else {
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeNeighborSolicitation)
		f.Accept(ipv6.ICMPTypeNeighborAdvertisement) // another node's claims
		if err := r.ndp.SetICMPFilter(&f); err != nil {
			r.close()
			return nil, err
		}
	}
	r.done.Add(1)
	go r.serveARP()
	if r.ndp != nil {
		r.done.Add(1)
		go r.serveNDP()
	}
	return r, nil
}

func (r *responder) close() {
	r.closing.Store(true)
	if r.arp != nil {
		_ = r.arp.Close()
	}
	if r.ndp != nil {
		_ = r.ndp.Close()
	}
	r.done.Wait()
}

// parseARPFrame reads an Ethernet frame carrying ARP.
func parseARPFrame(b []byte) (*ethernet.Frame, *arp.Packet, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil, nil, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil, nil, false
	}
	return &f, &p, true
}

// frameVerdict is what the responder does with a received ARP frame.
type frameVerdict int

const (
	frameAnswer  frameVerdict = iota // for us: answer requests, watch claims
	frameOwn                         // our own frame seen going out: ignored
	frameNotOurs                     // unicast to another host (a promiscuous interface): dropped and counted
)

// classify tells our own frames and frames for other hosts from the ones to handle: sent
// to our MAC, to broadcast or to a multicast group.
func classify(f *ethernet.Frame, mac net.HardwareAddr) frameVerdict {
	switch {
	case bytes.Equal(f.Source, mac):
		return frameOwn
	case bytes.Equal(f.Destination, mac) || f.Destination[0]&1 == 1: // broadcast is multicast too
		return frameAnswer
	default:
		return frameNotOurs
	}
}

// claimsOwned tells whether an ARP packet claims an owned address for another MAC: its
// sender is the address (a reply, a gratuitous ARP, a request from a host using it).
func claimsOwned(p *arp.Packet, mac net.HardwareAddr, owns func(netip.Addr) bool) bool {
	return p.SenderIP.Is4() && !p.SenderIP.IsUnspecified() && !bytes.Equal(p.SenderHardwareAddr, mac) && owns(p.SenderIP)
}

func (r *responder) serveARP() {
	defer r.done.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := r.arp.ReadFrom(buf)
		if err != nil {
			if r.readFailed(err) {
				return
			}
			continue
		}
		f, p, ok := parseARPFrame(buf[:n])
		if !ok {
			r.stats.Dropped.Add(1)
			continue
		}
		switch classify(f, r.ifi.HardwareAddr) {
		case frameOwn:
			continue
		case frameNotOurs:
			r.stats.NotForUs.Add(1)
			continue
		case frameAnswer:
		}
		if claimsOwned(p, r.ifi.HardwareAddr, r.owns) {
			r.conflict(r, p.SenderIP, p.SenderHardwareAddr)
		}
		reply, err := arpReply(p, r.ifi.HardwareAddr, r.owns)
		if reply == nil || err != nil {
			continue
		}
		r.stats.ARPRequests.Add(1)
		dst := p.SenderHardwareAddr
		if a, ok := from.(*packet.Addr); ok && len(a.HardwareAddr) == 6 {
			dst = a.HardwareAddr // answer the frame's sender, whatever the packet says
		}
		if err := r.sendARP(reply, dst); err != nil {
			r.sendFailed(err, "Cannot send an ARP reply", p.TargetIP)
			continue
		}
		r.stats.ARPReplies.Add(1)
	}
}

// sendFailed counts a failed send and logs it, at most once per interval with the number
// of failures not logged since.
func (r *responder) sendFailed(err error, msg string, addr netip.Addr) {
	r.stats.SendErrors.Add(1)
	if ok, suppressed := r.sendLog.allow(time.Now()); ok {
		r.log.Error(err, msg, "ip", addr.String(), "notLoggedSinceLast", suppressed)
	}
}

func (r *responder) sendARP(p *arp.Packet, dst net.HardwareAddr) error {
	pb, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	fb, err := (&ethernet.Frame{Destination: dst, Source: r.ifi.HardwareAddr, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	if err != nil {
		return err
	}
	_, err = r.arp.WriteTo(fb, &packet.Addr{HardwareAddr: dst})
	return err
}

func (r *responder) serveNDP() {
	defer r.done.Done()
	for {
		m, _, src, err := r.ndp.ReadFrom()
		if err != nil {
			var perr interface{ Timeout() bool }
			if !r.closing.Load() && !errors.As(err, &perr) && !errors.Is(err, net.ErrClosed) && !isSocketError(err) {
				r.stats.Dropped.Add(1) // a message that does not parse
				continue
			}
			if r.readFailed(err) {
				return
			}
			continue
		}
		if addr, mac, ok := naClaim(m, r.ifi.HardwareAddr, r.owns); ok {
			r.conflict(r, addr, mac)
			continue
		}
		na, dst := ndpAnswer(m, src, r.ifi.HardwareAddr, r.owns)
		if na == nil {
			continue
		}
		r.stats.NDPSolicitations.Add(1)
		if err := r.ndp.WriteTo(na, nil, dst); err != nil {
			r.sendFailed(err, "Cannot send a neighbour advertisement", na.TargetAddress)
			continue
		}
		r.stats.NDPAdvertisements.Add(1)
	}
}

// readFailed handles a failed read: true when the responder is closing (the loop ends);
// otherwise the error is counted and the loop pauses briefly, so an interface that went
// away does not spin it.
func (r *responder) readFailed(err error) bool {
	if r.closing.Load() {
		return true
	}
	r.stats.Dropped.Add(1)
	r.log.V(1).Info("Read failed", "error", err.Error())
	time.Sleep(10 * time.Millisecond)
	return false
}

// isSocketError tells a failure of the socket from a message that did not parse.
func isSocketError(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr)
}

// announce sends one gratuitous ARP or unsolicited neighbour advertisement for addr.
func (r *responder) announce(addr netip.Addr) error {
	if addr.Is4() {
		p, err := gratuitousARP(addr, r.ifi.HardwareAddr)
		if err != nil {
			return err
		}
		return r.sendARP(p, ethernetBroadcast)
	}
	if r.ndp == nil {
		return fmt.Errorf("no IPv6 on %s", r.ifi.Name)
	}
	return r.ndp.WriteTo(advertisement(addr, r.ifi.HardwareAddr), nil, allNodes)
}

// join and leave keep the solicited-node multicast group of an IPv6 address joined while
// the address is owned here, so its solicitations reach the socket.
func (r *responder) join(addr netip.Addr) error {
	if !addr.Is6() || r.ndp == nil {
		return nil
	}
	g, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groups[g]++; r.groups[g] == 1 {
		return r.ndp.JoinGroup(g)
	}
	return nil
}

func (r *responder) leave(addr netip.Addr) {
	if !addr.Is6() || r.ndp == nil {
		return
	}
	g, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.groups[g]--; r.groups[g] <= 0 {
		delete(r.groups, g)
		_ = r.ndp.LeaveGroup(g)
	}
}
