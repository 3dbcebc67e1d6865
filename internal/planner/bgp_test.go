package planner

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/vipcast/vipcast/internal/iprange"
)

func TestBGPFor(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	edge := labels.SelectorFromSet(labels.Set{"edge": "true"})
	base := func() Input {
		ns := nodes("a", "b")
		ns["b"].Labels["edge"] = "true"
		return Input{Nodes: ns, Peers: []Peer{{Name: "tor"}}, BGP: []BGPAdvertisement{{Name: "all"}},
			Services: []Service{svc("ns/web", "203.0.113.5", "2001:db8:203::5")}}
	}
	type want struct {
		prefix, peers, communities string
		localPref                  *uint32
		services                   string
	}
	show := func(rs []Route) []want {
		var out []want
		for _, r := range rs {
			out = append(out, want{r.Prefix.String(), fmt.Sprint(r.Peers), fmt.Sprint(r.Communities), r.LocalPref, fmt.Sprint(r.Services)})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Input)
		node   string
		want   []want
	}{
		{"host routes to every peer", func(*Input) {}, "a", []want{
			{"203.0.113.5/32", "[tor]", "[]", nil, "[ns/web]"}, {"2001:db8:203::5/128", "[tor]", "[]", nil, "[ns/web]"}}},
		{"every eligible node announces", func(*Input) {}, "b", []want{
			{"203.0.113.5/32", "[tor]", "[]", nil, "[ns/web]"}, {"2001:db8:203::5/128", "[tor]", "[]", nil, "[ns/web]"}}},
		{"aggregation merges Services", func(in *Input) {
			in.BGP[0].AggregationLength, in.BGP[0].AggregationLengthV6 = 24, 64
			in.Services = append(in.Services, svc("ns/db", "203.0.113.9"))
		}, "a", []want{
			{"203.0.113.0/24", "[tor]", "[]", nil, "[ns/db ns/web]"}, {"2001:db8:203::/64", "[tor]", "[]", nil, "[ns/web]"}}},
		{"aggregation inside the pool", func(in *Input) {
			in.PoolRanges = map[string][]iprange.Range{"default": ranges(t, "203.0.113.0/24", "2001:db8:203::/64")}
			in.BGP[0].AggregationLength, in.BGP[0].AggregationLengthV6 = 24, 64
		}, "a", []want{
			{"203.0.113.0/24", "[tor]", "[]", nil, "[ns/web]"}, {"2001:db8:203::/64", "[tor]", "[]", nil, "[ns/web]"}}},
		// A /24 of a /28 pool would draw traffic for 240 addresses vipcast does not hold.
		{"aggregation wider than the pool: that family of the pool is skipped", func(in *Input) {
			in.PoolRanges = map[string][]iprange.Range{"default": ranges(t, "203.0.113.0/28", "2001:db8:203::/64")}
			in.BGP[0].AggregationLength, in.BGP[0].AggregationLengthV6 = 24, 64
		}, "a", []want{{"2001:db8:203::/64", "[tor]", "[]", nil, "[ns/web]"}}},
		{"aggregation wider than a from-to range", func(in *Input) {
			in.PoolRanges = map[string][]iprange.Range{"default": ranges(t, "203.0.113.0-203.0.113.31", "2001:db8:203::-2001:db8:203::ff")}
			in.BGP[0].AggregationLength, in.BGP[0].AggregationLengthV6 = 27, 120
		}, "a", []want{{"203.0.113.0/27", "[tor]", "[]", nil, "[ns/web]"}, {"2001:db8:203::/120", "[tor]", "[]", nil, "[ns/web]"}}},
		{"another advertisement still sends host routes", func(in *Input) {
			in.PoolRanges = map[string][]iprange.Range{"default": ranges(t, "203.0.113.0/28")}
			in.BGP = []BGPAdvertisement{{Name: "wide", AggregationLength: 24}, {Name: "hosts"}}
			in.Services[0].IPs = in.Services[0].IPs[:1]
		}, "a", []want{{"203.0.113.5/32", "[tor]", "[]", nil, "[ns/web]"}}},
		{"an address in no pool is aggregated as before", func(in *Input) {
			in.PoolRanges = map[string][]iprange.Range{"default": ranges(t, "203.0.113.0/28")}
			in.BGP[0].AggregationLength = 24
			in.Services[0].IPs = []IP{{Addr: netip.MustParseAddr("203.0.113.5")}}
		}, "a", []want{{"203.0.113.0/24", "[tor]", "[]", nil, "[ns/web]"}}},
		{"attributes from every advertisement", func(in *Input) {
			in.BGP = []BGPAdvertisement{{Name: "x", Communities: []string{"65000:1"}, LocalPref: u32(100)},
				{Name: "y", Communities: []string{"large:1:2:3", "65000:1"}, LocalPref: u32(200)}}
			in.Services[0].IPs = in.Services[0].IPs[:1]
		}, "a", []want{{"203.0.113.5/32", "[tor]", "[65000:1 large:1:2:3]", u32(200), "[ns/web]"}}},
		{"Local: only with an endpoint here", func(in *Input) {
			in.Services[0].Local, in.Services[0].EndpointNodes = true, members("b")
		}, "a", nil},
		{"Local: the node with the endpoint", func(in *Input) {
			in.Services[0].Local, in.Services[0].EndpointNodes = true, members("b")
			in.Services[0].IPs = in.Services[0].IPs[:1]
		}, "b", []want{{"203.0.113.5/32", "[tor]", "[]", nil, "[ns/web]"}}},
		{"excluded node", func(in *Input) { in.Nodes["a"].Labels[LabelExcludeFromLB] = "" }, "a", nil},
		{"advertisement node selector", func(in *Input) { in.BGP[0].NodeSelectors = []labels.Selector{edge} }, "a", nil},
		{"peer only for other nodes", func(in *Input) { in.Peers[0].NodeSelectors = []labels.Selector{edge} }, "a", nil},
		{"advertisement names another peer", func(in *Input) {
			in.Peers = append(in.Peers, Peer{Name: "spine"})
			in.BGP[0].Peers = []string{"spine"}
			in.Services[0].IPs = in.Services[0].IPs[:1]
		}, "a", []want{{"203.0.113.5/32", "[spine]", "[]", nil, "[ns/web]"}}},
		{"no peers at all", func(in *Input) { in.Peers = nil }, "a", nil},
		{"pool not selected", func(in *Input) { in.BGP[0].Pools = []string{"other"} }, "a", nil},
		{"no BGP advertisement", func(in *Input) { in.BGP = nil }, "a", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.mutate(&in)
			got := show(BGPFor(in, tc.node))
			if !slices.EqualFunc(got, tc.want, func(a, b want) bool {
				return a.prefix == b.prefix && a.peers == b.peers && a.communities == b.communities && a.services == b.services &&
					(a.localPref == nil) == (b.localPref == nil) && (a.localPref == nil || *a.localPref == *b.localPref)
			}) {
				t.Errorf("routes\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestBGPForTenThousandAddressesIsSortedAndComplete(t *testing.T) {
	in := Input{Nodes: nodes("a"), Peers: []Peer{{Name: "tor"}}, BGP: []BGPAdvertisement{{Name: "all"}}, Services: manyIPs(10000)}
	rs := BGPFor(in, "a")
	if len(rs) != 10000 {
		t.Fatalf("%d routes, want 10000", len(rs))
	}
	if !slices.IsSortedFunc(rs, func(a, b Route) int { return comparePrefix(a.Prefix, b.Prefix) }) {
		t.Error("routes are not sorted")
	}
	if rs[0].Prefix != netip.MustParsePrefix("198.18.0.0/32") {
		t.Errorf("first route %s", rs[0].Prefix)
	}
}

func TestBGPRouteAddrsAndPeersFor(t *testing.T) {
	edge := labels.SelectorFromSet(labels.Set{"edge": "true"})
	ns := nodes("a", "b")
	ns["b"].Labels["edge"] = "true"
	in := Input{Nodes: ns, Peers: []Peer{{Name: "tor"}, {Name: "spine", NodeSelectors: []labels.Selector{edge}}},
		BGP:      []BGPAdvertisement{{Name: "all", AggregationLength: 24}},
		Services: []Service{svc("ns/web", "203.0.113.5"), svc("ns/db", "203.0.113.9")}}
	rs := BGPFor(in, "a")
	if len(rs) != 1 || fmt.Sprint(rs[0].Addrs) != "[203.0.113.5 203.0.113.9]" {
		t.Fatalf("aggregate %+v, want one /24 covering .5 and .9", rs)
	}
	if got := fmt.Sprint(PeersFor(in, "a"), PeersFor(in, "b")); got != "[tor] [spine tor]" {
		t.Fatalf("PeersFor a, b = %s", got)
	}
}

func ranges(t *testing.T, ss ...string) []iprange.Range {
	t.Helper()
	var rs []iprange.Range
	for _, s := range ss {
		r, err := iprange.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return iprange.Normalize(rs)
}

func TestAggregationTooWide(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ranges   []string
		fam      iprange.Family
		bits     int
		shortest int
		tooWide  bool
	}{
		{"host routes", []string{"203.0.113.0/28"}, iprange.IPv4, 0, 28, false},
		{"the pool's own length", []string{"203.0.113.0/28"}, iprange.IPv4, 28, 28, false},
		{"longer than the pool's", []string{"203.0.113.0/28"}, iprange.IPv4, 30, 28, false},
		{"shorter than the pool's", []string{"203.0.113.0/28"}, iprange.IPv4, 24, 28, true},
		{"an unaligned range allows host routes only", []string{"203.0.113.10-203.0.113.20"}, iprange.IPv4, 31, 32, true},
		{"no address of the family", []string{"203.0.113.0/28"}, iprange.IPv6, 64, 0, false},
		{"IPv6", []string{"2001:db8::/120"}, iprange.IPv6, 64, 120, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shortest, tooWide := AggregationTooWide(ranges(t, tc.ranges...), tc.fam, tc.bits)
			if shortest != tc.shortest || tooWide != tc.tooWide {
				t.Errorf("got %d, %v; want %d, %v", shortest, tooWide, tc.shortest, tc.tooWide)
			}
		})
	}
}
