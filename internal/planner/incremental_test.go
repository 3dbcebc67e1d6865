package planner

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vipcast/vipcast/internal/iprange"
)

// world is a random cluster: a few nodes (some live, some with known links), pools,
// layer-2 and BGP advertisements with selectors, interfaces and aggregation, and peers.
func world(r *rand.Rand) Input {
	names := []string{"a", "b", "c", "d", "e"}
	in := Input{Members: map[string]bool{}, Nodes: map[string]Node{}, Links: map[string][]Link{},
		PoolLabels: map[string]map[string]string{"blue": {"color": "blue"}, "red": {"color": "red"}},
		PoolRanges: map[string][]iprange.Range{}}
	for _, n := range names {
		node := Node{Name: n, Labels: map[string]string{"zone": pick(r, "x", "y")}, Addresses: []netip.Addr{netip.MustParseAddr("192.0.2." + fmt.Sprint(10+len(in.Nodes)))}}
		if r.IntN(6) == 0 {
			node.NetworkUnavailable = true
		}
		if r.IntN(8) == 0 {
			node.Labels[LabelExcludeFromLB] = ""
		}
		in.Nodes[n] = node
		if r.IntN(5) > 0 {
			in.Members[n] = true
		}
		switch r.IntN(3) {
		case 0: // unknown links
		case 1:
			in.Links[n] = []Link{{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}}}
		default:
			in.Links[n] = []Link{{Name: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}}
		}
	}
	if r.IntN(2) == 0 {
		in.PoolRanges["blue"] = []iprange.Range{{First: netip.MustParseAddr("198.51.100.0"), Last: netip.MustParseAddr("198.51.100.15")}}
	}
	zone := func() []labels.Selector {
		if r.IntN(2) == 0 {
			return nil
		}
		return []labels.Selector{labels.SelectorFromSet(labels.Set{"zone": pick(r, "x", "y")})}
	}
	tier := func() []labels.Selector {
		if r.IntN(2) == 0 {
			return nil
		}
		return []labels.Selector{labels.SelectorFromSet(labels.Set{"tier": pick(r, "web", "db")})}
	}
	for i := range r.IntN(3) + 1 {
		ad := L2Advertisement{Name: fmt.Sprint("l2-", i), NodeSelectors: zone(), ServiceSelectors: tier()}
		switch r.IntN(3) {
		case 0:
			ad.Pools = []string{pick(r, "blue", "red")}
		case 1:
			ad.PoolSelectors = []labels.Selector{labels.SelectorFromSet(labels.Set{"color": pick(r, "blue", "red")})}
		}
		if r.IntN(3) == 0 {
			ad.Interfaces = []string{pick(r, "eth0", "eth1")}
		}
		in.L2 = append(in.L2, ad)
	}
	for i := range r.IntN(3) {
		in.Peers = append(in.Peers, Peer{Name: fmt.Sprint("peer-", i), NodeSelectors: zone()})
	}
	for i := range r.IntN(3) {
		ad := BGPAdvertisement{Name: fmt.Sprint("bgp-", i), NodeSelectors: zone(), ServiceSelectors: tier(), Communities: []string{pick(r, "65000:1", "65000:2")}}
		if r.IntN(2) == 0 {
			ad.AggregationLength, ad.AggregationLengthV6 = pick(r, 0, 24, 30), pick(r, 0, 64)
		}
		if r.IntN(2) == 0 {
			lp := uint32(r.IntN(3) * 100)
			ad.LocalPref = &lp
		}
		if r.IntN(2) == 0 && len(in.Peers) > 0 {
			ad.Peers = []string{in.Peers[r.IntN(len(in.Peers))].Name}
		}
		if r.IntN(2) == 0 {
			ad.Pools = []string{pick(r, "blue", "red")}
		}
		in.BGP = append(in.BGP, ad)
	}
	return in
}

func pick[T any](r *rand.Rand, vs ...T) T { return vs[r.IntN(len(vs))] }

// randomService is a Service of a small key and address space, so that Services replace
// each other and share addresses.
func randomService(r *rand.Rand) Service {
	s := Service{Key: fmt.Sprint("ns/s", r.IntN(40)), Labels: map[string]string{"tier": pick(r, "web", "db")}, Local: r.IntN(3) == 0}
	for range r.IntN(3) {
		pool := pick(r, "blue", "red", "")
		var a netip.Addr
		switch pool {
		case "blue":
			a = netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(20))})
		case "red":
			a = netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(20))})
		default:
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(10))})
		}
		ip := IP{Addr: a}
		if pool != "" {
			ip.Pools = []string{pool}
		}
		s.IPs = append(s.IPs, ip)
	}
	if s.Local {
		s.EndpointNodes = map[string]bool{}
		for _, n := range []string{"a", "b", "c", "d", "e"} {
			if r.IntN(3) == 0 {
				s.EndpointNodes[n] = true
			}
		}
	}
	return s
}

// TestIncrementalEqualsFull changes Services one at a time, in random worlds, and checks
// after every step that the plans updated in place equal the plans made from scratch.
func TestIncrementalEqualsFull(t *testing.T) {
	const steps, worldEvery = 10000, 400
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	var in Input
	var l2 *L2Plan
	var bgp *BGPPlan
	node := ""
	current := map[string]Service{}
	checked := 0
	for step := range steps {
		if step%worldEvery == 0 {
			// A new world: full replans, as on a membership or advertisement change.
			in = world(r)
			in.Services = services(current)
			node = pick(r, "a", "b", "c", "d", "e")
			l2, bgp = NewL2Plan(in), NewBGPPlan(in, node)
		}
		if r.IntN(25) == 0 {
			// A member dies or joins (its links known or not): only the addresses it can
			// change are re-decided.
			name := pick(r, "a", "b", "c", "d", "e")
			in.Members, in.Links = maps.Clone(in.Members), maps.Clone(in.Links)
			if in.Members[name] {
				delete(in.Members, name)
				delete(in.Links, name)
			} else {
				in.Members[name] = true
				switch r.IntN(3) {
				case 0:
					in.Links[name] = []Link{{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}}}
				case 1:
					in.Links[name] = []Link{{Name: "eth1", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}}
				}
			}
			before := l2.Decisions()
			touched := l2.SetMembers(in.Members, in.Links)
			for _, d := range before {
				if now, _ := l2.Decision(d.Addr); !reflect.DeepEqual(now, d) && !slices.Contains(touched, d.Addr) {
					t.Fatalf("step %d (seed %d): %s came or went: %s changed (%+v to %+v) but was not returned", step, seed, name, d.Addr, d, now)
				}
			}
		} else if r.IntN(4) == 0 {
			key := fmt.Sprint("ns/s", r.IntN(40))
			delete(current, key)
			l2.Delete(key)
			bgp.Delete(key)
		} else {
			s := randomService(r)
			current[s.Key] = s
			l2.Set(s)
			bgp.Set(s)
		}
		in.Services = services(current)
		if diff := firstDiff(L2(in), l2.Decisions()); diff != "" {
			t.Fatalf("step %d (seed %d): layer-2 decisions differ from a full plan: %s", step, seed, diff)
		}
		if diff := firstDiff(BGPFor(in, node), bgp.Routes()); diff != "" {
			t.Fatalf("step %d (seed %d): routes of %s differ from a full plan: %s", step, seed, node, diff)
		}
		checked++
	}
}

// firstDiff describes the first element where full and incremental differ ("" when equal).
func firstDiff[T any](full, incremental []T) string {
	for i := range max(len(full), len(incremental)) {
		switch {
		case i >= len(full):
			return fmt.Sprintf("incremental has more: %+v", incremental[i])
		case i >= len(incremental):
			return fmt.Sprintf("full has more: %+v", full[i])
		case !reflect.DeepEqual(full[i], incremental[i]):
			return fmt.Sprintf("full %+v, incremental %+v", full[i], incremental[i])
		}
	}
	return ""
}

func services(m map[string]Service) []Service {
	out := make([]Service, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}

// BenchmarkOneMoreServiceAt50000: the cost of planning one Service added to 50,000 (and
// taking it out again), layer 2 and BGP, against a full plan of the same input.
func BenchmarkOneMoreServiceAt50000(b *testing.B) {
	in := Input{Members: members("a", "b", "c"), Nodes: nodes("a", "b", "c"), Services: manyIPs(50000),
		L2: []L2Advertisement{{Name: "all"}}, BGP: []BGPAdvertisement{{Name: "all"}}, Peers: []Peer{{Name: "tor"}}}
	extra := svc("ns/extra", "198.19.0.1")
	b.Run("L2Plan.Set", func(b *testing.B) {
		p := NewL2Plan(in)
		for b.Loop() {
			p.Set(extra)
			p.Delete(extra.Key)
		}
	})
	b.Run("BGPPlan.Set", func(b *testing.B) {
		p := NewBGPPlan(in, "a")
		for b.Loop() {
			p.Set(extra)
			p.Delete(extra.Key)
		}
	})
	b.Run("full L2", func(b *testing.B) {
		for b.Loop() {
			L2(in)
		}
	})
	b.Run("full BGPFor", func(b *testing.B) {
		for b.Loop() {
			BGPFor(in, "a")
		}
	})
}
