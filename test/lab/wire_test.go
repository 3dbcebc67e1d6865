package lab

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	macA = "02:00:00:00:08:11"
	macB = "02:00:00:00:08:12"
	macW = "02:00:00:00:08:01"
)

func TestClaimResultTwoMACSlots(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name   string
		every  time.Duration
		claims []Claim
		want   []Slot
	}{
		{"nobody", 10 * time.Millisecond, nil, nil},
		{"one owner", 10 * time.Millisecond, []Claim{{At: at(1), MAC: macA}, {At: at(5), MAC: macA}, {At: at(12), MAC: macA}}, nil},
		{"clean hand-over across a slot edge", 10 * time.Millisecond, []Claim{{At: at(9), MAC: macA}, {At: at(10), MAC: macB}}, nil},
		{"overlap in one slot", 10 * time.Millisecond, []Claim{{At: at(3), MAC: macA}, {At: at(11), MAC: macB}, {At: at(19), MAC: macA}, {At: at(25), MAC: macB}},
			[]Slot{{At: at(10), MACs: []string{macA, macB}}}},
		{"three MACs, out of order", 10 * time.Millisecond, []Claim{{At: at(48), MAC: macW}, {At: at(41), MAC: macB}, {At: at(2), MAC: macA}, {At: at(2), MAC: macB}, {At: at(40), MAC: macA}},
			[]Slot{{At: at(0), MACs: []string{macA, macB}}, {At: at(40), MACs: []string{macW, macA, macB}}}},
		{"before start", 10 * time.Millisecond, []Claim{{At: at(-5), MAC: macA}, {At: at(5), MAC: macB}}, nil},
		{"no period", 0, []Claim{{At: at(1), MAC: macA}, {At: at(1), MAC: macB}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ClaimResult{Start: t0, End: at(100), Every: tc.every, Claims: tc.claims}
			if got := r.TwoMACSlots(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("slots %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestClaimResultSpans(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name   string
		claims []Claim
		want   []Span
		byMAC  map[string]int
	}{
		{"nobody", nil, nil, map[string]int{}},
		{"one owner", []Claim{{At: at(0), MAC: macA}, {At: at(10), MAC: macA}, {At: at(20), MAC: macA}},
			[]Span{{MAC: macA, First: at(0), Last: at(20), Claims: 3}}, map[string]int{macA: 3}},
		{"hand-over", []Claim{{At: at(0), MAC: macA}, {At: at(10), MAC: macA}, {At: at(30), MAC: macB}, {At: at(40), MAC: macB}},
			[]Span{{MAC: macA, First: at(0), Last: at(10), Claims: 2}, {MAC: macB, First: at(30), Last: at(40), Claims: 2}}, map[string]int{macA: 2, macB: 2}},
		{"flapping, out of order", []Claim{{At: at(20), MAC: macA}, {At: at(0), MAC: macA}, {At: at(10), MAC: macB}},
			[]Span{{MAC: macA, First: at(0), Last: at(0), Claims: 1}, {MAC: macB, First: at(10), Last: at(10), Claims: 1}, {MAC: macA, First: at(20), Last: at(20), Claims: 1}},
			map[string]int{macA: 2, macB: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ClaimResult{Start: t0, End: at(100), Every: 10 * time.Millisecond, Claims: tc.claims}
			if got := r.Spans(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("spans %+v, want %+v", got, tc.want)
			}
			if got := r.ByMAC(); !reflect.DeepEqual(got, tc.byMAC) {
				t.Errorf("by MAC %+v, want %+v", got, tc.byMAC)
			}
		})
	}
}

func TestClaimResultLongestSilence(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, tc := range []struct {
		name   string
		claims []int // times in ms; the watch runs from 0 to 100
		want   time.Duration
	}{
		{"nobody", nil, ms(100)},
		{"steady", []int{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, ms(10)},
		{"gap in the middle", []int{0, 10, 20, 65, 70, 80, 90, 100}, ms(45)},
		{"late first claim", []int{30, 40}, ms(60)},
		{"early last claim", []int{5, 10}, ms(90)},
		{"out of order", []int{90, 10, 50}, ms(40)},
		{"outside the watch", []int{-50, 40, 150}, ms(60)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ClaimResult{Start: t0, End: at(100), Every: ms(10)}
			for _, c := range tc.claims {
				r.Claims = append(r.Claims, Claim{At: at(c), MAC: macA})
			}
			if got := r.LongestSilence(); got != tc.want {
				t.Errorf("longest silence %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClaimResultString(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := ClaimResult{Addr: netip.MustParseAddr("192.0.2.240"), Start: t0, End: t0.Add(time.Second), Every: 10 * time.Millisecond, Asked: 100,
		Claims: []Claim{{At: t0, MAC: macA}, {At: t0.Add(time.Millisecond), MAC: macB}}}
	got := r.String()
	for _, want := range []string{"192.0.2.240", "2 claims", macA + "=1", macB + "=1", "100 questions", "1 slots with two MACs"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "\n") {
		t.Errorf("%q is more than one line", got)
	}
}

// claimFrames are frames on the wire, each with the claim it makes about vip4 or vip6, if any.
func claimFrames() []struct {
	name  string
	frame []byte
	addr  netip.Addr
	want  *Claim
} {
	a, b, w := mustMAC(macA), mustMAC(macB), mustMAC(macW)
	vip4, vip6 := netip.MustParseAddr("192.0.2.240"), netip.MustParseAddr("2001:db8::240")
	w4, wLL := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("fe80::1")
	zero := make(net.HardwareAddr, 6)
	na := func(ethSrc net.HardwareAddr, target netip.Addr, opts []byte) []byte {
		return ndFrame(icmpNeighborAdv, 0x60000000, ethSrc, w, target, wLL, target, opts)
	}
	ask4, _ := askFrame(w, w4, vip4)
	ask6, _ := askFrame(w, wLL, vip6)
	return []struct {
		name  string
		frame []byte
		addr  netip.Addr
		want  *Claim
	}{
		{"ARP reply", arpFrame(arpReply, a, w, vip4, w, w4), vip4, &Claim{MAC: macA, Kind: ClaimReply}},
		{"ARP reply to everyone", arpFrame(arpReply, a, ethBroadcast, vip4, w, w4), vip4, &Claim{MAC: macA, Kind: ClaimGratuitous}},
		{"gratuitous ARP request", arpFrame(arpRequest, b, ethBroadcast, vip4, zero, vip4), vip4, &Claim{MAC: macB, Kind: ClaimGratuitous}},
		{"gratuitous ARP reply", arpFrame(arpReply, b, ethBroadcast, vip4, ethBroadcast, vip4), vip4, &Claim{MAC: macB, Kind: ClaimGratuitous}},
		{"ARP request from the address", arpFrame(arpRequest, a, ethBroadcast, vip4, zero, w4), vip4, &Claim{MAC: macA, Kind: ClaimGratuitous}},
		{"ARP reply for another address", arpFrame(arpReply, a, w, netip.MustParseAddr("192.0.2.241"), w, w4), vip4, nil},
		{"ARP while watching IPv6", arpFrame(arpReply, a, w, vip4, w, w4), vip6, nil},
		{"own ARP question", ask4, vip4, nil},
		{"own frame claiming", arpFrame(arpReply, w, ethBroadcast, vip4, ethBroadcast, vip4), vip4, nil},
		{"another host naming the watcher's MAC", fromMAC(a, arpFrame(arpReply, w, ethBroadcast, vip4, ethBroadcast, vip4)), vip4, &Claim{MAC: macW, Kind: ClaimGratuitous}},
		{"ARP cut short", arpFrame(arpReply, a, w, vip4, w, w4)[:30], vip4, nil},
		{"NA with target address option", na(b, vip6, linkAddrOption(ndOptTargetLLA, a)), vip6, &Claim{MAC: macA, Kind: ClaimNA}},
		{"NA without options", na(b, vip6, nil), vip6, &Claim{MAC: macB, Kind: ClaimNA}},
		{"NA with a source address option only", na(b, vip6, linkAddrOption(ndOptSourceLLA, a)), vip6, &Claim{MAC: macB, Kind: ClaimNA}},
		{"NA with a bad option length", na(b, vip6, []byte{ndOptTargetLLA, 0, 1, 2, 3, 4, 5, 6}), vip6, &Claim{MAC: macB, Kind: ClaimNA}},
		{"NA for another address", na(a, netip.MustParseAddr("2001:db8::241"), nil), vip6, nil},
		{"NA while watching IPv4", na(a, vip6, nil), vip4, nil},
		{"own NS question", ask6, vip6, nil},
		{"NS from another host", ndFrame(icmpNeighborSol, 0, a, w, wLL, vip6, vip6, nil), vip6, nil},
		{"NA cut short", na(a, vip6, nil)[:ethHeaderLen+ipv6HeaderLen+10], vip6, nil},
		{"runt", []byte{1, 2, 3}, vip4, nil},
	}
}

// fromMAC sets a frame's Ethernet source.
func fromMAC(mac net.HardwareAddr, frame []byte) []byte {
	copy(frame[6:12], mac)
	return frame
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestClaimIn(t *testing.T) {
	for _, tc := range claimFrames() {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := claimIn(tc.frame, tc.addr, mustMAC(macW))
			var want Claim
			if tc.want != nil {
				want = *tc.want
			}
			if ok != (tc.want != nil) || got != want {
				t.Errorf("claim %+v (%t), want %+v", got, ok, tc.want)
			}
		})
	}
}

func TestClaimAskFrames(t *testing.T) {
	w := mustMAC(macW)
	src, vip6 := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2001:db8::12:3456")
	frame, dst := askFrame(w, src, vip6)
	if want := "33:33:ff:12:34:56"; dst.String() != want || net.HardwareAddr(frame[0:6]).String() != want {
		t.Errorf("NS goes to %s (frame %s), want %s", dst, net.HardwareAddr(frame[0:6]), want)
	}
	ip := frame[ethHeaderLen:]
	if group := netip.AddrFrom16([16]byte(ip[24:40])); group != netip.MustParseAddr("ff02::1:ff12:3456") {
		t.Errorf("NS to %s, want the solicited-node group", group)
	}
	if sum := icmpv6Checksum(src, netip.AddrFrom16([16]byte(ip[24:40])), ip[ipv6HeaderLen:]); sum != 0 {
		t.Errorf("NS checksum does not verify: %#04x", sum)
	}
	frame4, dst4 := askFrame(w, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.240"))
	if len(frame4) != ethMinFrame || dst4.String() != ethBroadcast.String() {
		t.Errorf("ARP question of %d bytes to %s", len(frame4), dst4)
	}
}

func FuzzClaimFrame(f *testing.F) {
	for _, tc := range claimFrames() {
		f.Add(tc.frame, tc.addr.Is6())
	}
	f.Fuzz(func(t *testing.T, frame []byte, six bool) {
		addr := netip.MustParseAddr("192.0.2.240")
		if six {
			addr = netip.MustParseAddr("2001:db8::240")
		}
		c, ok := claimIn(frame, addr, mustMAC(macW))
		if !ok {
			return
		}
		if m, err := net.ParseMAC(c.MAC); err != nil || len(m) != 6 {
			t.Errorf("claim by %q", c.MAC)
		}
		if net.HardwareAddr(frame[6:12]).String() == macW {
			t.Errorf("the watcher's own frame counted as %+v", c)
		}
		if !slices.Contains([]string{ClaimReply, ClaimGratuitous, ClaimNA}, c.Kind) {
			t.Errorf("claim of kind %q", c.Kind)
		}
	})
}

func TestStartClaimWatchRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, netns string
		addr        netip.Addr
		every       time.Duration
	}{
		{"no address", wireNetns + "sw", netip.Addr{}, time.Millisecond},
		{"no period", wireNetns + "sw", wireVIP4, 0},
		{"no such namespace", wireNetns + "missing", wireVIP4, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w, err := StartClaimWatch(tc.netns, "watch0", tc.addr, tc.every); err == nil {
				w.Stop()
				t.Fatal("started")
			}
		})
	}
}

// wireNetns is the prefix of this test's namespaces, unique to it. No lab uses index 8, whose
// Cleanup (and `vipcast-lab down --all`) would remove them too.
const wireNetns = "vc8-wire-"

// wireLab is three namespaces on one bridge: "sw" holds the bridge and the watcher's
// interface watch0; owners "a" and "b" each have eth0. Only "a" holds the test addresses at
// first.
type wireLab struct{ sw, a, b string }

var (
	wireVIP4 = netip.MustParseAddr("192.0.2.240")
	wireVIP6 = netip.MustParseAddr("2001:db8::240")
)

func TestClaimWatchWire(t *testing.T) {
	if os.Getenv("VIPCAST_LAB") != "1" {
		t.Skip("the wire test needs root and VIPCAST_LAB=1 (make test sets it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("VIPCAST_LAB=1 but not root: the wire test makes network namespaces")
	}
	l := newWireLab(t)
	ctx := t.Context()
	// Generous: the kernel answers every question within microseconds, so ~100 questions
	// yield ~100 claims; 5 holds on a machine too busy to ask on time.
	const minClaims = 5
	watch := func(t *testing.T, addr netip.Addr) ClaimResult {
		t.Helper()
		w, err := StartClaimWatch(l.sw, "watch0", addr, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the measurement itself: a second of questions
		r := w.Stop()
		t.Log(r)
		if r.Asked == 0 || len(r.Claims) < minClaims {
			t.Fatalf("%d questions, %d claims; want at least 1 and %d", r.Asked, len(r.Claims), minClaims)
		}
		return r
	}
	if w, err := StartClaimWatch(l.sw, "missing0", wireVIP4, 10*time.Millisecond); err == nil {
		w.Stop()
		t.Error("a watch started on an interface that does not exist")
	}
	vips := []netip.Addr{wireVIP4, wireVIP6}
	t.Run("one owner", func(t *testing.T) {
		for _, vip := range vips {
			t.Run(family(vip), func(t *testing.T) {
				r := watch(t, vip)
				if got := r.ByMAC(); !reflect.DeepEqual(got, map[string]int{macA: len(r.Claims)}) {
					t.Errorf("claims by MAC %+v, want %+v", got, map[string]int{macA: len(r.Claims)})
				}
				if s := r.TwoMACSlots(); len(s) != 0 {
					t.Errorf("%d slots with two MACs, the first %+v", len(s), s[0])
				}
				if len(r.Spans()) != 1 {
					t.Errorf("spans %+v, want one", r.Spans())
				}
				// The kernel answers each question; nobody speaks unasked.
				kind := map[bool]string{true: ClaimReply, false: ClaimNA}[vip.Is4()]
				for _, c := range r.Claims {
					if c.Kind != kind {
						t.Errorf("claim %+v, want only %q", c, kind)
						break
					}
				}
			})
		}
	})
	if err := addrs(ctx, l.b, "eth0", netip.PrefixFrom(wireVIP4, 32), netip.PrefixFrom(wireVIP6, 128)); err != nil {
		t.Fatal(err)
	}
	t.Run("two owners", func(t *testing.T) {
		for _, vip := range vips {
			t.Run(family(vip), func(t *testing.T) {
				r := watch(t, vip)
				if got := slices.Sorted(maps.Keys(r.ByMAC())); !slices.Equal(got, []string{macA, macB}) {
					t.Errorf("claims by %v, want by %s and %s", got, macA, macB)
				}
				if len(r.TwoMACSlots()) == 0 {
					t.Error("no slot with two MACs, though both owners answer every question")
				}
			})
		}
	})
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// newWireLab builds the namespaces, removing what a crashed run left first and everything
// when the test ends, passed or not.
func newWireLab(t *testing.T) wireLab {
	t.Helper()
	ctx := t.Context()
	removeWireLab(ctx, t)
	t.Cleanup(func() { removeWireLab(context.Background(), t) })
	l := wireLab{sw: wireNetns + "sw", a: wireNetns + "a", b: wireNetns + "b"}
	for _, n := range []string{l.sw, l.a, l.b} {
		if err := newNetns(ctx, n, false); err != nil {
			t.Fatal(err)
		}
	}
	// No multicast snooping: solicitations reach every port, as on a plain switch.
	steps := [][]string{
		{l.sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		{l.sw, "link", "set", "br0", "up"},
		{l.sw, "link", "add", "port-a", "type", "veth", "peer", "name", "eth0", "address", macA, "netns", l.a},
		{l.sw, "link", "add", "port-b", "type", "veth", "peer", "name", "eth0", "address", macB, "netns", l.b},
		{l.sw, "link", "add", "port-w", "type", "veth", "peer", "name", "watch0", "address", macW},
	}
	for _, port := range []string{"port-a", "port-b", "port-w"} {
		steps = append(steps, []string{l.sw, "link", "set", port, "master", "br0", "up"})
	}
	for _, s := range steps {
		if err := ip(ctx, s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range []struct {
		netns, dev string
		addrs      []string
	}{
		{l.sw, "watch0", []string{"192.0.2.1/24", "2001:db8::1/64"}},
		{l.a, "eth0", []string{"192.0.2.11/24", "2001:db8::11/64", wireVIP4.String() + "/32", wireVIP6.String() + "/128"}},
		{l.b, "eth0", []string{"192.0.2.12/24", "2001:db8::12/64"}},
	} {
		var ps []netip.Prefix
		for _, s := range a.addrs {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		if err := addrs(ctx, a.netns, a.dev, ps...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// removeWireLab deletes every namespace of this test (their links go with them).
func removeWireLab(ctx context.Context, t *testing.T) {
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		t.Error(err)
		return
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], wireNetns) {
			if _, err := run(ctx, "ip", "netns", "del", f[0]); err != nil {
				t.Error(err)
			}
		}
	}
}
