package iprange

// AggregatesInside reports whether every address of r, announced as the prefix of length
// bits that holds it, stays inside r: the prefixes touching r start at r.First and end at
// r.Last, so none reaches past either end. bits of the address length or more always fit.
func (r Range) AggregatesInside(bits int) bool {
	if bits >= r.First.BitLen() {
		return true
	}
	if bits < 0 {
		return false
	}
	first, err := r.First.Prefix(bits)
	if err != nil {
		return false
	}
	last, err := r.Last.Prefix(bits)
	if err != nil {
		return false
	}
	return first.Addr() == r.First && lastOf(last) == r.Last
}

// ShortestAggregation is the shortest prefix length at which every address of family f in
// rs aggregates inside its own range (the prefix length of the narrowest CIDR block that
// makes up rs, as MetalLB checks a pool's aggregationLength). rs must be normalized (see
// Normalize), so that touching ranges count as one. ok is false when rs holds no address
// of f.
func ShortestAggregation(rs []Range, f Family) (bits int, ok bool) {
	for _, r := range rs {
		if r.Family() != f {
			continue
		}
		ok = true
		for !r.AggregatesInside(bits) {
			bits++
		}
	}
	return bits, ok
}
