package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// receiver is a second GoBGP server on a loopback address that accepts the speaker's session
// and shows what it learnt.
type receiver struct {
	srv  *server.BgpServer
	addr netip.Addr
	port uint16
}

func newReceiver(t *testing.T, addr string, port uint16, peerASN uint32) *receiver {
	return newReceiverB(t, addr, port, peerASN)
}

func newReceiverB(t testing.TB, addr string, port uint16, peerASN uint32) *receiver {
	t.Helper()
	srv := server.NewBgpServer()
	go srv.Serve()
	t.Cleanup(srv.Stop)
	ctx := t.Context()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 64512, RouterId: addr,
		ListenPort: int32(port), ListenAddresses: []string{addr}}}); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []bgp.Family{bgp.RF_IPv4_UC} {
		peer := &api.Peer{
			Conf:      &api.PeerConf{NeighborAddress: "127.0.0.1", PeerAsn: peerASN},
			Transport: &api.Transport{PassiveMode: true},
			AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_Afi(fam.Afi()), Safi: api.Family_Safi(fam.Safi())}, Enabled: true}}},
		}
		err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer})
		if err != nil {
			t.Fatal(err)
		}
	}
	return &receiver{srv: srv, addr: netip.MustParseAddr(addr), port: port}
}

// routes are the prefixes the receiver learnt, with their communities, local-pref, next hop
// (when asked) and whether they are stale. (Graceful restart is tested against FRR and BIRD
// in the lab: GoBGP as the receiving speaker races on its stale marking under -race.)
func (r *receiver) routes(t *testing.T) map[string]string { return r.routesWith(t, false) }

func (r *receiver) routesWith(t *testing.T, nextHops bool) map[string]string {
	out := map[string]string{}
	err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_IPv4_UC},
		func(prefix bgp.NLRI, paths []*apiutil.Path) {
			desc := ""
			for _, a := range paths[0].Attrs {
				switch a := a.(type) {
				case *bgp.PathAttributeCommunities:
					desc += fmt.Sprintf(" comm=%v", a.Value)
				case *bgp.PathAttributeLargeCommunities:
					for _, l := range a.Values {
						desc += fmt.Sprintf(" large=%d:%d:%d", l.ASN, l.LocalData1, l.LocalData2)
					}
				case *bgp.PathAttributeLocalPref:
					desc += fmt.Sprintf(" lp=%d", a.Value)
				case *bgp.PathAttributeNextHop:
					if nextHops {
						desc += fmt.Sprintf(" nh=%s", a.Value)
					}
				}
			}
			if paths[0].Stale {
				desc += " stale"
			}
			out[prefix.String()] = desc
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantRoutes(t *testing.T, r *receiver, want map[string]string) func() error {
	return func() error {
		got := r.routes(t)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("receiver %s has %v, want %v", r.addr, got, want)
		}
		return nil
	}
}

// TestSpeakerOnLoopback runs the speaker against two GoBGP receivers: each gets only the
// routes meant for it, with their attributes, changes arrive without a session reset, and a
// withdrawal empties both.
func TestSpeakerOnLoopback(t *testing.T) {
	a := newReceiver(t, "127.0.0.2", 17901, 64513)
	b := newReceiver(t, "127.0.0.3", 17902, 64513)
	s, err := New(testr.New(t), netip.MustParseAddr("127.0.0.1"), 64513, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background(), true)
	ctx := t.Context()
	sessions := []Session{
		{Name: "a", Address: a.addr, Port: a.port, MyASN: 64513, PeerASN: 64512, Source: netip.MustParseAddr("127.0.0.1"), ConnectRetry: time.Second},
		{Name: "b", Address: b.addr, Port: b.port, MyASN: 64513, PeerASN: 64512, Source: netip.MustParseAddr("127.0.0.1"), ConnectRetry: time.Second},
	}
	lp := uint32(200)
	routes := []Route{
		{Prefix: netip.MustParsePrefix("203.0.113.1/32"), Peers: []string{"a", "b"}, Communities: []string{"65000:100", "large:1:2:3"}},
		{Prefix: netip.MustParsePrefix("203.0.113.2/32"), Peers: []string{"a"}, LocalPref: &lp},
		{Prefix: netip.MustParsePrefix("203.0.113.3/32"), Peers: []string{"b", "gone"}},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), Peers: []string{"a"}},
	}
	if err := s.Apply(ctx, sessions, routes); err != nil {
		t.Fatal(err)
	}
	comm := fmt.Sprintf(" comm=[%d] large=1:2:3", 65000<<16|100)
	eventually(t, "a's routes", wantRoutes(t, a, map[string]string{"203.0.113.1/32": comm, "203.0.113.2/32": ""}))
	eventually(t, "b's routes", wantRoutes(t, b, map[string]string{"203.0.113.1/32": comm, "203.0.113.3/32": ""}))
	// eBGP: local-pref stays home. The next hop is the session's local address.
	if got := a.routesWith(t, true)["203.0.113.2/32"]; got != " nh=127.0.0.1" {
		t.Errorf("203.0.113.2/32 at a: %q, want next hop 127.0.0.1", got)
	}

	// Move .2 from a to b, drop .3, change .1's communities.
	routes = []Route{
		{Prefix: netip.MustParsePrefix("203.0.113.1/32"), Peers: []string{"a", "b"}, Communities: []string{"65000:200"}},
		{Prefix: netip.MustParsePrefix("203.0.113.2/32"), Peers: []string{"b"}},
	}
	if err := s.Apply(ctx, sessions, routes); err != nil {
		t.Fatal(err)
	}
	comm = fmt.Sprintf(" comm=[%d]", 65000<<16|200)
	eventually(t, "a's routes after the change", wantRoutes(t, a, map[string]string{"203.0.113.1/32": comm}))
	eventually(t, "b's routes after the change", wantRoutes(t, b, map[string]string{"203.0.113.1/32": comm, "203.0.113.2/32": ""}))
	st := s.State(ctx, true)
	if len(st) != 2 || !st[0].Established || !st[1].Established || st[0].Advertised != 1 || st[1].Advertised != 2 {
		t.Fatalf("state %+v, want both established, a advertising 1 and b 2", st)
	}
	if s.Events.Load() == 0 {
		t.Error("two sessions came up and Events counted none")
	}

	// Update changes the prefixes it is given and no others: .4 is new to a, .1 leaves a
	// (its communities the same), .2 is withdrawn, .5 goes only to a session not configured
	// (so nowhere), and a prefix never announced is withdrawn without harm.
	err = s.Update(ctx, []Route{
		{Prefix: netip.MustParsePrefix("203.0.113.4/32"), Peers: []string{"a"}},
		{Prefix: netip.MustParsePrefix("203.0.113.1/32"), Peers: []string{"b"}, Communities: []string{"65000:200"}},
		{Prefix: netip.MustParsePrefix("203.0.113.5/32"), Peers: []string{"gone"}},
	}, []netip.Prefix{netip.MustParsePrefix("203.0.113.2/32"), netip.MustParsePrefix("203.0.113.99/32")})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's routes after Update", wantRoutes(t, a, map[string]string{"203.0.113.4/32": ""}))
	eventually(t, "b's routes after Update", wantRoutes(t, b, map[string]string{"203.0.113.1/32": comm}))
	// Apply of the same table changes nothing Update did not already.
	before := s.Updates.Load()
	err = s.Apply(ctx, sessions, []Route{
		{Prefix: netip.MustParsePrefix("203.0.113.1/32"), Peers: []string{"b"}, Communities: []string{"65000:200"}},
		{Prefix: netip.MustParsePrefix("203.0.113.4/32"), Peers: []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Updates.Load() - before; n != 0 {
		t.Errorf("Apply of the table Update made sent %d paths, want 0: Update's table and Apply's differ", n)
	}

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Withdraw(wctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a empty", wantRoutes(t, a, map[string]string{}))
	eventually(t, "b empty", wantRoutes(t, b, map[string]string{}))

	// Removing a session stops it.
	if err := s.Apply(ctx, sessions[:1], nil); err != nil {
		t.Fatal(err)
	}
	if names := s.State(ctx, true); len(names) != 1 || names[0].Name != "a" {
		t.Fatalf("sessions after removing b: %+v", names)
	}
}

func TestParseCommunities(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		std     []uint32
		large   [][3]uint32
		wantErr bool
	}{
		{in: []string{"65000:100", "0:0", "65535:65535"}, std: []uint32{65000<<16 | 100, 0, 0xffffffff}},
		{in: []string{"large:1:2:3", "large:4294967295:0:7"}, large: [][3]uint32{{1, 2, 3}, {4294967295, 0, 7}}},
		{in: []string{"65536:1"}, wantErr: true},
		{in: []string{"1:2:3"}, wantErr: true},
		{in: []string{"large:1:2"}, wantErr: true},
		{in: []string{"large:1:2:4294967296"}, wantErr: true},
		{in: []string{"no"}, wantErr: true},
	} {
		t.Run(fmt.Sprint(tc.in), func(t *testing.T) {
			c, err := ParseCommunities(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && (!slices.Equal(c.Standard, tc.std) || !slices.Equal(c.Large, tc.large)) {
				t.Fatalf("got %v %v, want %v %v", c.Standard, c.Large, tc.std, tc.large)
			}
		})
	}
}

func FuzzParseCommunities(f *testing.F) {
	for _, s := range []string{"65000:100", "large:1:2:3", "1:", ":", "large::", "99999:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCommunities([]string{s})
		if err == nil && len(c.Standard)+len(c.Large) != 1 {
			t.Fatalf("%q parsed into %v", s, c)
		}
	})
}

func TestDiffRoutes(t *testing.T) {
	p1, p2, p3 := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32"), netip.MustParsePrefix("192.0.2.3/32")
	old := map[netip.Prefix]Route{
		p1: {Prefix: p1, Peers: []string{"a"}},
		p2: {Prefix: p2, Peers: []string{"a", "b"}},
	}
	want := map[netip.Prefix]Route{
		p1: {Prefix: p1, Peers: []string{"a"}},
		p3: {Prefix: p3, Peers: []string{"b"}},
	}
	d := diffRoutes(old, want)
	if len(d.announce) != 1 || d.announce[0].Prefix != p3 {
		t.Fatalf("announce %v, want only %s", d.announce, p3)
	}
	if !slices.Equal(d.withdraw, []netip.Prefix{p2}) {
		t.Fatalf("withdraw %v", d.withdraw)
	}
	if fmt.Sprint(d.gain) != fmt.Sprint(map[string][]netip.Prefix{"b": {p3}}) ||
		fmt.Sprint(d.lose) != fmt.Sprint(map[string][]netip.Prefix{"a": {p2}, "b": {p2}}) {
		t.Fatalf("gain %v lose %v", d.gain, d.lose)
	}
	// A route that changes only its peers is re-announced and the dropped peer loses it.
	want = map[netip.Prefix]Route{p1: {Prefix: p1, Peers: []string{"b"}}, p2: old[p2]}
	d = diffRoutes(old, want)
	if len(d.announce) != 1 || fmt.Sprint(d.gain) != fmt.Sprint(map[string][]netip.Prefix{"b": {p1}}) ||
		fmt.Sprint(d.lose) != fmt.Sprint(map[string][]netip.Prefix{"a": {p1}}) || len(d.withdraw) != 0 {
		t.Fatalf("peer move: %+v", d)
	}
	// Over some prefixes only: p3 (new in want) and p2 (gone from want) are not looked at.
	want = map[netip.Prefix]Route{p1: {Prefix: p1, Peers: []string{"b"}}, p3: {Prefix: p3, Peers: []string{"b"}}}
	d = diffPrefixes(old, want, []netip.Prefix{p1, p1})
	if len(d.announce) != 1 || d.announce[0].Prefix != p1 || len(d.withdraw) != 0 ||
		fmt.Sprint(d.gain) != fmt.Sprint(map[string][]netip.Prefix{"b": {p1}}) || fmt.Sprint(d.lose) != fmt.Sprint(map[string][]netip.Prefix{"a": {p1}}) {
		t.Fatalf("over p1 only: %+v", d)
	}
	d = diffPrefixes(old, want, []netip.Prefix{p2})
	if len(d.announce) != 0 || !slices.Equal(d.withdraw, []netip.Prefix{p2}) || fmt.Sprint(d.lose) != fmt.Sprint(map[string][]netip.Prefix{"a": {p2}, "b": {p2}}) {
		t.Fatalf("over p2 only: %+v", d)
	}
}

func TestOnlyBFDChanged(t *testing.T) {
	a := Session{Name: "r", Address: netip.MustParseAddr("192.0.2.1"), MyASN: 1, PeerASN: 2, BFD: &BFD{Receive: time.Second, Multiplier: 3}}
	b := a
	b.BFD = &BFD{Receive: 300 * time.Millisecond, Multiplier: 3}
	c := a
	c.BFD = nil
	d := b
	d.Password = "x"
	for _, tc := range []struct {
		name string
		x, y Session
		want bool
	}{{"timers", a, b, true}, {"off", a, c, true}, {"and a password", a, d, false}} {
		if got := onlyBFDChanged(tc.x, tc.y); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
