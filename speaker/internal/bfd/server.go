package bfd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Port is where BFD control packets for single-hop sessions go (RFC 5881 4).
const Port = 3784

// Config is a session's local address and timers.
type Config struct {
	// Source is the address packets go out from (zero: the kernel's choice).
	Source netip.Addr
	// Transmit is the Desired Min TX Interval, Receive the Required Min RX Interval.
	Transmit, Receive time.Duration
	Multiplier        uint8
}

// Change is a session's move from one state to another. TimedOut: it went Down because
// nothing came for the detection time (not because the peer said so).
type Change struct {
	Old, New State
	TimedOut bool
}

// Stats count the packets the server read: accepted (handed to their session, or dropped
// when it already has packets waiting), malformed (dropped by the checks of RFC 5880 6.8.6,
// or with a TTL other than 255: sent from off the link, RFC 5881 5), and for no session (an
// unknown sender, or a Your Discriminator that is not the session's).
type Stats struct {
	Received, Malformed, Unknown atomic.Uint64
}

// Server owns the listening socket and the sessions, one per peer address.
type Server struct {
	conn     *net.UDPConn
	peerPort uint16
	Stats    Stats

	mu       sync.Mutex
	sessions map[netip.Addr]*session
}

// Listen opens local for the packets of every session (an unspecified address takes IPv4
// and IPv6); sessions send to their peer's peerPort (Port but in tests).
func Listen(local netip.AddrPort, peerPort uint16) (*Server, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
	if err != nil {
		return nil, fmt.Errorf("BFD: %w", err)
	}
	if err := receiveTTL(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("BFD: asking for the TTL of received packets: %w", err)
	}
	s := &Server{conn: c, peerPort: peerPort, sessions: map[netip.Addr]*session{}}
	go s.read()
	return s, nil
}

func (s *Server) read() {
	buf, oob := make([]byte, 512), make([]byte, 128)
	for {
		n, oobn, _, from, err := s.conn.ReadMsgUDPAddrPort(buf, oob)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		p, ok := parse(buf[:n])
		if !ok || ttl(oob[:oobn]) != 255 {
			s.Stats.Malformed.Add(1)
			continue
		}
		s.mu.Lock()
		ss := s.sessions[from.Addr().Unmap()]
		s.mu.Unlock()
		// A packet names our session, or names none while the peer has not heard from us
		// (RFC 5880 6.8.6). The peer's discriminator is taken from every packet: a peer
		// that replaced its session (a new discriminator, Down) is followed.
		if ss == nil || (p.yourDisc != 0 && p.yourDisc != ss.myDisc) {
			s.Stats.Unknown.Add(1)
			continue
		}
		s.Stats.Received.Add(1)
		select {
		case ss.rx <- p:
		default: // the session has 8 packets to read already: this one brings nothing new
		}
	}
}

// Add starts a session with peer (replacing one it has); changed hears of every change of
// its state, from the session's goroutine.
func (s *Server) Add(peer netip.Addr, cfg Config, changed func(Change)) error {
	conn, err := dial(cfg.Source, netip.AddrPortFrom(peer, s.peerPort))
	if err != nil {
		return fmt.Errorf("BFD to %s: %w", peer, err)
	}
	ss := newSession(cfg, conn, changed)
	s.mu.Lock()
	old := s.sessions[peer]
	s.sessions[peer] = ss
	s.mu.Unlock()
	if old != nil {
		old.stop()
		<-old.done
	}
	go ss.run()
	return nil
}

// Remove ends peer's session and waits until it has: it says AdminDown first, so the peer
// does not take it for a failure (RFC 5880 6.8.16), and it calls changed no more.
func (s *Server) Remove(peer netip.Addr) {
	s.mu.Lock()
	ss := s.sessions[peer]
	delete(s.sessions, peer)
	s.mu.Unlock()
	if ss != nil {
		ss.stop()
		<-ss.done
	}
}

// State is peer's session state (Down when there is none).
func (s *Server) State(peer netip.Addr) State {
	s.mu.Lock()
	ss := s.sessions[peer]
	s.mu.Unlock()
	if ss == nil {
		return Down
	}
	return ss.current()
}

// Close ends every session (AdminDown) and the listener, and waits until they have ended.
// The sessions' changed callbacks must not wait for what calls Close.
func (s *Server) Close() error {
	s.mu.Lock()
	all := s.sessions
	s.sessions = map[netip.Addr]*session{}
	s.mu.Unlock()
	for _, ss := range all {
		ss.stop()
	}
	for _, ss := range all {
		<-ss.done
	}
	return s.conn.Close()
}
