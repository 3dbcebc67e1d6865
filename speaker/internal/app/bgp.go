package app

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/speaker/internal/bgp"
)

// secretTTL is how long a read password is used before the Secret is read again.
const secretTTL = 30 * time.Second

// secretRetry is how soon a Secret that could not be read is read again.
const secretRetry = 5 * time.Second

// secretReadTimeout bounds one read of a Secret, so an unreachable API server does not stall
// the plan loop.
const secretReadTimeout = 2 * time.Second

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
	// establishedWith is, per BGPPeer, the password its session was last seen Established
	// with: a Secret deleted later keeps that session (also across a flap), not another.
	establishedWith map[string]string
	// badPeers counts BGPPeers skipped (bad address, unreadable password).
	badPeers func(name string, err error)
	applied  appliedBGP
}

// appliedBGP is what the BGP side last gave GoBGP and read from it.
type appliedBGP struct {
	// sessions are the sessions applied; ok: GoBGP took the routes and sessions without error;
	// table the routes given, by prefix.
	sessions []bgp.Session
	ok       bool
	table    *bgpTable
	// states are the sessions' states as last read, at read, when the speaker's Events were
	// events.
	states []bgp.SessionState
	read   time.Time
	events uint64
	// changed is when routes were last given to GoBGP.
	changed time.Time
	// counts are the prefixes advertised per session, read at counted; uncounted: routes
	// were applied since.
	counts    map[string]int
	counted   time.Time
	uncounted bool
	// settling: the sessions had not sent every route, or BFD was coming up, at states.
	settling bool
}

// countInterval is how often the prefixes advertised are counted (SpeakerStatus is written at
// most once a second anyway).
const countInterval = time.Second

// stateInterval is how long the sessions' states read are used while GoBGP tells of no
// change of state (reading them walks GoBGP's table): their queues and counts may lag that
// long. It is also how long after the last change of routes the speaker counts as busy.
const stateInterval = 500 * time.Millisecond

// busyInterval is how often states and counts are read while routes keep changing (a burst
// of Services): the counts cost ~13 ms per session at 10,000 routes, and read every second
// through a burst whose length grows with the table they would grow with its square.
const busyInterval = 10 * time.Second

// cachedSecret is the last password read from a Secret. It outlives failed reads: an API
// server outage must not take down the sessions it protects.
type cachedSecret struct {
	value string
	// ok: value was read once; missing: the last read found no Secret or no key.
	ok, missing bool
	err         error
	read        time.Time
}

// peerProblem is what is wrong with a BGPPeer on this node, for SpeakerStatus.
type peerProblem struct {
	address         string
	reason, message string
}

// bgpResult is what the BGP side announces now and how its sessions stand.
type bgpResult struct {
	// announced are the addresses announced over an Established session; touched those whose
	// announcement may have changed since the last result, or every one when all.
	announced map[netip.Addr]announcement
	touched   []netip.Addr
	all       bool
	sessions  []bgp.SessionState
	// problems are by BGPPeer name: peers skipped, and peers running on a password whose
	// Secret is gone.
	problems map[string]peerProblem
	updates  uint64
	// bfdPackets: BFD packets read, accepted, malformed and for no session.
	bfdPackets [3]uint64
}

// sync applies the plan's BGP part for this node.
func (b *bgpSide) sync(ctx context.Context, w planner.Objects, in planner.Input, p bgpPlan, self *corev1.Node) bgpResult {
	sessions, routerID, problems := b.sessions(ctx, w, in, self)
	if len(sessions) == 0 {
		if b.sp != nil {
			b.log.Info("No BGP peers left; stopping BGP")
			b.close(ctx)
		}
		return bgpResult{problems: problems, all: true}
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
			return bgpResult{problems: problems, all: true}
		}
		b.sp, b.applied = sp, appliedBGP{}
	}
	touched, fresh := b.apply(ctx, p, sessions)
	b.readStates(ctx, fresh)
	res := bgpResult{sessions: slices.Clone(b.applied.states), updates: b.sp.Updates.Load(), problems: problems}
	res.bfdPackets[0], res.bfdPackets[1], res.bfdPackets[2] = b.sp.BFDStats()
	b.noteEstablished(sessions, res.sessions)
	res.all = b.applied.table.setStates(res.sessions, p.holders)
	if !res.all {
		res.touched = touched
	}
	b.applied.settling = b.applied.table.settling(res.sessions)
	// The counts in SpeakerStatus lag while updates go out, or were not read since the last
	// change: look again shortly.
	if (b.applied.uncounted || b.applied.settling) && b.recheck.CompareAndSwap(false, true) {
		time.AfterFunc(stateInterval, func() { b.recheck.Store(false); b.changed() })
	}
	res.announced = b.applied.table.announced
	return res
}

// apply gives GoBGP the plan: a new plan or new sessions the whole table (GoBGP changes only
// the difference), fresh; otherwise the prefixes the plan changed, if any, and the addresses
// whose announcement that touched.
func (b *bgpSide) apply(ctx context.Context, p bgpPlan, sessions []bgp.Session) (touched []netip.Addr, fresh bool) {
	fresh = !b.applied.ok || p.full || b.applied.table == nil || !reflect.DeepEqual(sessions, b.applied.sessions)
	var err error
	switch {
	case fresh:
		b.applied.sessions, b.applied.table = sessions, newBGPTable(p.routes(), sessions)
		err = b.sp.Apply(ctx, sessions, b.applied.table.want())
	case len(p.changed) > 0:
		var set []bgp.Route
		var withdraw []netip.Prefix
		set, withdraw, touched = b.applied.table.update(p.changed, p.route, p.holders)
		err = b.sp.Update(ctx, set, withdraw)
	default:
		return nil, false
	}
	if err != nil {
		b.log.Error(err, "Applying the BGP plan failed")
	}
	b.applied.ok, b.applied.uncounted, b.applied.changed = err == nil, true, time.Now()
	return touched, fresh
}

// readStates reads the sessions' states again when GoBGP told of a change, after a new
// table, and every stateInterval (a reading walks GoBGP's table). The counts of prefixes
// advertised cost a pass of the export policy over every path: read at most every
// countInterval, the last counts reported in between. While routes keep changing, both wait
// for a pause or for busyInterval.
func (b *bgpSide) readStates(ctx context.Context, fresh bool) {
	now := time.Now()
	busy := now.Sub(b.applied.changed) < stateInterval
	due := func(last time.Time, every time.Duration) bool {
		return now.Sub(last) >= every && (!busy || now.Sub(last) >= busyInterval)
	}
	counted := due(b.applied.counted, countInterval)
	events := b.sp.Events.Load()
	if !fresh && !counted && events == b.applied.events && !due(b.applied.read, stateInterval) {
		return
	}
	states := b.sp.State(ctx, counted)
	if counted {
		b.applied.counted, b.applied.counts, b.applied.uncounted = now, map[string]int{}, false
		for _, st := range states {
			b.applied.counts[st.Name] = st.Advertised
		}
	} else {
		for i := range states {
			states[i].Advertised = b.applied.counts[states[i].Name]
		}
	}
	b.applied.states, b.applied.read, b.applied.events = states, now, events
}

// sessions turns the BGPPeers this node peers with into sessions; a peer that cannot be used
// is reported and skipped. The router ID is the first peer's (by name) that sets one, else
// the node's IPv4 address, else one derived from the node's name.
func (b *bgpSide) sessions(ctx context.Context, w planner.Objects, in planner.Input, self *corev1.Node) ([]bgp.Session, netip.Addr, map[string]peerProblem) {
	byName := map[string]*v1alpha1.BGPPeer{}
	for i := range w.Peers {
		byName[w.Peers[i].Name] = &w.Peers[i]
	}
	var out []bgp.Session
	problems := map[string]peerProblem{}
	routerID := netip.Addr{}
	selected := planner.PeersFor(in, b.node)
	for _, name := range selected {
		p := byName[name]
		pw := b.password(ctx, p.Spec.PasswordSecret)
		with, was := b.establishedWith[name]
		if pw.problem != nil && !pw.use(was && with == pw.value) {
			problems[name] = peerProblem{address: p.Spec.PeerAddress, reason: pw.reason, message: pw.problem.Error()}
			b.badPeers(name, pw.problem)
			continue
		}
		s, err := sessionFor(p, pw.value)
		if err != nil {
			problems[name] = peerProblem{address: p.Spec.PeerAddress, reason: v1alpha1.SessionReasonInvalidPeer, message: err.Error()}
			b.badPeers(name, err)
			continue
		}
		if pw.problem != nil {
			// The session keeps the password it was established with.
			problems[name] = peerProblem{address: p.Spec.PeerAddress, reason: pw.reason,
				message: pw.problem.Error() + "; the established session keeps the last password read"}
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
	for name := range b.establishedWith {
		if !slices.Contains(selected, name) {
			delete(b.establishedWith, name) // the peer is gone for this node
		}
	}
	return out, routerID, problems
}

// noteEstablished remembers the password of every session Established now.
func (b *bgpSide) noteEstablished(sessions []bgp.Session, states []bgp.SessionState) {
	if b.establishedWith == nil {
		b.establishedWith = map[string]string{}
	}
	for _, st := range states {
		if !st.Established {
			continue
		}
		for _, ss := range sessions {
			if ss.Name == st.Name {
				b.establishedWith[st.Name] = ss.Password
			}
		}
	}
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

// secretPassword is a peer's password as far as it is known.
type secretPassword struct {
	value string
	// known: value was read at some time (it may be stale).
	known bool
	// problem is why the Secret gives no password now (nil: read fine), reason its kind.
	problem error
	reason  string
}

// use tells whether a peer with this password problem keeps its session. A Secret that
// cannot be read for a while (the API server is away) is no problem: the last password read
// stays (password clears the problem). A Secret that is gone keeps the last password only for
// a session established with it, so deleting the Secret never cuts a working session but a
// new session never starts on a password nobody can see any more.
func (p secretPassword) use(established bool) bool {
	switch {
	case p.problem == nil:
		return true
	case !p.known:
		return false
	default:
		return established
	}
}

// password reads a peer's MD5 password from its Secret, at most once per secretTTL, keeping
// the last one read through failed reads.
func (b *bgpSide) password(ctx context.Context, ref *v1alpha1.SecretKeyReference) secretPassword {
	if ref == nil {
		return secretPassword{known: true}
	}
	key := ref.Key
	if key == "" {
		key = "password"
	}
	id := ref.Namespace + "/" + ref.Name + "/" + key
	c, cached := b.cache[id]
	if !cached || time.Since(c.read) >= secretTTL {
		c = b.readSecret(ctx, ref, key, c)
		if b.cache == nil {
			b.cache = map[string]cachedSecret{}
		}
		b.cache[id] = c
	}
	pw := secretPassword{value: c.value, known: c.ok, problem: c.err}
	switch {
	case c.err == nil:
	case c.ok && !c.missing:
		pw.problem = nil // a passing outage: the last password is as good as ever
	default:
		// Gone, or never readable (forbidden, or the API server away since the start).
		pw.reason = v1alpha1.SessionReasonSecretNotFound
	}
	return pw
}

// readSecret reads a password Secret into the cache entry last.
func (b *bgpSide) readSecret(ctx context.Context, ref *v1alpha1.SecretKeyReference, key string, last cachedSecret) cachedSecret {
	c := cachedSecret{value: last.value, ok: last.ok, read: time.Now()}
	var sec corev1.Secret
	ctx, cancel := context.WithTimeout(ctx, secretReadTimeout)
	defer cancel()
	err := b.secrets.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &sec)
	switch {
	case apierrors.IsNotFound(err):
		c.err, c.missing = fmt.Errorf("password Secret %s/%s not found", ref.Namespace, ref.Name), true
	case err != nil:
		c.err = fmt.Errorf("reading password Secret %s/%s: %w", ref.Namespace, ref.Name, err)
	default:
		v, ok := sec.Data[key]
		if !ok || len(v) == 0 {
			c.err, c.missing = fmt.Errorf("password Secret %s/%s has no key %q", ref.Namespace, ref.Name, key), true
		} else {
			c.value, c.ok = strings.TrimRight(string(v), "\n"), true
		}
	}
	if c.err != nil {
		// Try again soon rather than after a whole TTL: a Secret created (again) after its
		// BGPPeer is used within secretRetry.
		c.read = c.read.Add(-secretTTL + secretRetry)
	}
	return c
}

// stop takes the node's routes away before the speaker exits. For a restart (the node stays)
// with graceful restart on every session, the routers keep them instead: the connections
// close without a NOTIFICATION and the routers go on forwarding by the stale routes until
// the restarted speaker has sent its own (or the restart time ends).
func (b *bgpSide) stop(ctx context.Context, restart bool) {
	if b.sp == nil {
		return
	}
	sessions := b.sp.Sessions()
	graceful := restart && len(sessions) > 0
	for _, s := range sessions {
		graceful = graceful && s.GracefulRestart > 0
	}
	if graceful {
		b.log.Info("Leaving the routes to graceful restart", "sessions", len(sessions))
		b.sp.Close(ctx, false)
		b.sp, b.applied = nil, appliedBGP{}
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
	b.sp, b.applied = nil, appliedBGP{}
}

// sessionStatuses are the sessions as SpeakerStatus shows them.
func sessionStatuses(states []bgp.SessionState, problems map[string]peerProblem) []v1alpha1.BGPSessionStatus {
	out := make([]v1alpha1.BGPSessionStatus, 0, len(states))
	for _, st := range states {
		s := v1alpha1.BGPSessionStatus{Peer: st.Name, Address: st.Address, State: st.State, BFD: st.BFD, Advertised: int32(st.Advertised)}
		if p, ok := problems[st.Name]; ok {
			s.Reason, s.Message = p.reason, p.message
		}
		out = append(out, s)
	}
	for _, name := range slices.Sorted(maps.Keys(problems)) {
		if !slices.ContainsFunc(out, func(s v1alpha1.BGPSessionStatus) bool { return s.Peer == name }) {
			p := problems[name]
			out = append(out, v1alpha1.BGPSessionStatus{Peer: name, Address: p.address, Reason: p.reason, Message: p.message})
		}
	}
	slices.SortFunc(out, func(a, b v1alpha1.BGPSessionStatus) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}
