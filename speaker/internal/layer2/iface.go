package layer2

import (
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
	ifi   *net.Interface
	arp   *packet.Conn
	ndp   *ndp.Conn
	owns  func(netip.Addr) bool
	stats *Stats
	log   logr.Logger

	mu      sync.Mutex
	groups  map[netip.Addr]int // solicited-node groups joined, by how many owned addresses
	done    sync.WaitGroup
	closing atomic.Bool
}

func openResponder(name string, owns func(netip.Addr) bool, stats *Stats, log logr.Logger) (*responder, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("interface %s has no Ethernet address", name)
	}
	r := &responder{ifi: ifi, owns: owns, stats: stats, log: log.WithValues("interface", name), groups: map[netip.Addr]int{}}
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
func parseARPFrame(b []byte) (*arp.Packet, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil, false
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(f.Payload); err != nil {
		return nil, false
	}
	return &p, true
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
		p, ok := parseARPFrame(buf[:n])
		if !ok {
			r.stats.Dropped.Add(1)
			continue
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
			r.log.Error(err, "Cannot send ARP reply", "ip", p.TargetIP.String())
			continue
		}
		r.stats.ARPReplies.Add(1)
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
		na, dst := ndpAnswer(m, src, r.ifi.HardwareAddr, r.owns)
		if na == nil {
			continue
		}
		r.stats.NDPSolicitations.Add(1)
		if err := r.ndp.WriteTo(na, nil, dst); err != nil {
			r.log.Error(err, "Cannot send neighbour advertisement", "ip", na.TargetAddress.String())
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
