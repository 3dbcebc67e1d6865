package allocator

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/vipcast/vipcast/internal/iprange"
)

func spanStrings(u *usedSet) []string {
	out := []string{}
	u.t.Ascend(func(s span) bool {
		if s.first == s.last {
			out = append(out, s.first.String())
		} else {
			out = append(out, s.first.String()+"-"+s.last.String())
		}
		return true
	})
	return out
}

func ipr(first, last string) iprange.Range {
	return iprange.Range{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)}
}

func TestUsedSetAddRemove(t *testing.T) {
	type op struct {
		add    bool
		ip     string
		remove bool
	}
	add := func(ip string) op { return op{add: true, ip: ip} }
	del := func(ip string) op { return op{remove: true, ip: ip} }
	tests := []struct {
		name  string
		ops   []op
		spans []string
	}{
		{name: "empty", spans: []string{}},
		{name: "one", ops: []op{add("192.0.2.1")}, spans: []string{"192.0.2.1"}},
		{name: "add twice", ops: []op{add("192.0.2.1"), add("192.0.2.1")}, spans: []string{"192.0.2.1"}},
		{name: "merge after", ops: []op{add("192.0.2.1"), add("192.0.2.2")}, spans: []string{"192.0.2.1-192.0.2.2"}},
		{name: "merge before", ops: []op{add("192.0.2.2"), add("192.0.2.1")}, spans: []string{"192.0.2.1-192.0.2.2"}},
		{name: "bridge two spans", ops: []op{add("192.0.2.1"), add("192.0.2.3"), add("192.0.2.2")}, spans: []string{"192.0.2.1-192.0.2.3"}},
		{name: "gap kept", ops: []op{add("192.0.2.1"), add("192.0.2.3")}, spans: []string{"192.0.2.1", "192.0.2.3"}},
		{name: "across an octet", ops: []op{add("192.0.2.255"), add("192.0.3.0")}, spans: []string{"192.0.2.255-192.0.3.0"}},
		{
			name:  "remove the middle splits",
			ops:   []op{add("192.0.2.1"), add("192.0.2.2"), add("192.0.2.3"), del("192.0.2.2")},
			spans: []string{"192.0.2.1", "192.0.2.3"},
		},
		{
			name:  "remove the first shrinks",
			ops:   []op{add("192.0.2.1"), add("192.0.2.2"), add("192.0.2.3"), del("192.0.2.1")},
			spans: []string{"192.0.2.2-192.0.2.3"},
		},
		{
			name:  "remove the last shrinks",
			ops:   []op{add("192.0.2.1"), add("192.0.2.2"), add("192.0.2.3"), del("192.0.2.3")},
			spans: []string{"192.0.2.1-192.0.2.2"},
		},
		{name: "remove the only", ops: []op{add("192.0.2.1"), del("192.0.2.1")}, spans: []string{}},
		{name: "remove absent", ops: []op{add("192.0.2.1"), del("192.0.2.5"), del("192.0.2.0")}, spans: []string{"192.0.2.1"}},
		{name: "remove from empty", ops: []op{del("192.0.2.1")}, spans: []string{}},
		{
			name:  "families never merge",
			ops:   []op{add("255.255.255.255"), add("::"), add("::1"), add("255.255.255.254")},
			spans: []string{"255.255.255.254-255.255.255.255", "::-::1"},
		},
		{
			name:  "remove a v6 address whose low bits match a v4 span",
			ops:   []op{add("192.0.2.1"), add("192.0.2.2"), del("::c000:201")},
			spans: []string{"192.0.2.1-192.0.2.2"},
		},
		{
			name:  "top of v6",
			ops:   []op{add("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), add("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")},
			spans: []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		},
		{
			name:  "bottom of v4",
			ops:   []op{add("0.0.0.1"), add("0.0.0.0"), del("0.0.0.1")},
			spans: []string{"0.0.0.0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUsedSet()
			for _, o := range tc.ops {
				if o.add {
					u.add(netip.MustParseAddr(o.ip))
				} else {
					u.remove(netip.MustParseAddr(o.ip))
				}
			}
			if got := spanStrings(u); !slices.Equal(got, tc.spans) {
				t.Fatalf("spans = %v, want %v", got, tc.spans)
			}
		})
	}
}

func TestUsedSetFirstFree(t *testing.T) {
	tests := []struct {
		name     string
		used     []string
		from, to string
		want     string // "" means none
	}{
		{name: "empty set", from: "192.0.2.0", to: "192.0.2.255", want: "192.0.2.0"},
		{name: "from is free", used: []string{"192.0.2.1"}, from: "192.0.2.0", to: "192.0.2.255", want: "192.0.2.0"},
		{name: "skip one span", used: []string{"192.0.2.0", "192.0.2.1"}, from: "192.0.2.0", to: "192.0.2.255", want: "192.0.2.2"},
		{name: "from inside a span", used: []string{"192.0.2.0", "192.0.2.1", "192.0.2.2"}, from: "192.0.2.1", to: "192.0.2.255", want: "192.0.2.3"},
		{name: "span reaches past to", used: []string{"192.0.2.0", "192.0.2.1", "192.0.2.2"}, from: "192.0.2.0", to: "192.0.2.1"},
		{name: "span ends at to", used: []string{"192.0.2.0", "192.0.2.1"}, from: "192.0.2.0", to: "192.0.2.1"},
		{name: "one free at to", used: []string{"192.0.2.0", "192.0.2.1"}, from: "192.0.2.0", to: "192.0.2.2", want: "192.0.2.2"},
		{name: "single address range used", used: []string{"192.0.2.9"}, from: "192.0.2.9", to: "192.0.2.9"},
		{name: "single address range free", used: []string{"192.0.2.8"}, from: "192.0.2.9", to: "192.0.2.9", want: "192.0.2.9"},
		{name: "span before from does not matter", used: []string{"192.0.2.0", "192.0.2.1"}, from: "192.0.2.5", to: "192.0.2.9", want: "192.0.2.5"},
		{
			name: "across spans with gaps uses the first gap",
			used: []string{"192.0.2.0", "192.0.2.1", "192.0.2.3", "192.0.2.4"},
			from: "192.0.2.0", to: "192.0.2.9", want: "192.0.2.2",
		},
		{name: "end of v4 used", used: []string{"255.255.255.254", "255.255.255.255"}, from: "255.255.255.254", to: "255.255.255.255"},
		{name: "end of v4 from the last", used: []string{"255.255.255.255"}, from: "255.255.255.255", to: "255.255.255.255"},
		{name: "end of v4 free", used: []string{"255.255.255.254"}, from: "255.255.255.254", to: "255.255.255.255", want: "255.255.255.255"},
		{name: "end of v4 with v6 used", used: []string{"255.255.255.255", "::"}, from: "255.255.255.255", to: "255.255.255.255"},
		{name: "v6 after a full v4 top", used: []string{"255.255.255.255"}, from: "::", to: "::1", want: "::"},
		{name: "v6 ignores v4 spans", used: []string{"0.0.0.0", "0.0.0.1"}, from: "::", to: "::ff", want: "::"},
		{name: "v6 skip", used: []string{"2001:db8::", "2001:db8::1"}, from: "2001:db8::", to: "2001:db8::ff", want: "2001:db8::2"},
		{name: "end of v6", used: []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, from: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", to: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUsedSet()
			for _, ip := range tc.used {
				u.add(netip.MustParseAddr(ip))
			}
			got, ok := u.firstFree(netip.MustParseAddr(tc.from), netip.MustParseAddr(tc.to))
			if tc.want == "" {
				if ok {
					t.Fatalf("firstFree(%s, %s) = %s, want none", tc.from, tc.to, got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(tc.want) {
				t.Fatalf("firstFree(%s, %s) = %s, %v, want %s", tc.from, tc.to, got, ok, tc.want)
			}
		})
	}
}

func TestUsedSetCountInAndEach(t *testing.T) {
	used := []string{
		"192.0.2.0", "192.0.2.1", "192.0.2.2",
		"192.0.2.10",
		"192.0.2.20", "192.0.2.21",
		"2001:db8::1", "2001:db8::2",
	}
	tests := []struct {
		name string
		r    iprange.Range
		want []string
	}{
		{name: "everything v4", r: ipr("0.0.0.0", "255.255.255.255"), want: used[:6]},
		{name: "everything v6", r: ipr("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), want: used[6:]},
		{name: "clipped at both ends", r: ipr("192.0.2.1", "192.0.2.20"), want: []string{"192.0.2.1", "192.0.2.2", "192.0.2.10", "192.0.2.20"}},
		{name: "inside one span", r: ipr("192.0.2.1", "192.0.2.1"), want: []string{"192.0.2.1"}},
		{name: "in a gap", r: ipr("192.0.2.3", "192.0.2.9"), want: nil},
		{name: "after everything v4", r: ipr("192.0.2.22", "192.0.2.255"), want: nil},
		{name: "v6 whose low bits match v4 spans", r: ipr("::c000:200", "::c000:2ff"), want: nil},
		{name: "v6 clipped", r: ipr("2001:db8::2", "2001:db8::ff"), want: []string{"2001:db8::2"}},
	}
	u := newUsedSet()
	for _, ip := range used {
		u.add(netip.MustParseAddr(ip))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := u.countIn(tc.r); got != uint64(len(tc.want)) {
				t.Errorf("countIn(%v) = %d, want %d", tc.r, got, len(tc.want))
			}
			var got []string
			if !u.each(tc.r, func(ip netip.Addr) bool { got = append(got, ip.String()); return true }) {
				t.Errorf("each(%v) reported an early stop", tc.r)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("each(%v) visited %v, want %v", tc.r, got, tc.want)
			}
			if len(tc.want) > 1 {
				var first []string
				if u.each(tc.r, func(ip netip.Addr) bool { first = append(first, ip.String()); return false }) {
					t.Errorf("each(%v) ignored fn's false", tc.r)
				}
				if !slices.Equal(first, tc.want[:1]) {
					t.Errorf("each(%v) stopping at once visited %v", tc.r, first)
				}
			}
		})
	}
	t.Run("a whole /16", func(t *testing.T) {
		u := newUsedSet()
		r := ipr("198.18.0.0", "198.18.255.255")
		for ip := r.First; ip.Compare(r.Last) <= 0; ip = ip.Next() {
			u.add(ip)
		}
		if got := spanStrings(u); !slices.Equal(got, []string{"198.18.0.0-198.18.255.255"}) {
			t.Fatalf("spans = %v", got)
		}
		if got := u.countIn(ipr("0.0.0.0", "255.255.255.255")); got != 65536 {
			t.Fatalf("countIn = %d", got)
		}
		if got := u.countIn(ipr("198.18.1.0", "198.18.1.255")); got != 256 {
			t.Fatalf("countIn of a /24 = %d", got)
		}
	})
}

// TestUsedSetRandom compares the used set with a plain map over random operations in a
// small window of addresses, with spans crossing the v4/v6 boundary.
func TestUsedSetRandom(t *testing.T) {
	var window []netip.Addr
	for ip := netip.MustParseAddr("255.255.255.200"); ip.IsValid(); ip = ip.Next() {
		window = append(window, ip)
	}
	for ip := netip.MustParseAddr("::"); len(window) < 120; ip = ip.Next() {
		window = append(window, ip)
	}
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(seed, 7))
			u := newUsedSet()
			model := map[netip.Addr]bool{}
			for range 2000 {
				ip := window[rnd.IntN(len(window))]
				if rnd.IntN(2) == 0 {
					u.add(ip)
					model[ip] = true
				} else {
					u.remove(ip)
					delete(model, ip)
				}
				// Spans are disjoint, non-touching, one family each.
				var prev *span
				u.t.Ascend(func(s span) bool {
					if s.first.BitLen() != s.last.BitLen() || s.last.Less(s.first) {
						t.Fatalf("bad span %v-%v", s.first, s.last)
					}
					if prev != nil && prev.last.BitLen() == s.first.BitLen() && prev.last.Next().Compare(s.first) >= 0 {
						t.Fatalf("spans %v-%v and %v-%v touch or overlap", prev.first, prev.last, s.first, s.last)
					}
					p := s
					prev = &p
					return true
				})
			}
			for _, ip := range window {
				if u.contains(ip) != model[ip] {
					t.Fatalf("contains(%s) = %v, model says %v", ip, u.contains(ip), model[ip])
				}
			}
			// firstFree and countIn against the model over random sub-ranges of one family.
			for range 200 {
				i, j := rnd.IntN(len(window)), rnd.IntN(len(window))
				if i > j {
					i, j = j, i
				}
				if window[i].BitLen() != window[j].BitLen() {
					continue
				}
				r := iprange.Range{First: window[i], Last: window[j]}
				var want netip.Addr
				var n uint64
				for k := i; k <= j; k++ {
					if model[window[k]] {
						n++
					} else if !want.IsValid() {
						want = window[k]
					}
				}
				got, ok := u.firstFree(r.First, r.Last)
				if ok != want.IsValid() || (ok && got != want) {
					t.Fatalf("firstFree(%v) = %v, %v, want %v", r, got, ok, want)
				}
				if c := u.countIn(r); c != n {
					t.Fatalf("countIn(%v) = %d, want %d", r, c, n)
				}
			}
		})
	}
}

// countIn is a test helper: the tests use it to check the span structure.
// countIn returns how many used addresses lie in r: O(log n + spans visited).
func (u *usedSet) countIn(r iprange.Range) uint64 {
	var n uint64
	u.spansFrom(r, func(lo, hi netip.Addr) bool {
		n += iprange.Range{First: lo, Last: hi}.Size()
		return true
	})
	return n
}
