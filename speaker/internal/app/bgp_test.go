package app

import (
	"context"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/speaker/internal/bgp"
)

func TestSessionFor(t *testing.T) {
	p := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: 64513, PeerASN: 64512, PeerAddress: "2001:db8::1", PeerPort: 1179, SourceAddress: "2001:db8::11",
		HoldTime: &metav1.Duration{Duration: 9 * time.Second}, EBGPMultiHop: true,
		BFD:             &v1alpha1.BFDSettings{Enabled: true, ReceiveInterval: 300, TransmitInterval: 200, DetectMultiplier: 3},
		GracefulRestart: &v1alpha1.GracefulRestartSettings{Enabled: true}}}
	s, err := sessionFor(p, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "tor" || s.Address != netip.MustParseAddr("2001:db8::1") || s.Port != 1179 || s.Source != netip.MustParseAddr("2001:db8::11") ||
		s.Hold != 9*time.Second || !s.MultiHop || s.Password != "pw" || s.GracefulRestart != 120*time.Second ||
		s.BFD == nil || s.BFD.Receive != 300*time.Millisecond || s.BFD.Transmit != 200*time.Millisecond || s.BFD.Multiplier != 3 {
		t.Fatalf("session %+v (BFD %+v)", s, s.BFD)
	}
	p.Spec.BFD.Enabled = false
	p.Spec.PeerAddress = "not-an-ip"
	if _, err := sessionFor(p, ""); err == nil {
		t.Fatal("a bad address made a session")
	}
	p.Spec.PeerAddress = "192.0.2.1"
	if s, _ := sessionFor(p, ""); s.BFD != nil {
		t.Fatalf("BFD disabled but set: %+v", s.BFD)
	}
}

func TestBGPTableAnnounced(t *testing.T) {
	a5, a9, v6 := netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::5")
	routes := []planner.Route{
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Peers: []string{"down", "up"}, Addrs: []netip.Addr{a5, a9}},
		{Prefix: netip.MustParsePrefix("2001:db8::5/128"), Peers: []string{"down", "up"}, Addrs: []netip.Addr{v6}},
	}
	sessions := []bgp.Session{{Name: "up", Address: netip.MustParseAddr("192.0.2.1")}, {Name: "down", Address: netip.MustParseAddr("192.0.2.2")}}
	states := []bgp.SessionState{{Name: "up", Established: true}, {Name: "down"}}
	holders := map[netip.Addr][]string{a5: {"ns/a", "ns/b"}, a9: {"ns/a"}}
	tb := newBGPTable(routes, sessions)
	if want := tb.want(); len(want) != 1 || want[0].Prefix != routes[0].Prefix {
		t.Fatalf("routes for GoBGP %+v, want only the IPv4 one (no IPv6 session)", want)
	}
	if !tb.setStates(states, func(a netip.Addr) []string { return holders[a] }) {
		t.Fatal("the first states made nothing")
	}
	got := tb.announced
	if len(got) != 2 {
		t.Fatalf("announced %+v, want .5 and .9 only (the v6 route has no session of its family)", got)
	}
	if g := got[a5]; len(g.peers) != 1 || g.peers[0] != "up" || len(g.services) != 2 || g.services[0] != "ns/a" {
		t.Fatalf(".5: %+v", g)
	}
	if tb.setStates(states, func(a netip.Addr) []string { return holders[a] }) {
		t.Fatal("the same sessions up made announced again")
	}
	// An address in its own route and in an aggregate is announced to the sessions of both.
	set, withdraw, touched := tb.update([]netip.Prefix{netip.MustParsePrefix("203.0.113.5/32")}, func(p netip.Prefix) (planner.Route, bool) {
		return planner.Route{Prefix: p, Peers: []string{"down"}, Addrs: []netip.Addr{a5}}, true
	}, func(a netip.Addr) []string { return holders[a] })
	if len(set) != 1 || len(withdraw) != 0 || !slices.Equal(touched, []netip.Addr{a5}) {
		t.Fatalf("update: set %v withdraw %v touched %v", set, withdraw, touched)
	}
	tb.setStates([]bgp.SessionState{{Name: "up", Established: true}, {Name: "down", Established: true}}, func(a netip.Addr) []string { return holders[a] })
	if g := tb.announced[a5]; !slices.Equal(g.peers, []string{"down", "up"}) {
		t.Fatalf(".5 in two routes: %+v", g)
	}
	if g := tb.announced[a9]; !slices.Equal(g.peers, []string{"down", "up"}) {
		t.Fatalf(".9: %+v", g)
	}
}

// TestBGPTableIncrementalEqualsFull changes random prefixes and sessions' states step by step
// and checks that the table kept equals one made from scratch from the same routes.
func TestBGPTableIncrementalEqualsFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 15))
	sessions := []bgp.Session{{Name: "a", Address: netip.MustParseAddr("192.0.2.1")}, {Name: "b", Address: netip.MustParseAddr("192.0.2.2")},
		{Name: "c", Address: netip.MustParseAddr("2001:db8::1")}}
	peers := []string{"a", "b", "c", "gone"}
	holders := func(a netip.Addr) []string { return []string{"ns/" + a.String()} }
	prefixes := make([]netip.Prefix, 0, 40)
	for i := range 16 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32))
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}), 128))
	}
	for i := range 4 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i * 4)}), 30))
	}
	plan := map[netip.Prefix]planner.Route{}
	randomRoute := func(p netip.Prefix) planner.Route {
		r := planner.Route{Prefix: p}
		for _, peer := range peers {
			if rng.IntN(2) == 0 {
				r.Peers = append(r.Peers, peer)
			}
		}
		for a := p.Addr(); p.Contains(a); a = a.Next() {
			r.Addrs = append(r.Addrs, a)
		}
		if rng.IntN(3) == 0 {
			r.Communities = []string{"65000:" + strconv.Itoa(rng.IntN(3))}
		}
		return r
	}
	randomStates := func() []bgp.SessionState {
		var out []bgp.SessionState
		for _, ss := range sessions {
			out = append(out, bgp.SessionState{Name: ss.Name, Established: rng.IntN(3) > 0})
		}
		return out
	}
	states := randomStates()
	tb := newBGPTable(nil, sessions)
	tb.setStates(states, holders)
	for step := range 10000 {
		var changed []netip.Prefix
		for range 1 + rng.IntN(3) {
			p := prefixes[rng.IntN(len(prefixes))]
			if rng.IntN(3) == 0 {
				delete(plan, p)
			} else {
				plan[p] = randomRoute(p)
			}
			changed = append(changed, p)
		}
		set, withdraw, _ := tb.update(changed, func(p netip.Prefix) (planner.Route, bool) { r, ok := plan[p]; return r, ok }, holders)
		for _, r := range set {
			if slices.Contains(withdraw, r.Prefix) {
				t.Fatalf("step %d: %s both announced and withdrawn", step, r.Prefix)
			}
		}
		if rng.IntN(10) == 0 {
			states = randomStates()
			tb.setStates(states, holders)
		}
		full := newBGPTable(slices.SortedFunc(maps.Values(plan), func(a, b planner.Route) int { return comparePrefixes(a.Prefix, b.Prefix) }), sessions)
		full.setStates(states, holders)
		if !reflect.DeepEqual(tb.want(), full.want()) {
			t.Fatalf("step %d: routes kept %+v, made anew %+v", step, tb.want(), full.want())
		}
		for _, name := range peers {
			if tb.perSession[name] != full.perSession[name] {
				t.Fatalf("step %d: %s has %d routes kept, %d made anew", step, name, tb.perSession[name], full.perSession[name])
			}
		}
		if !reflect.DeepEqual(tb.announced, full.announced) {
			t.Fatalf("step %d: announced kept %+v, made anew %+v", step, tb.announced, full.announced)
		}
	}
}

func TestSettling(t *testing.T) {
	routes := []planner.Route{{Prefix: netip.MustParsePrefix("203.0.113.5/32"), Peers: []string{"v4"}}, {Prefix: netip.MustParsePrefix("2001:db8::5/128"), Peers: []string{"v4", "v6"}}}
	tb := newBGPTable(routes, []bgp.Session{{Name: "v4", Address: netip.MustParseAddr("192.0.2.1")}, {Name: "v6", Address: netip.MustParseAddr("2001:db8::1")}})
	done := []bgp.SessionState{{Name: "v4", Address: "192.0.2.1", Established: true, Advertised: 1}, {Name: "v6", Address: "2001:db8::1", Established: true, Advertised: 1, BFD: "Up"}}
	if tb.settling(done) {
		t.Fatal("settled sessions reported as settling")
	}
	for _, tc := range []struct {
		name string
		mut  func(*bgp.SessionState)
	}{
		{"still sending", func(s *bgp.SessionState) { s.Advertised = 0 }},
		{"queue not empty", func(s *bgp.SessionState) { s.OutQueue = 2 }},
		{"BFD coming up", func(s *bgp.SessionState) { s.BFD = "Init" }},
	} {
		st := []bgp.SessionState{done[0], done[1]}
		tc.mut(&st[1])
		if !tb.settling(st) {
			t.Errorf("%s: not settling", tc.name)
		}
	}
}

// The password outlives the API server: a failed read keeps the last password; a deleted
// Secret keeps it only for a session established with it; a Secret never read gives none.
func TestPasswordSurvivesOutages(t *testing.T) {
	ref := &v1alpha1.SecretKeyReference{Namespace: "ns", Name: "md5"}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "md5"}, Data: map[string][]byte{"password": []byte("s3cret\n")}}
	var down bool
	c := fake.NewClientBuilder().WithObjects(sec).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, o ...client.GetOption) error {
			if down {
				return apierrors.NewServiceUnavailable("the API server is away")
			}
			return c.Get(ctx, key, obj, o...)
		}}).Build()
	b := &bgpSide{secrets: c}
	expire := func() {
		for id, e := range b.cache {
			e.read = e.read.Add(-secretTTL)
			b.cache[id] = e
		}
	}
	type want struct {
		value         string
		reason        string
		idle, running bool // whether a session not established / established keeps going
	}
	check := func(step string, w want) {
		t.Helper()
		pw := b.password(t.Context(), ref)
		got := want{value: pw.value, reason: pw.reason, idle: pw.use(false), running: pw.use(true)}
		if pw.problem == nil {
			got.reason = ""
		}
		if got != w {
			t.Errorf("%s: got %+v, want %+v", step, got, w)
		}
	}
	check("read", want{value: "s3cret", idle: true, running: true})
	down = true
	expire()
	check("API server away", want{value: "s3cret", idle: true, running: true})
	down = false
	if err := c.Delete(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	check("within the TTL nothing is read", want{value: "s3cret", idle: true, running: true})
	expire()
	check("Secret deleted", want{value: "s3cret", reason: v1alpha1.SessionReasonSecretNotFound, running: true})
	sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "md5"}, Data: map[string][]byte{"password": []byte("n3w")}}
	if err := c.Create(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	for id, e := range b.cache {
		e.read = e.read.Add(-secretRetry)
		b.cache[id] = e
	}
	check("Secret created again, read after the retry, not the TTL", want{value: "n3w", idle: true, running: true})

	fresh := &bgpSide{secrets: c}
	down = true
	if pw := fresh.password(t.Context(), ref); pw.use(true) || pw.reason != v1alpha1.SessionReasonSecretNotFound {
		t.Errorf("never read, API server away: %+v", pw)
	}
	down = false
	if pw := fresh.password(t.Context(), ref); pw.use(false) {
		t.Errorf("read again within the retry: %+v", pw)
	}
	if pw := fresh.password(t.Context(), nil); !pw.use(false) || pw.value != "" {
		t.Errorf("no Secret referenced: %+v", pw)
	}
}

// A peer's problem shows on its session, and a skipped peer is listed with its problem.
func TestSessionStatusesWithProblems(t *testing.T) {
	got := sessionStatuses([]bgp.SessionState{{Name: "b", Address: "192.0.2.1", State: "Established"}},
		map[string]peerProblem{"b": {reason: v1alpha1.SessionReasonSecretNotFound, message: "gone"}, "a": {address: "192.0.2.9", reason: v1alpha1.SessionReasonInvalidPeer, message: "bad"}})
	want := []v1alpha1.BGPSessionStatus{
		{Peer: "a", Address: "192.0.2.9", Reason: v1alpha1.SessionReasonInvalidPeer, Message: "bad"},
		{Peer: "b", Address: "192.0.2.1", State: "Established", Reason: v1alpha1.SessionReasonSecretNotFound, Message: "gone"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statuses %+v, want %+v", got, want)
	}
}

// A deleted Secret keeps the session of a peer seen Established with its password, also
// when the session is not Established right now (a flap), but not a peer never Established
// with it; a peer no longer selected is forgotten.
func TestSessionsKeepEstablishedPasswords(t *testing.T) {
	ref := &v1alpha1.SecretKeyReference{Namespace: "ns", Name: "md5"}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "md5"}, Data: map[string][]byte{"password": []byte("s3cret")}}
	c := fake.NewClientBuilder().WithObjects(sec).Build()
	peer := func(name string) v1alpha1.BGPPeer {
		return v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BGPPeerSpec{
			MyASN: 64513, PeerASN: 64512, PeerAddress: "192.0.2.1", PasswordSecret: ref}}
	}
	w := planner.Objects{Peers: []v1alpha1.BGPPeer{peer("kept"), peer("new")}}
	in := planner.Input{Nodes: map[string]planner.Node{"n": {Name: "n"}},
		Peers: []planner.Peer{{Name: "kept", NodeSelectors: []labels.Selector{labels.Everything()}}, {Name: "new", NodeSelectors: []labels.Selector{labels.Everything()}}}}
	b := &bgpSide{node: "n", secrets: c, badPeers: func(string, error) {}}
	self := &corev1.Node{}
	sessions, _, problems := b.sessions(t.Context(), w, in, self)
	if len(sessions) != 2 || len(problems) != 0 {
		t.Fatalf("with the Secret: sessions %+v problems %+v", sessions, problems)
	}
	b.noteEstablished(sessions, []bgp.SessionState{{Name: "kept", Established: true}, {Name: "new"}})
	if err := c.Delete(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	for id, e := range b.cache {
		e.read = e.read.Add(-secretTTL)
		b.cache[id] = e
	}
	b.noteEstablished(sessions, nil) // a flap: nothing Established at this sync
	sessions, _, problems = b.sessions(t.Context(), w, in, self)
	if len(sessions) != 1 || sessions[0].Name != "kept" || sessions[0].Password != "s3cret" {
		t.Errorf("after the Secret went: sessions %+v, want only kept, on the last password", sessions)
	}
	if problems["kept"].reason != v1alpha1.SessionReasonSecretNotFound || problems["new"].reason != v1alpha1.SessionReasonSecretNotFound {
		t.Errorf("problems %+v", problems)
	}
	in.Peers = in.Peers[1:]
	b.sessions(t.Context(), w, in, self)
	if _, ok := b.establishedWith["kept"]; ok {
		t.Errorf("a peer no longer selected is remembered: %v", b.establishedWith)
	}
}
