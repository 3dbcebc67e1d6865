package iprange

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("bad test address %q: %v", s, err)
	}
	return a
}

func rng(t *testing.T, first, last string) Range {
	t.Helper()
	return Range{First: addr(t, first), Last: addr(t, last)}
}

func mustParse(t *testing.T, s string) Range {
	t.Helper()
	r, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return r
}

func TestParse(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		first, last string
		wantErr     string // substring of the error; empty means success
	}{
		{name: "ipv4 cidr", in: "192.0.2.0/28", first: "192.0.2.0", last: "192.0.2.15"},
		{name: "ipv4 /32", in: "192.0.2.7/32", first: "192.0.2.7", last: "192.0.2.7"},
		{name: "ipv4 /31", in: "192.0.2.6/31", first: "192.0.2.6", last: "192.0.2.7"},
		{name: "ipv4 /0", in: "0.0.0.0/0", first: "0.0.0.0", last: "255.255.255.255"},
		{name: "ipv4 host bits masked", in: "192.0.2.7/24", first: "192.0.2.0", last: "192.0.2.255"},
		{name: "ipv4 host bits masked odd length", in: "10.1.2.3/13", first: "10.0.0.0", last: "10.7.255.255"},
		{name: "ipv6 cidr", in: "2001:db8::/124", first: "2001:db8::", last: "2001:db8::f"},
		{name: "ipv6 host bits masked", in: "2001:db8::1234/120", first: "2001:db8::1200", last: "2001:db8::12ff"},
		{name: "ipv6 /64", in: "2001:db8:0:1::/64", first: "2001:db8:0:1::", last: "2001:db8:0:1:ffff:ffff:ffff:ffff"},
		{name: "ipv6 /128", in: "2001:db8::1/128", first: "2001:db8::1", last: "2001:db8::1"},
		{name: "ipv6 /0", in: "::/0", first: "::", last: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{name: "ipv4 range", in: "192.0.2.10-192.0.2.20", first: "192.0.2.10", last: "192.0.2.20"},
		{name: "ipv4 range single address", in: "192.0.2.10-192.0.2.10", first: "192.0.2.10", last: "192.0.2.10"},
		{name: "ipv4 range across octets", in: "192.0.2.250-192.0.3.5", first: "192.0.2.250", last: "192.0.3.5"},
		{name: "ipv6 range", in: "2001:db8::10-2001:db8::1:0", first: "2001:db8::10", last: "2001:db8::1:0"},
		{name: "surrounding whitespace cidr", in: "  192.0.2.0/30\t\n", first: "192.0.2.0", last: "192.0.2.3"},
		{name: "whitespace around dash", in: " 192.0.2.10 -\t192.0.2.20 ", first: "192.0.2.10", last: "192.0.2.20"},

		{name: "empty", in: "", wantErr: "empty"},
		{name: "only whitespace", in: " \t ", wantErr: "empty"},
		{name: "bare ipv4 address", in: "192.0.2.1", wantErr: "neither a CIDR"},
		{name: "bare ipv6 address", in: "2001:db8::1", wantErr: "neither a CIDR"},
		{name: "garbage", in: "pool-a", wantErr: "two IP addresses"},
		{name: "garbage without dash", in: "hello", wantErr: "neither a CIDR"},
		{name: "prefix too long v4", in: "192.0.2.0/33", wantErr: "neither a CIDR"},
		{name: "prefix too long v6", in: "2001:db8::/129", wantErr: "neither a CIDR"},
		{name: "negative prefix", in: "192.0.2.0/-1", wantErr: "two IP addresses"},
		{name: "bad octet", in: "192.0.2.256/32", wantErr: "neither a CIDR"},
		{name: "space inside cidr", in: "192.0.2.0 /24", wantErr: "neither a CIDR"},
		{name: "reversed range v4", in: "192.0.2.20-192.0.2.10", wantErr: "reversed"},
		{name: "reversed range v6", in: "2001:db8::2-2001:db8::1", wantErr: "reversed"},
		{name: "mixed families", in: "192.0.2.1-2001:db8::1", wantErr: "must not mix"},
		{name: "mixed families v6 first", in: "2001:db8::1-192.0.2.1", wantErr: "must not mix"},
		{name: "half range", in: "192.0.2.1-", wantErr: "two IP addresses"},
		{name: "range start missing", in: "-192.0.2.1", wantErr: "two IP addresses"},
		{name: "double dash", in: "192.0.2.1--192.0.2.5", wantErr: "two IP addresses"},
		{name: "three parts", in: "192.0.2.1-192.0.2.3-192.0.2.5", wantErr: "two IP addresses"},
		{name: "range of cidrs", in: "192.0.2.0/24-192.0.3.0/24", wantErr: "two IP addresses"},
		{name: "ipv4-mapped cidr", in: "::ffff:192.0.2.0/120", wantErr: "IPv4-mapped"},
		{name: "ipv4-mapped range start", in: "::ffff:192.0.2.1-::ffff:192.0.2.9", wantErr: "IPv4-mapped"},
		{name: "ipv4-mapped range end only", in: "::fffe:0:1-::ffff:192.0.2.9", wantErr: "IPv4-mapped"},
		{name: "zone in range", in: "fe80::1%eth0-fe80::2%eth0", wantErr: "zones"},
		{name: "zone in cidr", in: "fe80::1%eth0/64", wantErr: "neither a CIDR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %v, want an error containing %q", tc.in, got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) error %q, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			want := rng(t, tc.first, tc.last)
			if got != want {
				t.Fatalf("Parse(%q) = %v..%v, want %v..%v", tc.in, got.First, got.Last, want.First, want.Last)
			}
		})
	}
}

func TestRangeString(t *testing.T) {
	tests := []struct {
		name string
		r    Range
		want string
	}{
		{name: "v4 cidr", r: Range{First: netip.MustParseAddr("192.0.2.0"), Last: netip.MustParseAddr("192.0.2.15")}, want: "192.0.2.0/28"},
		{name: "v4 single address", r: Range{First: netip.MustParseAddr("192.0.2.9"), Last: netip.MustParseAddr("192.0.2.9")}, want: "192.0.2.9/32"},
		{name: "v4 whole space", r: Range{First: netip.MustParseAddr("0.0.0.0"), Last: netip.MustParseAddr("255.255.255.255")}, want: "0.0.0.0/0"},
		{name: "v4 aligned size but unaligned start", r: Range{First: netip.MustParseAddr("192.0.2.8"), Last: netip.MustParseAddr("192.0.2.23")}, want: "192.0.2.8-192.0.2.23"},
		{name: "v4 range", r: Range{First: netip.MustParseAddr("192.0.2.10"), Last: netip.MustParseAddr("192.0.2.20")}, want: "192.0.2.10-192.0.2.20"},
		{name: "v6 cidr", r: Range{First: netip.MustParseAddr("2001:db8::"), Last: netip.MustParseAddr("2001:db8::ff")}, want: "2001:db8::/120"},
		{name: "v6 single address", r: Range{First: netip.MustParseAddr("2001:db8::1"), Last: netip.MustParseAddr("2001:db8::1")}, want: "2001:db8::1/128"},
		{name: "v6 range", r: Range{First: netip.MustParseAddr("2001:db8::1"), Last: netip.MustParseAddr("2001:db8::ff")}, want: "2001:db8::1-2001:db8::ff"},
		{name: "v6 whole space", r: Range{First: netip.MustParseAddr("::"), Last: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}, want: "::/0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			back, err := Parse(tc.r.String())
			if err != nil {
				t.Fatalf("Parse(String()) = %v", err)
			}
			if back != tc.r {
				t.Fatalf("Parse(String()) = %v..%v, want %v..%v", back.First, back.Last, tc.r.First, tc.r.Last)
			}
		})
	}
}

func TestParseStringRoundTrip(t *testing.T) {
	inputs := []string{
		"192.0.2.0/28", "192.0.2.7/24", "192.0.2.7/32", "0.0.0.0/0", "10.0.0.0/8",
		"192.0.2.10-192.0.2.20", "192.0.2.0-192.0.2.255", "192.0.2.1-192.0.2.1",
		"2001:db8::/124", "2001:db8::1/128", "::/0", "2001:db8::5-2001:db8::1:7", "::/80",
	}
	for _, in := range inputs {
		t.Run(in, func(t *testing.T) {
			r := mustParse(t, in)
			back, err := Parse(r.String())
			if err != nil {
				t.Fatalf("Parse(%q) (from %q): %v", r.String(), in, err)
			}
			if back != r {
				t.Fatalf("round trip of %q via %q gave %v..%v, want %v..%v", in, r.String(), back.First, back.Last, r.First, r.Last)
			}
		})
	}
}

func TestFamily(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Family
		str  string
	}{
		{name: "v4", in: "192.0.2.0/24", want: IPv4, str: "IPv4"},
		{name: "v6", in: "2001:db8::/64", want: IPv6, str: "IPv6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.in)
			if got := r.Family(); got != tc.want {
				t.Fatalf("Family() = %v, want %v", got, tc.want)
			}
			if got := FamilyOf(r.First); got != tc.want {
				t.Fatalf("FamilyOf() = %v, want %v", got, tc.want)
			}
			if got := tc.want.String(); got != tc.str {
				t.Fatalf("String() = %q, want %q", got, tc.str)
			}
		})
	}
	if got := Family(0).String(); got != "unknown" {
		t.Fatalf("Family(0).String() = %q, want unknown", got)
	}
}

func TestContainsOverlaps(t *testing.T) {
	v4 := Range{First: netip.MustParseAddr("192.0.2.10"), Last: netip.MustParseAddr("192.0.2.20")}
	tests := []struct {
		name     string
		a        string
		contains bool
	}{
		{name: "first", a: "192.0.2.10", contains: true},
		{name: "last", a: "192.0.2.20", contains: true},
		{name: "middle", a: "192.0.2.15", contains: true},
		{name: "before", a: "192.0.2.9"},
		{name: "after", a: "192.0.2.21"},
		{name: "v6 with same low bits", a: "::c000:20f"},
		{name: "v4-mapped of a member", a: "::ffff:192.0.2.15"},
	}
	for _, tc := range tests {
		t.Run("contains "+tc.name, func(t *testing.T) {
			if got := v4.Contains(netip.MustParseAddr(tc.a)); got != tc.contains {
				t.Fatalf("Contains(%s) = %v, want %v", tc.a, got, tc.contains)
			}
		})
	}
	overlaps := []struct {
		name string
		o    string
		want bool
	}{
		{name: "same", o: "192.0.2.10-192.0.2.20", want: true},
		{name: "touching below", o: "192.0.2.0-192.0.2.9"},
		{name: "sharing first", o: "192.0.2.0-192.0.2.10", want: true},
		{name: "sharing last", o: "192.0.2.20-192.0.2.30", want: true},
		{name: "touching above", o: "192.0.2.21-192.0.2.30"},
		{name: "inside", o: "192.0.2.12-192.0.2.13", want: true},
		{name: "around", o: "192.0.2.0/24", want: true},
		{name: "other family", o: "::/0"},
	}
	for _, tc := range overlaps {
		t.Run("overlaps "+tc.name, func(t *testing.T) {
			o := mustParse(t, tc.o)
			if got := v4.Overlaps(o); got != tc.want {
				t.Fatalf("%v.Overlaps(%v) = %v, want %v", v4, o, got, tc.want)
			}
			if got := o.Overlaps(v4); got != tc.want {
				t.Fatalf("%v.Overlaps(%v) = %v, want %v", o, v4, got, tc.want)
			}
		})
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want uint64
	}{
		{name: "v4 single", in: "192.0.2.1/32", want: 1},
		{name: "v4 /24", in: "192.0.2.0/24", want: 256},
		{name: "v4 range", in: "192.0.2.10-192.0.2.20", want: 11},
		{name: "v4 whole space", in: "0.0.0.0/0", want: 1 << 32},
		{name: "v6 single", in: "2001:db8::1/128", want: 1},
		{name: "v6 /120", in: "2001:db8::/120", want: 256},
		{name: "v6 /65", in: "2001:db8::/65", want: 1 << 63},
		{name: "v6 range crossing the 64-bit boundary", in: "2001:db8:0:0:ffff:ffff:ffff:fffe-2001:db8:0:1::1", want: 4},
		{name: "v6 just below saturation", in: "2001:db8::-2001:db8::ffff:ffff:ffff:fffe", want: math.MaxUint64},
		{name: "v6 /64 saturates", in: "2001:db8::/64", want: math.MaxUint64},
		{name: "v6 /63 saturates", in: "2001:db8::/63", want: math.MaxUint64},
		{name: "v6 range over 2^64 saturates", in: "2001:db8::1-2001:db8:0:1::1", want: math.MaxUint64},
		{name: "v6 whole space saturates", in: "::/0", want: math.MaxUint64},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.in)
			if got := r.Size(); got != tc.want {
				t.Fatalf("Size(%s) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

// bruteBuggy counts the .0 and .255 addresses of r one by one.
func bruteBuggy(r Range) uint64 {
	var n uint64
	for a := r.First; a.IsValid() && a.Compare(r.Last) <= 0; a = a.Next() {
		if IsBuggy(a) {
			n++
		}
	}
	return n
}

func TestBuggyCount(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "single .0", in: "192.0.2.0/32"},
		{name: "single .255", in: "192.0.2.255/32"},
		{name: "single plain", in: "192.0.2.7/32"},
		{name: "/24", in: "192.0.2.0/24"},
		{name: "/25 low half", in: "192.0.2.0/25"},
		{name: "/25 high half", in: "192.0.2.128/25"},
		{name: "/23", in: "192.0.2.0/23"},
		{name: "inside one /24", in: "192.0.2.1-192.0.2.254"},
		{name: "straddling .255/.0", in: "192.0.2.250-192.0.3.5"},
		{name: "straddling several /24s", in: "192.0.2.17-192.0.7.3"},
		{name: "ending at .255", in: "192.0.2.100-192.0.3.255"},
		{name: "starting at .255", in: "192.0.2.255-192.0.3.10"},
		{name: "starting at zero", in: "0.0.0.0-0.0.2.3"},
		{name: "ending at the top", in: "255.255.254.200-255.255.255.255"},
		{name: "/16", in: "198.18.0.0/16"},
		{name: "v6 never buggy", in: "2001:db8::/120"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, tc.in)
			want := bruteBuggy(r)
			if got := r.BuggyCount(); got != want {
				t.Fatalf("BuggyCount(%s) = %d, brute force says %d", tc.in, got, want)
			}
		})
	}
	t.Run("whole v4 space", func(t *testing.T) {
		if got, want := mustParse(t, "0.0.0.0/0").BuggyCount(), uint64(2<<24); got != want {
			t.Fatalf("BuggyCount(0.0.0.0/0) = %d, want %d", got, want)
		}
	})
}

func TestIsBuggy(t *testing.T) {
	tests := []struct {
		name string
		a    string
		want bool
	}{
		{name: "dot zero", a: "192.0.2.0", want: true},
		{name: "dot 255", a: "192.0.2.255", want: true},
		{name: "dot one", a: "192.0.2.1"},
		{name: "dot 254", a: "192.0.2.254"},
		{name: "v6 ending in zero", a: "2001:db8::"},
		{name: "v6 ending in ff", a: "2001:db8::ff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsBuggy(netip.MustParseAddr(tc.a)); got != tc.want {
				t.Fatalf("IsBuggy(%s) = %v, want %v", tc.a, got, tc.want)
			}
		})
	}
}

func parseAll(t *testing.T, ss ...string) []Range {
	t.Helper()
	var out []Range
	for _, s := range ss {
		out = append(out, mustParse(t, s))
	}
	return out
}

func strs(rs []Range) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func TestSubtract(t *testing.T) {
	tests := []struct {
		name string
		rs   []string
		cut  string
		want []string
	}{
		{name: "no overlap", rs: []string{"192.0.2.0/28"}, cut: "192.0.2.16/28", want: []string{"192.0.2.0/28"}},
		{name: "cut all", rs: []string{"192.0.2.0/28"}, cut: "192.0.2.0/24", want: nil},
		{name: "cut exactly", rs: []string{"192.0.2.0/28"}, cut: "192.0.2.0/28", want: nil},
		{name: "cut middle", rs: []string{"192.0.2.0/28"}, cut: "192.0.2.4-192.0.2.7", want: []string{"192.0.2.0/30", "192.0.2.8/29"}},
		{name: "cut head", rs: []string{"192.0.2.0/28"}, cut: "192.0.1.0-192.0.2.7", want: []string{"192.0.2.8/29"}},
		{name: "cut tail", rs: []string{"192.0.2.0/28"}, cut: "192.0.2.8-192.0.3.0", want: []string{"192.0.2.0/29"}},
		{name: "cut one address", rs: []string{"192.0.2.0/30"}, cut: "192.0.2.1/32", want: []string{"192.0.2.0/32", "192.0.2.2/31"}},
		{
			name: "cut spans several ranges",
			rs:   []string{"192.0.2.0/28", "192.0.2.32/28", "192.0.2.64/28"},
			cut:  "192.0.2.10-192.0.2.66",
			want: []string{"192.0.2.0-192.0.2.9", "192.0.2.67-192.0.2.79"},
		},
		{name: "other family untouched", rs: []string{"192.0.2.0/28", "2001:db8::/124"}, cut: "::/0", want: []string{"192.0.2.0/28"}},
		{name: "v6 cut middle", rs: []string{"2001:db8::/124"}, cut: "2001:db8::8/128", want: []string{"2001:db8::/125", "2001:db8::9-2001:db8::f"}},
		{name: "cut at the top of v4", rs: []string{"255.255.255.0/24"}, cut: "255.255.255.255/32", want: []string{"255.255.255.0-255.255.255.254"}},
		{name: "cut at the bottom of v4", rs: []string{"0.0.0.0/24"}, cut: "0.0.0.0/32", want: []string{"0.0.0.1-0.0.0.255"}},
		{name: "empty input", rs: nil, cut: "192.0.2.0/24", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strs(Subtract(parseAll(t, tc.rs...), mustParse(t, tc.cut)))
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("Subtract(%v, %s) = %v, want %v", tc.rs, tc.cut, got, tc.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{name: "empty", in: nil, want: nil},
		{name: "single", in: []string{"192.0.2.0/24"}, want: []string{"192.0.2.0/24"}},
		{name: "sorted", in: []string{"192.0.2.64/28", "192.0.2.0/28"}, want: []string{"192.0.2.0/28", "192.0.2.64/28"}},
		{name: "overlapping", in: []string{"192.0.2.0-192.0.2.20", "192.0.2.10-192.0.2.30"}, want: []string{"192.0.2.0-192.0.2.30"}},
		{name: "contained", in: []string{"192.0.2.0/24", "192.0.2.10-192.0.2.30"}, want: []string{"192.0.2.0/24"}},
		{name: "contained first in order", in: []string{"192.0.2.0/28", "192.0.2.0/24"}, want: []string{"192.0.2.0/24"}},
		{name: "touching", in: []string{"192.0.2.0/25", "192.0.2.128/25"}, want: []string{"192.0.2.0/24"}},
		{name: "touching ranges", in: []string{"192.0.2.21-192.0.2.30", "192.0.2.10-192.0.2.20"}, want: []string{"192.0.2.10-192.0.2.30"}},
		{name: "gap of one", in: []string{"192.0.2.10-192.0.2.20", "192.0.2.22-192.0.2.30"}, want: []string{"192.0.2.10-192.0.2.20", "192.0.2.22-192.0.2.30"}},
		{name: "duplicates", in: []string{"192.0.2.0/24", "192.0.2.0/24"}, want: []string{"192.0.2.0/24"}},
		{name: "chain merging", in: []string{"192.0.2.0/26", "192.0.2.128/26", "192.0.2.64/26", "192.0.2.192/26"}, want: []string{"192.0.2.0/24"}},
		{
			name: "mixed families",
			in:   []string{"2001:db8::/124", "192.0.2.0/28", "2001:db8::10/124", "192.0.2.8/29"},
			want: []string{"192.0.2.0/28", "2001:db8::/123"},
		},
		{
			name: "v4 top and v6 bottom do not merge",
			in:   []string{"::/120", "255.255.255.0/24"},
			want: []string{"255.255.255.0/24", "::/120"},
		},
		{name: "v6 touching", in: []string{"2001:db8::-2001:db8::ffff", "2001:db8::1:0-2001:db8::1:5"}, want: []string{"2001:db8::-2001:db8::1:5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := parseAll(t, tc.in...)
			orig := slices.Clone(in)
			got := strs(Normalize(in))
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("Normalize(%v) = %v, want %v", tc.in, got, tc.want)
			}
			if !slices.Equal(in, orig) {
				t.Fatalf("Normalize modified its input: %v, was %v", in, orig)
			}
		})
	}
}
