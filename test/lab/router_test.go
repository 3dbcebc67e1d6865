package lab

import (
	"net/netip"
	"slices"
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
