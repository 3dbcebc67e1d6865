package iprange

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// Family is an IP address family.
type Family int

// The two families. The zero value is no family.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// String returns the Kubernetes spelling of the family ("IPv4", "IPv6").
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	default:
		return "unknown"
	}
}

// FamilyOf returns the family of an address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Range is an inclusive range of addresses of one family: First <= Last.
type Range struct {
	First, Last netip.Addr
}

// Parse reads one entry of an IPAddressPool's addresses: a CIDR ("192.0.2.0/28",
// "2001:db8::/124") or an inclusive range ("192.0.2.10-192.0.2.20"). Host bits in a CIDR
// are ignored, as in "192.0.2.7/24".
func Parse(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Range{}, fmt.Errorf("empty address entry")
	}
	if first, last, ok := strings.Cut(s, "-"); ok {
		return parseRange(s, strings.TrimSpace(first), strings.TrimSpace(last))
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Range{}, fmt.Errorf("%q is neither a CIDR (192.0.2.0/28) nor a range (192.0.2.10-192.0.2.20)", s)
	}
	if p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return Range{}, fmt.Errorf("%q: IPv4-mapped addresses and zones are not allowed", s)
	}
	p = p.Masked()
	return Range{First: p.Addr(), Last: lastOf(p)}, nil
}

func parseRange(s, first, last string) (Range, error) {
	a, errA := netip.ParseAddr(first)
	b, errB := netip.ParseAddr(last)
	if errA != nil || errB != nil {
		return Range{}, fmt.Errorf("%q: a range must be two IP addresses joined by '-'", s)
	}
	for _, x := range []netip.Addr{a, b} {
		if x.Is4In6() || x.Zone() != "" {
			return Range{}, fmt.Errorf("%q: IPv4-mapped addresses and zones are not allowed", s)
		}
	}
	if a.Is4() != b.Is4() {
		return Range{}, fmt.Errorf("%q: a range must not mix IPv4 and IPv6", s)
	}
	if b.Less(a) {
		return Range{}, fmt.Errorf("%q: the range is reversed (%s comes after %s)", s, a, b)
	}
	return Range{First: a, Last: b}, nil
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		lo := i * 8
		switch {
		case bits <= lo:
			b[i] = 0xff
		case bits < lo+8:
			b[i] |= 0xff >> (bits - lo)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// String formats the range as Parse reads it: a CIDR when it is one, else "first-last".
func (r Range) String() string {
	for bits := 0; bits <= r.First.BitLen(); bits++ {
		p := netip.PrefixFrom(r.First, bits)
		if p.Masked().Addr() == r.First && lastOf(p) == r.Last {
			return p.String()
		}
	}
	return r.First.String() + "-" + r.Last.String()
}

// Family returns the family of the range.
func (r Range) Family() Family { return FamilyOf(r.First) }

// Contains reports whether a lies in the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.BitLen() == r.First.BitLen() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Overlaps reports whether two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	return r.First.BitLen() == o.First.BitLen() && r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Size returns the number of addresses in the range, saturated at math.MaxUint64.
func (r Range) Size() uint64 {
	hiA, loA := split(r.First)
	hiB, loB := split(r.Last)
	hi := hiB - hiA
	lo := loB - loA
	if loB < loA {
		hi--
	}
	if hi != 0 || lo == math.MaxUint64 {
		return math.MaxUint64
	}
	return lo + 1
}

// BuggyCount returns how many IPv4 addresses in the range end in .0 or .255.
func (r Range) BuggyCount() uint64 {
	if !r.First.Is4() {
		return 0
	}
	a := uint64(binary.BigEndian.Uint32(r.First.AsSlice()))
	b := uint64(binary.BigEndian.Uint32(r.Last.AsSlice()))
	upTo := func(n uint64, low uint64) uint64 { // values x <= n with x%256 == low, plus one
		if n < low {
			return 0
		}
		return (n-low)/256 + 1
	}
	count := func(low uint64) uint64 {
		c := upTo(b, low)
		if a > 0 {
			c -= upTo(a-1, low)
		}
		return c
	}
	return count(0) + count(255)
}

// IsBuggy reports whether a is an IPv4 address ending in .0 or .255, which some old
// clients and routers treat as a network or broadcast address.
func IsBuggy(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	last := a.As4()[3]
	return last == 0 || last == 255
}

func split(a netip.Addr) (hi, lo uint64) {
	b := a.As16()
	if a.Is4() {
		return 0, uint64(binary.BigEndian.Uint32(b[12:]))
	}
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// Subtract returns the parts of rs not covered by cut, in order. rs must be sorted and
// disjoint, as Normalize returns them.
func Subtract(rs []Range, cut Range) []Range {
	var out []Range
	for _, r := range rs {
		if !r.Overlaps(cut) {
			out = append(out, r)
			continue
		}
		if r.First.Less(cut.First) {
			out = append(out, Range{First: r.First, Last: cut.First.Prev()})
		}
		if cut.Last.Less(r.Last) {
			out = append(out, Range{First: cut.Last.Next(), Last: r.Last})
		}
	}
	return out
}

// Normalize sorts ranges and merges the ones that overlap or touch.
func Normalize(rs []Range) []Range {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b Range) int { return a.First.Compare(b.First) })
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.First.BitLen() == r.First.BitLen() && (r.First.Compare(last.Last) <= 0 || last.Last.Next() == r.First) {
				if last.Last.Less(r.Last) {
					last.Last = r.Last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}
