package iprange

import "testing"

func TestShortestAggregation(t *testing.T) {
	parse := func(t *testing.T, ss ...string) []Range {
		t.Helper()
		var rs []Range
		for _, s := range ss {
			r, err := Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		return Normalize(rs)
	}
	for _, tc := range []struct {
		name   string
		ranges []string
		family Family
		bits   int
		ok     bool
	}{
		{"a /24", []string{"192.0.2.0/24"}, IPv4, 24, true},
		{"host bits in the CIDR do not matter", []string{"192.0.2.7/28"}, IPv4, 28, true},
		{"one address", []string{"192.0.2.7/32"}, IPv4, 32, true},
		{"two touching /25s are one /24", []string{"192.0.2.0/25", "192.0.2.128/25"}, IPv4, 24, true},
		{"two apart /28s", []string{"192.0.2.0/28", "192.0.2.64/28"}, IPv4, 28, true},
		{"the narrowest block counts", []string{"192.0.2.0/24", "198.51.100.0/30"}, IPv4, 30, true},
		{"an aligned range", []string{"192.0.2.0-192.0.2.255"}, IPv4, 24, true},
		// .10-.20 is .10/31, .12/30, .16/30, .20/32: only host routes stay inside.
		{"an unaligned range", []string{"192.0.2.10-192.0.2.20"}, IPv4, 32, true},
		// .16-.47 is .16/28 and .32/28.
		{"a range of two /28s", []string{"192.0.2.16-192.0.2.47"}, IPv4, 28, true},
		{"IPv6", []string{"2001:db8::/64", "192.0.2.0/24"}, IPv6, 64, true},
		{"IPv6 range", []string{"2001:db8::10-2001:db8::1f"}, IPv6, 124, true},
		{"no address of the family", []string{"192.0.2.0/24"}, IPv6, 0, false},
		{"everything", []string{"0.0.0.0/0"}, IPv4, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bits, ok := ShortestAggregation(parse(t, tc.ranges...), tc.family)
			if bits != tc.bits || ok != tc.ok {
				t.Errorf("ShortestAggregation = %d, %v; want %d, %v", bits, ok, tc.bits, tc.ok)
			}
		})
	}
}

func TestAggregatesInside(t *testing.T) {
	r, err := Parse("192.0.2.16-192.0.2.47")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bits int
		want bool
	}{{-1, false}, {0, false}, {26, false}, {27, false}, {28, true}, {31, true}, {32, true}, {40, true}} {
		if got := r.AggregatesInside(tc.bits); got != tc.want {
			t.Errorf("%s at /%d: %v, want %v", r, tc.bits, got, tc.want)
		}
	}
}
