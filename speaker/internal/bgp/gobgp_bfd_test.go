package bgp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/vishvananda/netlink"
)

const (
	// bfdNetnsEnv marks the copy of the test binary that runs inside a network namespace of
	// its own, where port 3784 is free on every address and nothing leaves loopback.
	bfdNetnsEnv = "VIPCAST_GOBGP_BFD_NETNS"
	// bfdChildTimeout bounds one scenario, GoBGP's start and BGP's first connect included.
	bfdChildTimeout = 3 * time.Minute
	// GoBGP's side and the fake router's side of the namespace's loopback.
	gobgpAddr  = "127.0.0.1"
	routerAddr = "127.0.0.2"
	bfdPort    = 3784
	// bfdMicros is GoBGP's BFD transmit and receive interval, vipcast's 300 ms x 3.
	bfdMicros = 300_000
	// routerResend is how often the fake router repeats a packet.
	routerResend = 100 * time.Millisecond
	// Session A is the router's first BFD session, B the one that replaces it (as FRR's
	// bfdd does when bgpd re-registers the session once BGP is up).
	sessionA = 0xa0a0a0a0
	sessionB = 0xb0b0b0b0
)

// TestGoBGPBFDv480Bugs pins the behaviour of the dependency that made vipcast run its own
// BFD: GoBGP v4.8.0's BFD (pkg/server/bfd_peer.go) ignores a router that replaces its
// session, and resets BGP when a session that never came Up times out. If it fails because
// GoBGP now behaves correctly, GoBGP's BFD could be used again.
//
// Each scenario runs GoBGP against a fake router, a UDP socket on 127.0.0.2:3784 that sends
// hand-made BFD control packets and records GoBGP's. GoBGP's BFD listens on :3784 and sends
// to port 3784 of its peer, so the test binary re-runs itself, one scenario at a time, in a
// network namespace of its own (root only).
func TestGoBGPBFDv480Bugs(t *testing.T) {
	bugs := []struct {
		name string
		run  func(*testing.T)
	}{
		{"pinned_discriminator", testPinnedDiscriminator},
		{"reset_from_init", testResetFromInit},
	}
	inNetns := os.Getenv(bfdNetnsEnv) == "1"
	if !inNetns && os.Geteuid() != 0 {
		t.Skip("needs root: the scenarios run in a network namespace of their own (port 3784 on two loopback addresses)")
	}
	if inNetns {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			t.Fatal(err)
		}
	}
	for _, bug := range bugs {
		t.Run(bug.name, func(t *testing.T) {
			if inNetns {
				bug.run(t)
				return
			}
			runInOwnNetns(t)
		})
	}
}

// runInOwnNetns re-runs the test binary for this subtest only, in a new network namespace
// that disappears with the process.
func runInOwnNetns(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), bfdChildTimeout+30*time.Second)
	defer cancel()
	top, sub, _ := strings.Cut(t.Name(), "/")
	cmd := exec.CommandContext(ctx, self, "-test.run=^"+regexp.QuoteMeta(top)+"$/^"+regexp.QuoteMeta(sub)+"$",
		"-test.count=1", "-test.v", "-test.timeout="+bfdChildTimeout.String())
	cmd.Env = append(os.Environ(), bfdNetnsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	t.Logf("in its own network namespace:\n%s", out)
	if err != nil {
		t.Fatalf("%s in its own network namespace: %v", t.Name(), err)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("%s did not run in its own network namespace", t.Name())
	}
}

// testPinnedDiscriminator is bug 1: once GoBGP's session is bound to the router's session A,
// it drops every packet of the router's new session B (Down, Your Discriminator 0), and keeps
// sending Init to A for as long as its session lasts. RFC 5880 6.8.6 takes bfd.RemoteDiscr
// from every accepted packet: a correct implementation would send Init to B, get B's Up and
// come Up (the fake router answers Init to B with Up).
func testPinnedDiscriminator(t *testing.T) {
	router := newFakeRouter(t)
	srv, _ := startGoBGP(t)
	addRouter(t, srv, true)
	// A announces a Detection Time of 3 x 1000 s: GoBGP's Init session outlasts the test,
	// which keeps bug 2 (a reset and a fresh session after the expiry) out of this scenario.
	downA := bfdPacket{State: bfdDown, Mult: 3, My: sessionA, MinTx: 1_000_000_000, MinRx: bfdMicros}
	stopA := router.repeat(t, downA)
	eventually(t, "GoBGP's session in Init, sending to A", func() error {
		if st := bfdSessionState(t, srv); st != api.BfdSessionState_BFD_SESSION_STATE_INIT {
			return fmt.Errorf("GoBGP's session is %v", st)
		}
		if p := router.last(); p.State != bfdInit || p.Your != sessionA {
			return fmt.Errorf("GoBGP last sent %v", p)
		}
		return nil
	})
	sentA := stopA()

	router.answerInitTo(sessionB)
	mark := len(router.packets())
	before := srv.GetBfdServerStats().ReceivedPacket
	router.repeat(t, bfdPacket{State: bfdDown, Mult: 3, My: sessionB, MinTx: 1_000_000, MinRx: bfdMicros})
	eventually(t, "GoBGP's BFD server handing 10 of B's packets to the session", func() error {
		if n := srv.GetBfdServerStats().ReceivedPacket - before; n < 10 {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	// The server has handed the session at least nine of B's packets (its queue holds one),
	// so GoBGP built its packet number txSeen+2 after the session had processed eight of
	// them; every packet GoBGP sends reaches the router's socket, in order.
	txSeen := bfdSession(t, srv).GetBfdAsync().GetTransmittedPackets()
	eventually(t, "two more packets from GoBGP", func() error {
		if n := uint64(len(router.packets())); n < txSeen+2 {
			return fmt.Errorf("%d of %d", n, txSeen+2)
		}
		return nil
	})

	st := bfdSession(t, srv)
	if st.GetSessionState() == api.BfdSessionState_BFD_SESSION_STATE_UP {
		t.Errorf("GoBGP's session came Up with the router's new session B: GoBGP follows a new remote discriminator now")
	}
	if rx := st.GetBfdAsync().GetReceivedPackets(); rx > uint64(sentA) {
		t.Errorf("GoBGP's session accepted %d packets, the router sent only %d from A: it accepted B's", rx, sentA)
	}
	after := router.packets()[mark:]
	if i := slices.IndexFunc(after, func(p bfdPacket) bool { return p.State != bfdInit || p.Your != sessionA }); i >= 0 {
		t.Errorf("after the router's switch to B GoBGP sent %v (v4.8.0 keeps sending Init to A): GoBGP follows a new remote discriminator now", after[i:])
	}
	t.Logf("the router sent %d Down from A, then Down from B (%v); GoBGP accepted %d, its session is %v, and its last %d packets were all %v",
		sentA, bfdPacket{State: bfdDown, My: sessionB}, st.GetBfdAsync().GetReceivedPackets(), st.GetSessionState(), len(after), after[len(after)-1])
}

// testResetFromInit is bug 2: a BFD session that never came Up expires from Init, and GoBGP
// resets the BGP session ("BFD is down"), which RFC 5882 4.3 forbids.
func testResetFromInit(t *testing.T) {
	router := newFakeRouter(t)
	// The BGP peer is a second GoBGP on the router's address. Its BFD stays off, so it never
	// binds 3784: that port on 127.0.0.2 is the fake router's.
	newReceiver(t, routerAddr, 179, 64513)
	srv, logs := startGoBGP(t)
	states := watchSession(t, srv)
	addRouter(t, srv, false)
	eventually(t, "BGP Established", func() error {
		if !slices.ContainsFunc(states.all(), func(s apiutil.PeerState) bool { return s.SessionState == bgp.BGP_FSM_ESTABLISHED }) {
			return fmt.Errorf("BGP went %v", states.all())
		}
		return nil
	})

	// The router's session sends Down (Detection Time 3 x 300 ms) until GoBGP's is in Init,
	// then goes silent. The router never sends Init or Up, so GoBGP cannot come Up.
	stop := router.repeat(t, bfdPacket{State: bfdDown, Mult: 3, My: sessionA, MinTx: bfdMicros, MinRx: bfdMicros})
	eventually(t, "GoBGP's session in Init", func() error {
		if st := bfdSessionState(t, srv); st != api.BfdSessionState_BFD_SESSION_STATE_INIT {
			return fmt.Errorf("GoBGP's session is %v", st)
		}
		return nil
	})
	stop()

	eventually(t, "GoBGP resetting BGP with \"BFD is down\" (v4.8.0 does; if it no longer does, GoBGP is correct now)", func() error {
		if !logs.has("sent notification", "Communicated-Reason", "BFD is down") {
			return errors.New("no notification sent")
		}
		if !logs.has("Expired", "Topic", "bfd") {
			return errors.New("no BFD expiry logged")
		}
		return nil
	})
	var down apiutil.PeerState
	eventually(t, "BGP leaving Established after the notification", func() error {
		all := states.all()
		up := slices.IndexFunc(all, func(s apiutil.PeerState) bool { return s.SessionState == bgp.BGP_FSM_ESTABLISHED })
		for _, s := range all[up+1:] {
			if s.SessionState != bgp.BGP_FSM_ESTABLISHED {
				down = s
				return nil
			}
		}
		return fmt.Errorf("BGP went %v", all)
	})
	if down.DisconnectReason != api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT {
		t.Errorf("BGP left Established because of %v (%s), want the notification GoBGP sent", down.DisconnectReason, down.DisconnectMessage)
	}
	for _, p := range router.packets() {
		if p.State == bfdUp {
			t.Fatalf("GoBGP sent %v: its session came Up, so the reset proves nothing", p)
		}
	}
	t.Logf("GoBGP's BFD session went Init and never Up; it expired, GoBGP sent Cease \"BFD is down\" and BGP went %v (%s)", down.SessionState, down.DisconnectMessage)
}

// bfdState is the State field of a BFD control packet (RFC 5880 4.1).
type bfdState uint8

const (
	bfdAdminDown bfdState = iota
	bfdDown
	bfdInit
	bfdUp
)

func (s bfdState) String() string { return [...]string{"AdminDown", "Down", "Init", "Up"}[s&3] }

// bfdPacket is a BFD control packet without authentication: the 24 bytes of RFC 5880 4.1.
type bfdPacket struct {
	State        bfdState
	Poll, Final  bool
	Mult         uint8
	My, Your     uint32
	MinTx, MinRx uint32 // microseconds
}

func (p bfdPacket) marshal() []byte {
	b := make([]byte, 24)
	b[0] = 1 << 5 // version 1, no diagnostic
	b[1] = byte(p.State) << 6
	if p.Poll {
		b[1] |= 1 << 5
	}
	if p.Final {
		b[1] |= 1 << 4
	}
	b[2] = p.Mult
	b[3] = 24
	binary.BigEndian.PutUint32(b[4:], p.My)
	binary.BigEndian.PutUint32(b[8:], p.Your)
	binary.BigEndian.PutUint32(b[12:], p.MinTx)
	binary.BigEndian.PutUint32(b[16:], p.MinRx)
	return b
}

func parseBFD(b []byte) (bfdPacket, error) {
	if len(b) < 24 || int(b[3]) != len(b) || b[0]>>5 != 1 {
		return bfdPacket{}, fmt.Errorf("not a BFD control packet: % x", b)
	}
	return bfdPacket{State: bfdState(b[1] >> 6), Poll: b[1]&(1<<5) != 0, Final: b[1]&(1<<4) != 0, Mult: b[2],
		My: binary.BigEndian.Uint32(b[4:]), Your: binary.BigEndian.Uint32(b[8:]),
		MinTx: binary.BigEndian.Uint32(b[12:]), MinRx: binary.BigEndian.Uint32(b[16:])}, nil
}

func (p bfdPacket) String() string {
	s := fmt.Sprintf("%v My=%#x Your=%#x", p.State, p.My, p.Your)
	if p.Poll {
		s += " Poll"
	}
	if p.Final {
		s += " Final"
	}
	return s
}

// fakeRouter is the router's side of BFD on 127.0.0.2:3784: it sends what the test says and
// records what GoBGP sends. Like a correct peer it answers Init sent to answerTo with Up.
type fakeRouter struct {
	conn     *net.UDPConn
	gobgp    *net.UDPAddr
	mu       sync.Mutex
	got      []bfdPacket
	answerTo uint32
}

func newFakeRouter(t *testing.T) *fakeRouter {
	t.Helper()
	// GoBGP's BFD server binds :3784 with SO_REUSEADDR; sharing the port takes the option on
	// both sockets, and packets to 127.0.0.2 go to the more specific bind, this one.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(t.Context(), "udp4", net.JoinHostPort(routerAddr, fmt.Sprint(bfdPort)))
	if err != nil {
		t.Fatal(err)
	}
	r := &fakeRouter{conn: pc.(*net.UDPConn), gobgp: &net.UDPAddr{IP: net.ParseIP(gobgpAddr), Port: bfdPort}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.read(t)
	}()
	t.Cleanup(func() {
		_ = r.conn.Close()
		<-done
	})
	return r
}

func (r *fakeRouter) read(t *testing.T) {
	buf := make([]byte, 256)
	for {
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p, err := parseBFD(buf[:n])
		if err != nil {
			t.Errorf("from GoBGP: %v", err)
			continue
		}
		r.mu.Lock()
		r.got = append(r.got, p)
		answer := r.answerTo != 0 && p.State == bfdInit && p.Your == r.answerTo
		r.mu.Unlock()
		if answer {
			if err := r.send(bfdPacket{State: bfdUp, Mult: 3, My: p.Your, Your: p.My, MinTx: bfdMicros, MinRx: bfdMicros}); err != nil {
				t.Errorf("answering %v: %v", p, err)
			}
		}
	}
}

func (r *fakeRouter) send(p bfdPacket) error {
	_, err := r.conn.WriteToUDP(p.marshal(), r.gobgp)
	return err
}

// repeat sends p every routerResend until stop, which returns how many it sent.
func (r *fakeRouter) repeat(t *testing.T, p bfdPacket) (stop func() int) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	sent := 0
	go func() {
		defer close(done)
		tick := time.NewTicker(routerResend)
		defer tick.Stop()
		for {
			if err := r.send(p); err != nil {
				t.Errorf("sending %v: %v", p, err)
				return
			}
			sent++
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	stop = func() int {
		cancel()
		<-done
		return sent
	}
	t.Cleanup(func() { stop() })
	return stop
}

func (r *fakeRouter) answerInitTo(discr uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answerTo = discr
}

func (r *fakeRouter) packets() []bfdPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *fakeRouter) last() bfdPacket {
	got := r.packets()
	if len(got) == 0 {
		return bfdPacket{}
	}
	return got[len(got)-1]
}

// startGoBGP runs GoBGP on 127.0.0.1, listening nowhere, and records its log.
func startGoBGP(t *testing.T) (*server.BgpServer, *logRecorder) {
	t.Helper()
	logs := &logRecorder{}
	level := new(slog.LevelVar)
	level.Set(slog.LevelDebug)
	srv := server.NewBgpServer(server.LoggerOption(slog.New(recordHandler{rec: logs}), level))
	go srv.Serve()
	t.Cleanup(srv.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range logs.all() {
				t.Logf("GoBGP: %s %v", r.msg, r.attrs)
			}
		}
	})
	if err := srv.StartBgp(t.Context(), &api.StartBgpRequest{Global: &api.Global{Asn: 64513, RouterId: gobgpAddr, ListenPort: -1}}); err != nil {
		t.Fatal(err)
	}
	return srv, logs
}

// addRouter makes the router on 127.0.0.2 GoBGP's peer, with BFD at 300 ms x 3.
func addRouter(t *testing.T, srv *server.BgpServer, passive bool) {
	t.Helper()
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: routerAddr, PeerAsn: 64512},
		Transport: &api.Transport{PassiveMode: passive, LocalAddress: gobgpAddr},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Enabled: true,
			Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}}}},
		Bfd: &api.BfdPeerConfig{Enabled: true, DesiredMinimumTxInterval: bfdMicros, RequiredMinimumReceive: bfdMicros, DetectionMultiplier: 3},
	}
	if err := srv.AddPeer(t.Context(), &api.AddPeerRequest{Peer: peer}); err != nil {
		t.Fatal(err)
	}
}

// bfdSession is GoBGP's BFD session with the router, nil before GoBGP has set it up.
func bfdSession(t *testing.T, srv *server.BgpServer) *api.BfdPeerState {
	var st *api.BfdPeerState
	srv.ListBfdPeer(t.Context(), func(addr string, s *api.BfdPeerState) {
		if addr == routerAddr {
			st = s
		}
	})
	return st
}

func bfdSessionState(t *testing.T, srv *server.BgpServer) api.BfdSessionState {
	return bfdSession(t, srv).GetSessionState()
}

// bgpStateLog holds the states GoBGP's BGP session with the router went through.
type bgpStateLog struct {
	mu     sync.Mutex
	states []apiutil.PeerState
}

func watchSession(t *testing.T, srv *server.BgpServer) *bgpStateLog {
	t.Helper()
	s := &bgpStateLog{}
	err := srv.WatchEvent(t.Context(), server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			if ev.Type != apiutil.PEER_EVENT_STATE || ev.Peer.State.NeighborAddress.String() != routerAddr {
				return
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			s.states = append(s.states, ev.Peer.State)
		},
	}, server.WatchPeer())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *bgpStateLog) all() []apiutil.PeerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.states)
}

// logRecorder keeps GoBGP's log records for the assertions.
type logRecorder struct {
	mu   sync.Mutex
	recs []logRecord
}

type logRecord struct {
	msg   string
	attrs map[string]string
}

func (l *logRecorder) all() []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.recs)
}

func (l *logRecorder) has(msg, key, value string) bool {
	return slices.ContainsFunc(l.all(), func(r logRecord) bool { return r.msg == msg && r.attrs[key] == value })
}

type recordHandler struct {
	rec   *logRecorder
	attrs []slog.Attr
}

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]string{}
	for _, a := range h.attrs {
		attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	h.rec.recs = append(h.rec.recs, logRecord{msg: r.Message, attrs: attrs})
	return nil
}

func (h recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return recordHandler{rec: h.rec, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h recordHandler) WithGroup(string) slog.Handler { return h }
