package lab

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseNextHops(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"ecmp", `[{"dst":"203.0.113.5","flags":[],"nexthops":[{"gateway":"192.0.2.12","dev":"eth0","weight":1,"flags":[]},{"gateway":"192.0.2.11","dev":"eth0","weight":1,"flags":[]}]}]`, []string{"192.0.2.11", "192.0.2.12"}},
		{"one gateway", `[{"dst":"203.0.113.6","gateway":"192.0.2.11","dev":"eth0","flags":[]}]`, []string{"192.0.2.11"}},
		{"ipv6", `[{"dst":"2001:db8:203::77","gateway":"2001:db8::12","dev":"eth0","protocol":"bird","metric":32,"flags":[],"pref":"medium"}]`, []string{"2001:db8::12"}},
		{"no route", `[]`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNextHops(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var want []netip.Addr
			for _, w := range tc.want {
				want = append(want, netip.MustParseAddr(w))
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
	if _, err := parseNextHops("Error: no such table"); err == nil {
		t.Error("garbage parsed without an error")
	}
}

func TestParseBIRDPaths(t *testing.T) {
	text := `Table master4:
203.0.113.5/32       unicast [node1 10:00:00.000] * (100) [AS64513i]
	via 192.0.2.11 on eth0
	Type: BGP univ
	BGP.origin: IGP
	BGP.as_path: 64513
	BGP.next_hop: 192.0.2.11
	BGP.local_pref: 200
	BGP.community: (65000,100) (65000,200)
	BGP.large_community: (1, 2, 3)
                     unicast [node2 10:00:01.000] (100) [AS64513i]
	via 192.0.2.12 on eth0
	Type: BGP univ
	BGP.local_pref: 100
`
	got := parseBIRDPaths(text)
	if len(got) != 2 || got[0].NextHop.String() != "192.0.2.11" || got[0].LocalPref != 200 ||
		strings.Join(got[0].Communities, " ") != "65000:100 65000:200 large:1:2:3" ||
		got[1].NextHop.String() != "192.0.2.12" || len(got[1].Communities) != 0 || got[1].LocalPref != 100 {
		t.Fatalf("parsed %+v", got)
	}
}

func TestParseFRRPaths(t *testing.T) {
	text := `{"prefix":"203.0.113.5/32","paths":[{"community":{"string":"65000:100"},"largeCommunity":{"string":"1:2:3"},"locPrf":150,"nexthops":[{"ip":"192.0.2.11","afi":"ipv4"}]},{"nexthops":[{"ip":"192.0.2.12"}]}]}`
	got, err := parseFRRPaths(text)
	if err != nil || len(got) != 2 || got[0].NextHop.String() != "192.0.2.11" || got[0].LocalPref != 150 ||
		strings.Join(got[0].Communities, " ") != "65000:100 large:1:2:3" || got[1].NextHop.String() != "192.0.2.12" {
		t.Fatalf("parsed %+v, %v", got, err)
	}
	if _, err := parseFRRPaths("% Unknown command"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestSessionsReset(t *testing.T) {
	const before = `Name       Proto      Table      State  Since         Info
device1    Device     ---        up     07:57:35.034
node1      BGP        ---        up     07:57:36.769  Established
node2      BGP        ---        up     07:57:36.828  Established
nodes4     BGP        ---        start  07:57:35.034  Passive`
	for _, tc := range []struct {
		name, after string
		want        []string
	}{
		{"same", before, nil},
		// BIRD prints the wall-clock time of a monotonic instant: readings jitter by a ms.
		{"jitter", strings.Replace(before, "07:57:36.828", "07:57:36.827", 1), nil},
		{"re-established", strings.Replace(before, "07:57:36.828", "07:58:40.112", 1), []string{"node2"}},
		{"down", strings.Replace(before, "up     07:57:36.769  Established", "start  07:58:40.112  Active", 1), []string{"node1"}},
		{"gone", strings.Replace(before, "node1      BGP        ---        up     07:57:36.769  Established\n", "", 1), []string{"node1"}},
		{"new", before + "\nnode9      BGP        ---        up     07:58:41.000  Established", []string{"node9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, a := birdSessionEpochs(before), birdSessionEpochs(tc.after)
			if len(b) != 3 {
				t.Fatalf("read %d sessions from %q, want 3: %v", len(b), before, b)
			}
			if got := SessionsReset(b, a); !slices.Equal(got, tc.want) {
				t.Errorf("SessionsReset = %v, want %v (before %v, after %v)", got, tc.want, b, a)
			}
		})
	}
	frr := map[string]SessionEpoch{"192.0.2.11": {State: "Established", Since: "1764575856", at: time.Unix(1764575856, 0)}}
	later := map[string]SessionEpoch{"192.0.2.11": {State: "Established", Since: "1764575857", at: time.Unix(1764575857, 0)}}
	if got := SessionsReset(frr, later); len(got) != 0 {
		t.Errorf("FRR epoch seconds one apart (rounding) read as a reset: %v", got)
	}
	later["192.0.2.11"] = SessionEpoch{State: "Established", Since: "1764575900", at: time.Unix(1764575900, 0)}
	if got := SessionsReset(frr, later); !slices.Equal(got, []string{"192.0.2.11"}) {
		t.Errorf("FRR session re-established 44 s later not read as a reset: %v", got)
	}
}
