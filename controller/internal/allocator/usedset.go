package allocator

import (
	"net/netip"

	"github.com/google/btree"

	"github.com/vipcast/vipcast/internal/iprange"
)

// span is a run of consecutive used addresses, first..last inclusive.
type span struct{ first, last netip.Addr }

// usedSet holds every address in use as disjoint, non-touching spans in a B-tree, so
// that "the first free address at or after x" is one O(log n) descent: x itself if no span
// holds it, else the address after that span's end.
type usedSet struct {
	t *btree.BTreeG[span]
}

func newUsedSet() *usedSet {
	return &usedSet{t: btree.NewG(32, func(a, b span) bool { return a.first.Less(b.first) })}
}

// floor returns the span with the greatest first <= a.
func (u *usedSet) floor(a netip.Addr) (span, bool) {
	var out span
	found := false
	u.t.DescendLessOrEqual(span{first: a}, func(s span) bool {
		out, found = s, true
		return false
	})
	return out, found
}

func (u *usedSet) contains(a netip.Addr) bool {
	s, ok := u.floor(a)
	return ok && s.first.BitLen() == a.BitLen() && a.Compare(s.last) <= 0
}

// add marks a as used, merging with the neighbouring spans.
func (u *usedSet) add(a netip.Addr) {
	if u.contains(a) {
		return
	}
	n := span{first: a, last: a}
	if prev, ok := u.floor(a); ok && prev.first.BitLen() == a.BitLen() && prev.last.Next() == a {
		u.t.Delete(prev)
		n.first = prev.first
	}
	if next := a.Next(); next.IsValid() {
		if s, ok := u.t.Get(span{first: next}); ok {
			u.t.Delete(s)
			n.last = s.last
		}
	}
	u.t.ReplaceOrInsert(n)
}

// remove marks a as free, splitting its span.
func (u *usedSet) remove(a netip.Addr) {
	s, ok := u.floor(a)
	if !ok || s.first.BitLen() != a.BitLen() || s.last.Less(a) {
		return
	}
	u.t.Delete(s)
	if s.first.Less(a) {
		u.t.ReplaceOrInsert(span{first: s.first, last: a.Prev()})
	}
	if a.Less(s.last) {
		u.t.ReplaceOrInsert(span{first: a.Next(), last: s.last})
	}
}

// firstFree returns the first address in [from, to] that is not used.
func (u *usedSet) firstFree(from, to netip.Addr) (netip.Addr, bool) {
	c := from
	if s, ok := u.floor(from); ok && s.first.BitLen() == from.BitLen() && from.Compare(s.last) <= 0 {
		c = s.last.Next()
		if !c.IsValid() || c.BitLen() != from.BitLen() {
			return netip.Addr{}, false
		}
	}
	return c, c.Compare(to) <= 0
}

// spansFrom calls fn for each span that overlaps r, in order, clipped to r, until fn
// returns false; it reports whether it went through to the end.
func (u *usedSet) spansFrom(r iprange.Range, fn func(lo, hi netip.Addr) bool) bool {
	start := r.First
	if s, ok := u.floor(r.First); ok && s.first.BitLen() == r.First.BitLen() {
		start = s.first
	}
	done := true
	u.t.AscendGreaterOrEqual(span{first: start}, func(s span) bool {
		if r.Last.Less(s.first) || s.first.BitLen() != r.First.BitLen() {
			return false
		}
		lo, hi := s.first, s.last
		if lo.Less(r.First) {
			lo = r.First
		}
		if r.Last.Less(hi) {
			hi = r.Last
		}
		if lo.Compare(hi) <= 0 && !fn(lo, hi) {
			done = false
			return false
		}
		return true
	})
	return done
}

// each calls fn for every used address in r, in order, until fn returns false; it
// reports whether it went through to the end.
func (u *usedSet) each(r iprange.Range, fn func(netip.Addr) bool) bool {
	return u.spansFrom(r, func(lo, hi netip.Addr) bool {
		for ip := lo; ip.IsValid() && ip.Compare(hi) <= 0; ip = ip.Next() {
			if !fn(ip) {
				return false
			}
		}
		return true
	})
}
