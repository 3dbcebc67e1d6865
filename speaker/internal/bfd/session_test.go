package bfd

import (
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakePeer plays the router's side of a session by hand on 127.0.0.2: it sends control
// packets every 30 ms while alive, in the state and with the discriminator the test sets,
// naming the server's session once it has heard it.
type fakePeer struct {
	t    *testing.T
	conn *net.UDPConn
	to   netip.AddrPort

	mu       sync.Mutex
	alive    bool
	state    State
	disc     uint32
	poll     bool
	heard    []packet // what the server sent, in order
	heardSrc netip.Addr
}

func newFakePeer(t *testing.T) *fakePeer {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	setTTL(t, c, 255) // a neighbour on the link
	f := &fakePeer{t: t, conn: c, state: Down, disc: 100}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); c.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if p, ok := parse(buf[:n]); ok {
				f.mu.Lock()
				f.heard, f.heardSrc = append(f.heard, p), from.Addr().Unmap()
				f.mu.Unlock()
			}
		}
	}()
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(30 * time.Millisecond):
			}
			f.mu.Lock()
			p := packet{state: f.state, mult: 3, myDisc: f.disc, desiredTx: 100000, requiredRx: 100000, poll: f.poll}
			if f.state != Down && f.state != AdminDown && len(f.heard) > 0 {
				p.yourDisc = f.heard[len(f.heard)-1].myDisc
			}
			alive, to := f.alive, f.to
			f.mu.Unlock()
			if alive && to.IsValid() {
				_, _ = c.WriteToUDPAddrPort(p.marshal(), to)
			}
		}
	}()
	return f
}

func setTTL(t *testing.T, c *net.UDPConn, ttl int) {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, ttl) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
}

func (f *fakePeer) port() uint16 { return uint16(f.conn.LocalAddr().(*net.UDPAddr).Port) }

func (f *fakePeer) set(alive bool, st State, disc uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alive, f.state, f.disc = alive, st, disc
}

// last is the server's latest packet.
func (f *fakePeer) last() (packet, netip.Addr, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.heard) == 0 {
		return packet{}, netip.Addr{}, false
	}
	return f.heard[len(f.heard)-1], f.heardSrc, true
}

// until waits (generously: the machine may be busy) for cond.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %s", what)
		}
	}
}

// setup is a server on 127.0.0.1 with one session to the fake peer, sending from 127.0.0.3,
// and the changes it reports. Its detection time is 3 s (3 x its 1 s Required Min RX) against
// the fake's 30 ms: only a peer that stopped times out, not a busy machine.
func setup(t *testing.T) (*Server, *fakePeer, chan Change) {
	f := newFakePeer(t)
	s, err := Listen(netip.MustParseAddrPort("127.0.0.1:0"), f.port())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	f.mu.Lock()
	f.to = s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	f.mu.Unlock()
	changes := make(chan Change, 32)
	cfg := Config{Source: netip.MustParseAddr("127.0.0.3"), Transmit: 100 * time.Millisecond, Receive: time.Second, Multiplier: 3}
	if err := s.Add(netip.MustParseAddr("127.0.0.2"), cfg, func(c Change) { changes <- c }); err != nil {
		t.Fatal(err)
	}
	return s, f, changes
}

func next(t *testing.T, changes chan Change, want Change) {
	t.Helper()
	select {
	case got := <-changes:
		if got != want {
			t.Fatalf("change %+v, want %+v", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no change within 20s, want %+v", want)
	}
}

// The session comes up from the address it was given, follows a peer that replaced its
// session (a new discriminator while Down, as FRR's bfdd does when BGP comes up), and times
// out when the peer goes silent.
func TestSessionUpReplacedTimedOut(t *testing.T) {
	s, f, changes := setup(t)
	peer := netip.MustParseAddr("127.0.0.2")
	f.set(true, Down, 100)
	next(t, changes, Change{Old: Down, New: Init})
	until(t, "the server names discriminator 100", func() bool { p, _, ok := f.last(); return ok && p.yourDisc == 100 })
	f.set(true, Down, 200)
	until(t, "the server follows the replacement 200", func() bool { p, _, ok := f.last(); return ok && p.yourDisc == 200 })
	f.set(true, Up, 200)
	next(t, changes, Change{Old: Init, New: Up})
	if st := s.State(peer); st != Up {
		t.Errorf("State %s, want Up", st)
	}
	if _, src, _ := f.last(); src != netip.MustParseAddr("127.0.0.3") {
		t.Errorf("packets from %s, want the configured source 127.0.0.3", src)
	}
	f.set(false, Up, 200)
	next(t, changes, Change{Old: Up, New: Down, TimedOut: true})
}

// A session that never came up times out from Init: the change says so (Old Init), so the
// caller can leave BGP alone (RFC 5882 4.3).
func TestSessionNeverUp(t *testing.T) {
	_, f, changes := setup(t)
	f.set(true, Down, 100)
	next(t, changes, Change{Old: Down, New: Init})
	f.set(false, Down, 100)
	next(t, changes, Change{Old: Init, New: Down, TimedOut: true})
}

// The peer saying AdminDown takes the session down without a timeout; removing the session
// says AdminDown to the peer.
func TestSessionAdminDown(t *testing.T) {
	s, f, changes := setup(t)
	f.set(true, Down, 100)
	next(t, changes, Change{Old: Down, New: Init})
	f.set(true, Up, 100)
	next(t, changes, Change{Old: Init, New: Up})
	f.set(true, AdminDown, 100)
	next(t, changes, Change{Old: Up, New: Down})
	f.set(true, Down, 100)
	next(t, changes, Change{Old: Down, New: Init})
	s.Remove(netip.MustParseAddr("127.0.0.2"))
	until(t, "AdminDown from the removed session", func() bool {
		p, _, ok := f.last()
		return ok && p.state == AdminDown && p.diag == diagAdminDown
	})
}

// The peer restarts its session while ours is Up (a new discriminator, Down): ours goes Down
// because the peer said so (not a timeout) and comes Up again with the new one. An Init
// while Up changes nothing; a Poll is answered with a Final.
func TestSessionPeerRestarts(t *testing.T) {
	s, f, changes := setup(t)
	peer := netip.MustParseAddr("127.0.0.2")
	f.set(true, Down, 100)
	next(t, changes, Change{Old: Down, New: Init})
	f.set(true, Up, 100)
	next(t, changes, Change{Old: Init, New: Up})
	f.set(true, Down, 300)
	next(t, changes, Change{Old: Up, New: Down})
	next(t, changes, Change{Old: Down, New: Init})
	f.set(true, Up, 300)
	next(t, changes, Change{Old: Init, New: Up})
	f.mu.Lock()
	f.state, f.poll = Init, true
	f.mu.Unlock()
	until(t, "a Final for the Init with Poll", func() bool { p, _, ok := f.last(); return ok && p.final && p.yourDisc == 300 })
	if st := s.State(peer); st != Up {
		t.Errorf("an Init while Up: State %s", st)
	}
	select {
	case c := <-changes:
		t.Errorf("an Init while Up changed the session: %+v", c)
	default:
	}
}

// Malformed packets, packets from off the link (TTL below 255) and packets for no session
// are counted and dropped.
func TestServerDrops(t *testing.T) {
	s, f, _ := setup(t)
	to := s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	setTTL(t, far, 254)
	if _, err := far.WriteToUDPAddrPort((packet{state: Down, mult: 3, myDisc: 5}).marshal(), to); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{{1, 2, 3}, (packet{state: Up, mult: 3, myDisc: 5}).marshal()} {
		if _, err := f.conn.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.conn.WriteToUDPAddrPort((packet{state: Up, mult: 3, myDisc: 5, yourDisc: 12345}).marshal(), to); err != nil {
		t.Fatal(err)
	}
	until(t, "three malformed and one unknown", func() bool { return s.Stats.Malformed.Load() == 3 && s.Stats.Unknown.Load() == 1 })
	if s.Stats.Received.Load() != 0 {
		t.Errorf("received %d", s.Stats.Received.Load())
	}
}
