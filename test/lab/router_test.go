package lab

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
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
