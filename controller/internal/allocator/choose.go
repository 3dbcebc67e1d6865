package allocator

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/iprange"
	"github.com/vipcast/vipcast/internal/poolset"
)

// choose picks the addresses for a Service that holds none that fit: the requested ones,
// else the first pool, in order, that has a free (or shareable) address of every family
// the Service must have. It changes nothing.
func (a *Allocator) choose(req *Request) ([]netip.Addr, error) {
	if len(req.Families) == 0 {
		return nil, failf(ReasonNoMatchingPool, "the Service has no ipFamilies")
	}
	if len(req.RequestedIPs) > 0 {
		return a.chooseRequested(req)
	}
	pools, err := a.candidates(req)
	if err != nil {
		return nil, err
	}
	// The pool of what the Service holds goes first, so that adding a family (or any
	// other re-allocation) does not move the address it has.
	if cur := a.bySvc[req.Key]; len(cur) > 0 {
		if i := slices.Index(pools, a.pools.PoolOf(cur[0])); i > 0 {
			pools = append([]*poolset.Pool{pools[i]}, slices.Delete(slices.Clone(pools), i, i+1)...)
		}
	}
	must, may := req.wantedFamilies()
	var partial []netip.Addr
	var exhausted []string
	for _, p := range pools {
		var got []netip.Addr
		complete := true
		for _, f := range append(slices.Clone(must), may...) {
			if ip, ok := a.pick(req, p, f); ok {
				got = append(got, ip)
			} else if slices.Contains(must, f) {
				complete = false
				break
			}
		}
		if !complete {
			exhausted = append(exhausted, p.Name)
			continue
		}
		if len(got) == len(must)+len(may) {
			return got, nil
		}
		if partial == nil {
			partial = got
		}
	}
	if partial != nil {
		return partial, nil
	}
	return nil, a.exhaustedError(req, exhausted)
}

func (a *Allocator) exhaustedError(req *Request, pools []string) error {
	if req.SharingKey != "" {
		for ip := range a.byShare[req.SharingKey] {
			// Only holders the Service could share with clash; another namespace's use of
			// the same key is none of its business.
			consenting := slices.ContainsFunc(a.holders[ip], func(h *holder) bool { return h.sharingKey == req.SharingKey && consents(req, h) })
			if p := a.pools.PoolOf(ip); p != nil && consenting && slices.Contains(pools, p.Name) && !a.shareable(req, ip) {
				return failf(ReasonSharingConflict, "no free address in pool %s, and the Services sharing key %q on %s use clashing ports or traffic policy", strings.Join(pools, ", "), req.SharingKey, ip)
			}
		}
	}
	must, _ := req.wantedFamilies()
	names := make([]string, len(must))
	for i, f := range must {
		names[i] = f.String()
	}
	return failf(ReasonPoolExhausted, "no free %s address in pool %s", strings.Join(names, "+"), strings.Join(pools, ", "))
}

// candidates returns the pools a Service may get addresses from, in order, keeping only
// those that have every family it must have.
func (a *Allocator) candidates(req *Request) ([]*poolset.Pool, error) {
	must, _ := req.wantedFamilies()
	hasMust := func(p *poolset.Pool) bool {
		fs := p.Families()
		for _, f := range must {
			if !slices.Contains(fs, f) {
				return false
			}
		}
		return true
	}
	if req.Pool != "" {
		p := a.pools.Pool(req.Pool)
		switch {
		case p == nil:
			return nil, failf(ReasonNoMatchingPool, "IPAddressPool %q does not exist", req.Pool)
		case p.Err != nil:
			return nil, failf(ReasonNoMatchingPool, "IPAddressPool %q is invalid: %v", req.Pool, p.Err)
		case p.Terminating:
			return nil, failf(ReasonNoMatchingPool, "IPAddressPool %q is being deleted", req.Pool)
		case !p.Serves(req.Namespace, req.NamespaceLabels, req.Labels):
			return nil, notAllowed(p)
		case !hasMust(p):
			return nil, failf(ReasonNoMatchingPool, "IPAddressPool %q has no usable %s addresses", req.Pool, familyNames(must))
		}
		return []*poolset.Pool{p}, nil
	}
	var out []*poolset.Pool
	serving := 0
	for _, p := range a.pools.Ordered() {
		if !p.AutoAssign || !p.Serves(req.Namespace, req.NamespaceLabels, req.Labels) {
			continue
		}
		serving++
		if hasMust(p) {
			out = append(out, p)
		}
	}
	switch {
	case serving == 0:
		return nil, failf(ReasonNoMatchingPool, "no IPAddressPool with autoAssign serves this Service")
	case len(out) == 0:
		return nil, failf(ReasonNoMatchingPool, "no IPAddressPool serving this Service has %s addresses", familyNames(must))
	}
	return out, nil
}

// notAllowed is the error for a pool whose serviceAllocation does not admit the Service.
func notAllowed(p *poolset.Pool) error {
	return failf(ReasonNotAllowedByPool, "IPAddressPool %s does not admit this Service (its serviceAllocation %s)", p.Name, p.Allocation.Describe())
}

func familyNames(fs []iprange.Family) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.String()
	}
	return strings.Join(names, " and ")
}

// pick finds an address of family f in pool p for req: one the Service holds, else one
// held under its sharing key that it may share, else the lowest free one. O(log n) per free
// address tried; only addresses ending in .0/.255 in an avoidBuggyIPs pool are skipped.
func (a *Allocator) pick(req *Request, p *poolset.Pool, f iprange.Family) (netip.Addr, bool) {
	// An address the Service already holds in this pool stays with it.
	for _, ip := range a.bySvc[req.Key] {
		if iprange.FamilyOf(ip) == f && a.pools.PoolOf(ip) == p && a.fits(req, ip) {
			return ip, true
		}
	}
	if ip, ok := a.pickShared(req, p, f); ok {
		return ip, true
	}
	for _, r := range p.Ranges {
		if r.Family() != f {
			continue
		}
		if ip, ok := a.firstFree(r, p.AvoidBuggy); ok {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// pickShared returns the lowest address of pool p, held under req's sharing key, that req
// may share.
func (a *Allocator) pickShared(req *Request, p *poolset.Pool, f iprange.Family) (netip.Addr, bool) {
	if req.SharingKey == "" {
		return netip.Addr{}, false
	}
	var best netip.Addr
	for ip := range a.byShare[req.SharingKey] {
		if iprange.FamilyOf(ip) == f && a.pools.PoolOf(ip) == p && a.shareable(req, ip) && (!best.IsValid() || ip.Less(best)) {
			best = ip
		}
	}
	return best, best.IsValid()
}

// firstFree returns the lowest free address of r, skipping .0/.255 when avoidBuggy.
func (a *Allocator) firstFree(r iprange.Range, avoidBuggy bool) (netip.Addr, bool) {
	from := r.First
	for {
		ip, ok := a.used.firstFree(from, r.Last)
		if !ok {
			return netip.Addr{}, false
		}
		if !avoidBuggy || !iprange.IsBuggy(ip) {
			return ip, true
		}
		if from = ip.Next(); !from.IsValid() || r.Last.Less(from) {
			return netip.Addr{}, false
		}
	}
}

// chooseRequested checks the addresses a Service asks for.
func (a *Allocator) chooseRequested(req *Request) ([]netip.Addr, error) {
	must, may := req.wantedFamilies()
	allowed := append(slices.Clone(must), may...)
	var fams []iprange.Family
	for _, ip := range req.RequestedIPs {
		f := iprange.FamilyOf(ip)
		if !slices.Contains(allowed, f) {
			return nil, failf(ReasonRequestedIPUnavailable, "%s is %s but the Service's ipFamilies allow %s", ip, f, familyNames(allowed))
		}
		if slices.Contains(fams, f) {
			return nil, failf(ReasonInvalidAnnotation, "at most one address per family may be requested, got two %s", f)
		}
		fams = append(fams, f)
		if err := a.requestable(req, ip); err != nil {
			return nil, err
		}
	}
	for _, f := range must {
		if !slices.Contains(fams, f) {
			return nil, failf(ReasonRequestedIPUnavailable, "the Service requires a %s address but requests only %s", f, familyNames(fams))
		}
	}
	return slices.Clone(req.RequestedIPs), nil
}

func (a *Allocator) requestable(req *Request, ip netip.Addr) error {
	p := a.pools.PoolOf(ip)
	if p == nil {
		switch declared := a.pools.DeclaringPools(ip); len(declared) {
		case 0:
			return failf(ReasonRequestedIPUnavailable, "%s is not in any IPAddressPool", ip)
		case 1:
			if dp := a.pools.Pool(declared[0]); dp != nil && dp.Err != nil {
				return failf(ReasonRequestedIPUnavailable, "%s is in IPAddressPool %s, which is invalid: %v", ip, dp.Name, dp.Err)
			}
			return failf(ReasonRequestedIPUnavailable, "%s is in IPAddressPool %s, which conflicts with another pool", ip, declared[0])
		default:
			return failf(ReasonRequestedIPUnavailable, "%s is claimed by IPAddressPools %s, which conflict", ip, strings.Join(declared, ", "))
		}
	}
	switch {
	case req.Pool != "" && p.Name != req.Pool:
		return failf(ReasonRequestedIPUnavailable, "%s is in IPAddressPool %s, not in the requested pool %s", ip, p.Name, req.Pool)
	case p.Terminating:
		return failf(ReasonRequestedIPUnavailable, "%s is in IPAddressPool %s, which is being deleted", ip, p.Name)
	case p.AvoidBuggy && iprange.IsBuggy(ip):
		return failf(ReasonRequestedIPUnavailable, "%s ends in .0 or .255 and IPAddressPool %s avoids such addresses", ip, p.Name)
	case !p.Serves(req.Namespace, req.NamespaceLabels, req.Labels):
		return notAllowed(p)
	}
	if a.shareable(req, ip) {
		return nil
	}
	others := slices.DeleteFunc(a.Holders(ip), func(k string) bool { return k == req.Key })
	if i := slices.IndexFunc(a.holders[ip], func(h *holder) bool {
		return req.SharingKey != "" && h.sharingKey == req.SharingKey && h.key != req.Key && !consents(req, h)
	}); i >= 0 {
		h := a.holders[ip][i]
		return failf(ReasonSharingNotAllowed, "%s is shared under key %q by %s in namespace %s; a sharing key binds one namespace unless both Services list each other's namespace in %s",
			ip, req.SharingKey, h.key, h.namespace, v1alpha1.AnnotationAllowSharedIPNamespaces)
	}
	if req.SharingKey != "" && slices.ContainsFunc(a.holders[ip], func(h *holder) bool { return h.sharingKey == req.SharingKey }) {
		return failf(ReasonSharingConflict, "%s is shared under key %q by %s, and their ports or traffic policy clash with this Service's", ip, req.SharingKey, strings.Join(others, ", "))
	}
	return failf(ReasonRequestedIPUnavailable, "%s is in use by %s", ip, strings.Join(others, ", "))
}
