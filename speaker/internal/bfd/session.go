package bfd

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// slowTx is the slowest the RFC lets a session send while not Up (RFC 5880 6.8.3: at least
// one second).
const slowTx = time.Second

// dial opens a session's sending socket: from source (zero: the kernel's choice), a source
// port in 49152-65535, TTL or hop limit 255 (RFC 5881 4, 5).
func dial(source netip.Addr, peer netip.AddrPort) (*net.UDPConn, error) {
	var last error
	for range 16 {
		local := &net.UDPAddr{Port: 49152 + rand.IntN(16384)}
		if source.IsValid() {
			local.IP = source.AsSlice()
		}
		d := net.Dialer{LocalAddr: local, Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if peer.Addr().Is4() {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, 255)
				} else {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_UNICAST_HOPS, 255)
				}
			})
			return errors.Join(err, serr)
		}}
		c, err := d.DialContext(context.Background(), "udp", peer.String())
		if err == nil {
			return c.(*net.UDPConn), nil
		}
		last = err // most likely the port is taken: try another
	}
	return nil, last
}

// session is one BFD session's state machine (RFC 5880 6.8), run by one goroutine.
type session struct {
	cfg     Config
	conn    *net.UDPConn
	changed func(Change)
	rx      chan packet
	quit    chan struct{}
	done    chan struct{}
	once    sync.Once
	myDisc  uint32

	mu    sync.Mutex
	state State
	diag  uint8
	// What the peer said last: its discriminator and intervals (heard: it said anything).
	heard                 bool
	remoteDisc            uint32
	remoteMinRx, remoteTx time.Duration
	// polling: a Poll Sequence is under way (our intervals changed).
	polling bool
}

func newSession(cfg Config, conn *net.UDPConn, changed func(Change)) *session {
	return &session{cfg: cfg, conn: conn, changed: changed, rx: make(chan packet, 8), quit: make(chan struct{}),
		done: make(chan struct{}), myDisc: rand.Uint32() | 1, state: Down}
}

func (ss *session) stop() { ss.once.Do(func() { close(ss.quit) }) }

func (ss *session) current() State {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.state
}

// desiredTx is the Desired Min TX Interval to send: the configured one once Up, at least
// slowTx before.
func (ss *session) desiredTx() time.Duration {
	if ss.state != Up {
		return max(slowTx, ss.cfg.Transmit)
	}
	return ss.cfg.Transmit
}

func (ss *session) send(final bool) {
	p := packet{diag: ss.diag, state: ss.state, poll: ss.polling && !final, final: final, mult: ss.cfg.Multiplier,
		myDisc: ss.myDisc, yourDisc: ss.remoteDisc,
		desiredTx: uint32(ss.desiredTx() / time.Microsecond), requiredRx: uint32(ss.cfg.Receive / time.Microsecond)}
	_, _ = ss.conn.Write(p.marshal()) // a lost packet is what BFD is made to survive
}

// txInterval is the larger of our Desired Min TX and the peer's Required Min RX, less a
// random 0-25% (RFC 5880 6.8.7; the 10-25% rule for a multiplier of 1 does not arise: the
// API's minimum is 2).
func (ss *session) txInterval() time.Duration {
	iv := max(ss.desiredTx(), ss.remoteMinRx, time.Millisecond)
	return iv - time.Duration(rand.Int64N(int64(iv)/4+1))
}

// setState moves the session and tells the caller (without holding the lock).
func (ss *session) setState(st State, diag uint8) {
	old := ss.state
	if old == st {
		return
	}
	ss.state, ss.diag = st, diag
	if st == Up || old == Up {
		ss.polling = true // our Desired Min TX changes with Up: a Poll Sequence (6.8.3)
	}
	if st == Down {
		ss.remoteDisc = 0
	}
	select {
	case <-ss.quit:
		return // removed: a late change (a timer that fired meanwhile) is nobody's business
	default:
	}
	if ss.changed != nil {
		ss.mu.Unlock()
		ss.changed(Change{Old: old, New: st, TimedOut: diag == diagTimeExpired})
		ss.mu.Lock()
	}
}

func (ss *session) run() {
	defer close(ss.done)
	defer ss.conn.Close()
	tx := time.NewTimer(0)
	defer tx.Stop()
	detect := time.NewTimer(time.Hour)
	detect.Stop()
	defer detect.Stop()
	for {
		select {
		case <-ss.quit:
			ss.mu.Lock()
			ss.state, ss.diag, ss.polling = AdminDown, diagAdminDown, false
			for range 3 {
				ss.send(false)
			}
			ss.mu.Unlock()
			return
		case <-tx.C:
			ss.mu.Lock()
			if !ss.heard || ss.remoteMinRx > 0 { // a peer asking for 0 wants no packets (6.8.7)
				ss.send(false)
			}
			tx.Reset(ss.txInterval())
			ss.mu.Unlock()
		case <-detect.C:
			ss.mu.Lock()
			if ss.state == Init || ss.state == Up {
				ss.setState(Down, diagTimeExpired)
			}
			ss.mu.Unlock()
		case p := <-ss.rx:
			ss.mu.Lock()
			ss.receive(p, tx, detect)
			ss.mu.Unlock()
		}
	}
}

// receive applies a packet (RFC 5880 6.8.6, in order).
func (ss *session) receive(p packet, tx, detect *time.Timer) {
	beforeIv, before := max(ss.desiredTx(), ss.remoteMinRx), ss.state
	ss.heard = true
	ss.remoteDisc = p.myDisc
	ss.remoteTx = time.Duration(p.desiredTx) * time.Microsecond
	ss.remoteMinRx = time.Duration(p.requiredRx) * time.Microsecond
	if p.final {
		ss.polling = false
	}
	switch {
	case p.state == AdminDown:
		if ss.state != Down {
			ss.setState(Down, diagNeighborDown)
		}
	case ss.state == Down && p.state == Down:
		ss.setState(Init, diagNone)
	case ss.state == Down && p.state == Init, ss.state == Init && p.state >= Init:
		ss.setState(Up, diagNone)
	case ss.state == Up && p.state == Down:
		ss.setState(Down, diagNeighborDown)
	}
	// Both sends below go out between periodic packets, as the RFC allows for a Final
	// (6.8.7) and as implementations do on a state change, which the peer wants to hear now.
	if p.poll {
		ss.send(true)
	}
	if ss.state != before {
		ss.send(false) // tell the peer at once (and start the Poll Sequence)
	}
	if max(ss.desiredTx(), ss.remoteMinRx) < beforeIv || ss.state != before {
		// The peer's detection time shrinks with the interval: do not wait out the old one.
		tx.Reset(ss.txInterval())
	}
	// Detection time: the peer's multiplier times the larger of our Required Min RX and its
	// Desired Min TX (6.8.4).
	detect.Reset(time.Duration(p.mult) * max(ss.cfg.Receive, ss.remoteTx))
}
