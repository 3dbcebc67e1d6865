package poolset

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/iprange"
)

// Pool is one IPAddressPool as the allocator and the speakers see it.
type Pool struct {
	Name string
	// Declared are the pool's addresses as written, normalized.
	Declared []iprange.Range
	// Ranges are the addresses that may be handed out: Declared less the parts other pools
	// also claim.
	Ranges     []iprange.Range
	AutoAssign bool
	AvoidBuggy bool
	// Terminating pools hand out nothing new; their holders keep what they have.
	Terminating bool
	// Conflicts names the other pools that claim some of Declared.
	Conflicts []string
	// Err says why the pool is unusable (an address entry that does not parse, a selector
	// that does not compile); such a pool hands out nothing.
	Err error
	// Allocation limits the pool to some Services; nil means any Service.
	Allocation *Allocation
}

// Allocation is the compiled form of an IPAddressPool's serviceAllocation.
type Allocation struct {
	Priority           int32
	Namespaces         map[string]bool
	NamespaceSelectors []labels.Selector
	ServiceSelectors   []labels.Selector
}

// Serves reports whether the pool's serviceAllocation admits a Service with these labels,
// in a namespace with these labels: whether it may hold the pool's addresses at all, named,
// requested or chosen automatically.
func (p *Pool) Serves(namespace string, nsLabels, svcLabels map[string]string) bool {
	a := p.Allocation
	if a == nil {
		return true
	}
	if len(a.Namespaces) > 0 && !a.Namespaces[namespace] {
		return false
	}
	return anyMatches(a.NamespaceSelectors, nsLabels) && anyMatches(a.ServiceSelectors, svcLabels)
}

// Describe says whom the allocation admits, for messages: "namespaces a, b; Services
// matching app=web".
func (a *Allocation) Describe() string {
	if a == nil {
		return "admits every Service"
	}
	var parts []string
	if len(a.Namespaces) > 0 {
		parts = append(parts, "namespaces "+strings.Join(slices.Sorted(maps.Keys(a.Namespaces)), ", "))
	}
	if len(a.NamespaceSelectors) > 0 {
		parts = append(parts, "namespaces matching "+joinSelectors(a.NamespaceSelectors))
	}
	if len(a.ServiceSelectors) > 0 {
		parts = append(parts, "Services matching "+joinSelectors(a.ServiceSelectors))
	}
	if len(parts) == 0 {
		return "admits every Service"
	}
	return "admits " + strings.Join(parts, "; ")
}

func joinSelectors(sels []labels.Selector) string {
	s := make([]string, len(sels))
	for i, sel := range sels {
		s[i] = sel.String()
	}
	return strings.Join(s, " or ")
}

func anyMatches(sels []labels.Selector, l map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	set := labels.Set(l)
	for _, s := range sels {
		if s.Matches(set) {
			return true
		}
	}
	return false
}

// Usable reports whether new addresses may come from the pool.
func (p *Pool) Usable() bool { return p.Err == nil && !p.Terminating }

// Families returns the families the pool can hand out.
func (p *Pool) Families() []iprange.Family {
	var fs []iprange.Family
	for _, r := range p.Ranges {
		if !slices.Contains(fs, r.Family()) {
			fs = append(fs, r.Family())
		}
	}
	return fs
}

// Snapshot is an immutable view of every pool, built by Build.
type Snapshot struct {
	pools map[string]*Pool
	// index holds every pool's Ranges, sorted and disjoint, for address -> pool look-ups.
	index []owned
	// ordered holds the pools in the order the allocator tries them for a Service that
	// names none: pools with a serviceAllocation by priority, then the rest, by name.
	ordered []*Pool
}

type owned struct {
	r    iprange.Range
	pool *Pool
}

// Build compiles IPAddressPools into a snapshot. Pools that overlap lose the overlapping
// addresses (neither hands them out) and name each other in Conflicts.
func Build(objs []v1alpha1.IPAddressPool) *Snapshot {
	s := &Snapshot{pools: make(map[string]*Pool, len(objs))}
	var all []owned
	for i := range objs {
		p := compile(&objs[i])
		s.pools[p.Name] = p
		for _, r := range p.Declared {
			all = append(all, owned{r: r, pool: p})
		}
	}
	markConflicts(all)
	for _, p := range s.pools {
		if p.Err != nil {
			continue
		}
		for _, r := range p.Ranges {
			s.index = append(s.index, owned{r: r, pool: p})
		}
		if !p.Terminating {
			s.ordered = append(s.ordered, p)
		}
	}
	slices.SortFunc(s.index, func(a, b owned) int { return a.r.First.Compare(b.r.First) })
	slices.SortFunc(s.ordered, comparePools)
	return s
}

func comparePools(a, b *Pool) int {
	rank := func(p *Pool) (int, int32) {
		switch {
		case p.Allocation != nil && p.Allocation.Priority > 0:
			return 0, p.Allocation.Priority
		case p.Allocation != nil:
			return 1, 0
		default:
			return 2, 0
		}
	}
	ra, pa := rank(a)
	rb, pb := rank(b)
	return cmp.Or(cmp.Compare(ra, rb), cmp.Compare(pa, pb), strings.Compare(a.Name, b.Name))
}

// markConflicts finds the addresses claimed by more than one pool, removes them from the
// Ranges of every claimant and records who conflicts with whom. A sweep over the sorted
// ranges: O(R log R) for R ranges, plus the overlaps found.
func markConflicts(all []owned) {
	slices.SortFunc(all, func(a, b owned) int { return a.r.First.Compare(b.r.First) })
	for i := range all {
		for j := i + 1; j < len(all) && all[j].r.Overlaps(all[i].r); j++ {
			a, b := all[i], all[j]
			if a.pool == b.pool {
				continue
			}
			cut := iprange.Range{First: b.r.First, Last: minAddr(a.r.Last, b.r.Last)}
			a.pool.Ranges = iprange.Subtract(a.pool.Ranges, cut)
			b.pool.Ranges = iprange.Subtract(b.pool.Ranges, cut)
			addConflict(a.pool, b.pool.Name)
			addConflict(b.pool, a.pool.Name)
		}
	}
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return a
	}
	return b
}

func addConflict(p *Pool, other string) {
	if !slices.Contains(p.Conflicts, other) {
		p.Conflicts = append(p.Conflicts, other)
		slices.Sort(p.Conflicts)
	}
}

func compile(obj *v1alpha1.IPAddressPool) *Pool {
	p := &Pool{
		Name:        obj.Name,
		AutoAssign:  obj.Spec.AutoAssign == nil || *obj.Spec.AutoAssign,
		AvoidBuggy:  obj.Spec.AvoidBuggyIPs,
		Terminating: obj.DeletionTimestamp != nil,
	}
	var errs []error
	var rs []iprange.Range
	for _, a := range obj.Spec.Addresses {
		r, err := iprange.Parse(string(a))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rs = append(rs, r)
	}
	p.Declared = iprange.Normalize(rs)
	p.Ranges = slices.Clone(p.Declared)
	if sa := obj.Spec.ServiceAllocation; sa != nil {
		a, err := compileAllocation(sa)
		errs = append(errs, err)
		p.Allocation = a
	}
	p.Err = errors.Join(errs...)
	return p
}

func compileAllocation(sa *v1alpha1.ServiceAllocation) (*Allocation, error) {
	a := &Allocation{Priority: sa.Priority}
	if len(sa.Namespaces) > 0 {
		a.Namespaces = make(map[string]bool, len(sa.Namespaces))
		for _, ns := range sa.Namespaces {
			a.Namespaces[ns] = true
		}
	}
	var err error
	if a.NamespaceSelectors, err = Selectors(sa.NamespaceSelectors); err != nil {
		return nil, fmt.Errorf("namespaceSelectors: %w", err)
	}
	if a.ServiceSelectors, err = Selectors(sa.ServiceSelectors); err != nil {
		return nil, fmt.Errorf("serviceSelectors: %w", err)
	}
	return a, nil
}

// Selectors compiles label selectors, failing on the first that does not parse.
func Selectors(in []metav1.LabelSelector) ([]labels.Selector, error) {
	out := make([]labels.Selector, 0, len(in))
	for i := range in {
		s, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Pool returns the named pool, or nil.
func (s *Snapshot) Pool(name string) *Pool { return s.pools[name] }

// Names returns every pool's name, sorted.
func (s *Snapshot) Names() []string {
	names := make([]string, 0, len(s.pools))
	for n := range s.pools {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Ordered returns the usable pools in the order they are tried for a Service that names
// none. The slice is shared: do not modify it.
func (s *Snapshot) Ordered() []*Pool { return s.ordered }

// PoolOf returns the pool whose Ranges hold a, or nil: O(log R).
func (s *Snapshot) PoolOf(a netip.Addr) *Pool {
	i := sort.Search(len(s.index), func(i int) bool { return a.Less(s.index[i].r.First) })
	if i == 0 {
		return nil
	}
	if o := s.index[i-1]; o.r.Contains(a) {
		return o.pool
	}
	return nil
}

// DeclaringPools returns the names of every pool that lists a, even where it is contested
// or the pool is terminating: O(P) for P pools, for messages only.
func (s *Snapshot) DeclaringPools(a netip.Addr) []string {
	var names []string
	for _, p := range s.pools {
		for _, r := range p.Declared {
			if r.Contains(a) {
				names = append(names, p.Name)
				break
			}
		}
	}
	slices.Sort(names)
	return names
}
