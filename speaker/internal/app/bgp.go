package app

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/speaker/internal/bgp"
)

// secretTTL is how long a read password is used before the Secret is read again.
const secretTTL = 30 * time.Second

// bgpSide runs the node's BGP speaker: created with the first session, its sessions and
// routes follow the plan.
type bgpSide struct {
	node    string
	log     logr.Logger
	secrets client.Reader
	changed func()
	sp      *bgp.Speaker
	cache   map[string]cachedSecret
	recheck atomic.Bool
	// badPeers counts BGPPeers skipped (bad address, unreadable password).
	badPeers func(name string, err error)
}

type cachedSecret struct {
	value string
	err   error
	read  time.Time
}

// bgpResult is what the BGP side announces now and how its sessions stand.
type bgpResult struct {
	announced map[netip.Addr]announcement
	sessions  []bgp.SessionState
	updates   uint64
}

// sync applies the plan's BGP part for this node.
func (b *bgpSide) sync(ctx context.Context, w planner.Objects, in planner.Input, self *corev1.Node) bgpResult {
	sessions, routerID := b.sessions(ctx, w, in, self)
	if len(sessions) == 0 {
		if b.sp != nil {
			b.log.Info("No BGP peers left; stopping BGP")
			b.close(ctx)
		}
		return bgpResult{}
	}
	asn := sessions[0].MyASN
	// Each session carries its own ASN; the server's own only matters at start.
	if b.sp == nil || b.sp.RouterID != routerID {
		if b.sp != nil {
			b.log.Info("Restarting BGP for a new router ID", "routerID", routerID.String())
			b.close(ctx)
		}
		sp, err := bgp.New(b.log, routerID, asn, b.changed)
		if err != nil {
			b.log.Error(err, "Starting BGP failed")
			return bgpResult{}
		}
		b.sp = sp
	}
	// A session carries the family of its peer's address only.
	v4 := map[string]bool{}
	for _, ss := range sessions {
		v4[ss.Name] = ss.Address.Is4()
	}
	routes := planner.BGPFor(in, b.node)
	for i := range routes {
		r := &routes[i]
		r.Peers = slices.DeleteFunc(r.Peers, func(p string) bool { is4, ok := v4[p]; return !ok || is4 != r.Prefix.Addr().Is4() })
	}
	routes = slices.DeleteFunc(routes, func(r planner.Route) bool { return len(r.Peers) == 0 })
	want := make([]bgp.Route, 0, len(routes))
	for _, r := range routes {
		want = append(want, bgp.Route{Prefix: r.Prefix, NextHop: nodeAddress(self, r.Prefix.Addr().Is4()),
			Communities: r.Communities, LocalPref: r.LocalPref, Peers: r.Peers})
	}
	if err := b.sp.Apply(ctx, sessions, want); err != nil {
		b.log.Error(err, "Applying the BGP plan failed")
	}
	res := bgpResult{sessions: b.sp.State(ctx), updates: b.sp.Updates.Load()}
	res.announced = announcedOverBGP(routes, res.sessions, in.Services)
	if settling(want, res.sessions) && b.recheck.CompareAndSwap(false, true) {
		// The counts in SpeakerStatus lag while updates go out: look again shortly.
		time.AfterFunc(500*time.Millisecond, func() { b.recheck.Store(false); b.changed() })
	}
	return res
}

// settling reports whether an established session has not been sent all its routes yet or
// its BFD session is still coming up (GoBGP tells of neither).
func settling(routes []bgp.Route, states []bgp.SessionState) bool {
	for _, st := range states {
		if !st.Established {
			continue
		}
		if st.BFD != "" && st.BFD != "Up" {
			return true
		}
		addr, err := netip.ParseAddr(st.Address)
		if err != nil {
			continue
		}
		n := 0
		for _, r := range routes {
			if slices.Contains(r.Peers, st.Name) && r.Prefix.Addr().Is4() == addr.Is4() {
				n++
			}
		}
		if st.OutQueue > 0 || st.Advertised != n {
			return true
		}
	}
	return false
}

// announcedOverBGP lists the addresses a route carries on at least one established session.
func announcedOverBGP(routes []planner.Route, states []bgp.SessionState, svcs []planner.Service) map[netip.Addr]announcement {
	up := map[string]bool{}
	for _, st := range states {
		up[st.Name] = st.Established
	}
	holders := map[netip.Addr][]string{}
	for _, s := range svcs {
		for _, ip := range s.IPs {
			holders[ip.Addr] = append(holders[ip.Addr], s.Key)
		}
	}
	out := map[netip.Addr]announcement{}
	for _, r := range routes {
		peers := slices.DeleteFunc(slices.Clone(r.Peers), func(p string) bool { return !up[p] })
		if len(peers) == 0 {
			continue
		}
		for _, a := range r.Addrs {
			an := announcement{mode: v1alpha1.ModeBGP, services: slices.Sorted(slices.Values(holders[a])), peers: peers}
			if r.Prefix.Bits() != a.BitLen() {
				an.prefix = r.Prefix.String()
			}
			out[a] = an
		}
	}
	return out
}

// sessions turns the BGPPeers this node peers with into sessions; a peer that cannot be used
// is reported and skipped. The router ID is the first peer's (by name) that sets one, else
// the node's IPv4 address, else one derived from the node's name.
func (b *bgpSide) sessions(ctx context.Context, w planner.Objects, in planner.Input, self *corev1.Node) ([]bgp.Session, netip.Addr) {
	byName := map[string]*v1alpha1.BGPPeer{}
	for i := range w.Peers {
		byName[w.Peers[i].Name] = &w.Peers[i]
	}
	var out []bgp.Session
	routerID := netip.Addr{}
	for _, name := range planner.PeersFor(in, b.node) {
		p := byName[name]
		password, err := b.password(ctx, p.Spec.PasswordSecret)
		if err != nil {
			b.badPeers(name, err)
			continue
		}
		s, err := sessionFor(p, password)
		if err != nil {
			b.badPeers(name, err)
			continue
		}
		if id, err := netip.ParseAddr(p.Spec.RouterID); err == nil && !routerID.IsValid() {
			routerID = id
		}
		out = append(out, s)
	}
	if !routerID.IsValid() {
		routerID = nodeAddress(self, true)
	}
	if !routerID.IsValid() {
		routerID = derivedRouterID(b.node)
	}
	return out, routerID
}

// derivedRouterID is a stable router ID for a node without an IPv4 address.
func derivedRouterID(node string) netip.Addr {
	h := fnv.New32a()
	_, _ = h.Write([]byte(node))
	v := h.Sum32() | 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// sessionFor is the session a BGPPeer describes.
func sessionFor(p *v1alpha1.BGPPeer, password string) (bgp.Session, error) {
	addr, err := netip.ParseAddr(p.Spec.PeerAddress)
	if err != nil {
		return bgp.Session{}, fmt.Errorf("peerAddress: %w", err)
	}
	s := bgp.Session{Name: p.Name, Address: addr, Port: uint16(p.Spec.PeerPort), MyASN: p.Spec.MyASN, PeerASN: p.Spec.PeerASN,
		MultiHop: p.Spec.EBGPMultiHop, Password: password}
	if p.Spec.SourceAddress != "" {
		if s.Source, err = netip.ParseAddr(p.Spec.SourceAddress); err != nil {
			return s, fmt.Errorf("sourceAddress: %w", err)
		}
	}
	dur := func(d *metav1.Duration) time.Duration {
		if d == nil {
			return 0
		}
		return d.Duration
	}
	s.Hold, s.Keepalive, s.ConnectRetry = dur(p.Spec.HoldTime), dur(p.Spec.KeepaliveTime), dur(p.Spec.ConnectTime)
	if f := p.Spec.BFD; f != nil && f.Enabled {
		s.BFD = &bgp.BFD{Receive: time.Duration(f.ReceiveInterval) * time.Millisecond,
			Transmit: time.Duration(f.TransmitInterval) * time.Millisecond, Multiplier: uint32(f.DetectMultiplier)}
	}
	if g := p.Spec.GracefulRestart; g != nil && g.Enabled {
		s.GracefulRestart = 120 * time.Second
		if g.RestartTime != nil {
			s.GracefulRestart = g.RestartTime.Duration
		}
	}
	return s, nil
}

// password reads a peer's MD5 password from its Secret, at most once per secretTTL.
func (b *bgpSide) password(ctx context.Context, ref *v1alpha1.SecretKeyReference) (string, error) {
	if ref == nil {
		return "", nil
	}
	key := ref.Key
	if key == "" {
		key = "password"
	}
	id := ref.Namespace + "/" + ref.Name + "/" + key
	if c, ok := b.cache[id]; ok && time.Since(c.read) < secretTTL {
		return c.value, c.err
	}
	var sec corev1.Secret
	c := cachedSecret{read: time.Now()}
	if err := b.secrets.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &sec); err != nil {
		c.err = fmt.Errorf("reading password Secret %s/%s: %w", ref.Namespace, ref.Name, err)
	} else if v, ok := sec.Data[key]; !ok || len(v) == 0 {
		c.err = fmt.Errorf("password Secret %s/%s has no key %q", ref.Namespace, ref.Name, key)
	} else {
		c.value = strings.TrimRight(string(v), "\n")
	}
	if b.cache == nil {
		b.cache = map[string]cachedSecret{}
	}
	b.cache[id] = c
	return c.value, c.err
}

// stop takes the node's routes away before the speaker exits. Sessions with graceful
// restart keep them at the router instead: the connections just close and the router keeps
// forwarding until the speaker is back.
func (b *bgpSide) stop(ctx context.Context) {
	if b.sp == nil {
		return
	}
	graceful := true
	for _, s := range b.sp.Sessions() {
		graceful = graceful && s.GracefulRestart > 0
	}
	if graceful && len(b.sp.Sessions()) > 0 {
		b.log.Info("Leaving the routes to graceful restart")
		b.sp.Close(ctx, false)
		return
	}
	b.close(ctx)
}

// close withdraws everything, waits until the peers were sent the withdrawals, and stops.
func (b *bgpSide) close(ctx context.Context) {
	start := time.Now()
	if err := b.sp.Withdraw(ctx); err != nil && !errors.Is(err, context.Canceled) {
		b.log.Error(err, "Withdrawing routes failed")
	}
	b.sp.Close(ctx, true)
	b.log.Info("Withdrew BGP routes", "took", time.Since(start).String())
	b.sp = nil
}

// sessionStatuses are the sessions as SpeakerStatus shows them.
func sessionStatuses(states []bgp.SessionState) []v1alpha1.BGPSessionStatus {
	out := make([]v1alpha1.BGPSessionStatus, 0, len(states))
	for _, st := range states {
		out = append(out, v1alpha1.BGPSessionStatus{Peer: st.Name, Address: st.Address, State: st.State, BFD: st.BFD, Advertised: int32(st.Advertised)})
	}
	return out
}
