package planner

import "github.com/vipcast/vipcast/internal/iprange"

// AggregationTooWide tells whether announcing a pool's addresses of family fam as
// prefixes of length bits (0: host routes) would reach outside the pool's ranges, and the
// shortest length that would not. An aggregate that reaches outside draws traffic for
// addresses vipcast does not hold, so the planner does not announce it (see BGPFor).
func AggregationTooWide(ranges []iprange.Range, fam iprange.Family, bits int) (shortest int, tooWide bool) {
	shortest, ok := iprange.ShortestAggregation(ranges, fam)
	if !ok {
		return 0, false
	}
	return shortest, bits > 0 && bits < shortest
}

// aggKey is one advertisement, pool and family whose aggregation was checked.
type aggKey struct {
	ad   int
	pool string
	v4   bool
}

// aggFits remembers, per advertisement, pool and family, whether the advertisement's
// aggregation keeps the pool's aggregates inside the pool.
type aggFits map[aggKey]bool

// takes tells whether the j-th BGP advertisement announces ip: through a pool it selects
// (both of its pool lists empty: any pool) that its aggregation length does not overreach.
// An address in no pool is taken by an advertisement that selects every pool, as before.
func (f aggFits) takes(in Input, j int, ip IP) bool {
	ad := &in.BGP[j]
	all := len(ad.Pools) == 0 && len(ad.PoolSelectors) == 0
	if all && len(ip.Pools) == 0 {
		return true
	}
	for _, p := range ip.Pools {
		if (all || selectsPool(in, ad.Pools, ad.PoolSelectors, []string{p})) && f.fits(in, j, p, ip.Addr.Is4()) {
			return true
		}
	}
	return false
}

func (f aggFits) fits(in Input, j int, pool string, v4 bool) bool {
	ad := &in.BGP[j]
	bits, fam := ad.AggregationLengthV6, iprange.IPv6
	if v4 {
		bits, fam = ad.AggregationLength, iprange.IPv4
	}
	if bits == 0 {
		return true
	}
	k := aggKey{ad: j, pool: pool, v4: v4}
	if ok, seen := f[k]; seen {
		return ok
	}
	ranges, known := in.PoolRanges[pool]
	_, tooWide := AggregationTooWide(ranges, fam, bits)
	f[k] = !known || !tooWide
	return f[k]
}
