package allocator

import (
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/vipcast/vipcast/internal/iprange"
	"github.com/vipcast/vipcast/internal/poolset"
)

// holder is one Service holding an address.
type holder struct {
	key        string
	namespace  string
	sharingKey string
	// shareWith are the other namespaces this holder consents to share with ("*": any).
	shareWith []string
	ports     []Port
	local     bool
	selector  string
}

// Allocator tracks which Service holds which address and hands out new ones. It is not
// safe for concurrent use; the caller serializes calls.
type Allocator struct {
	pools *poolset.Snapshot
	used  *usedSet
	// holders of every used address; an address with several is shared.
	holders map[netip.Addr][]*holder
	bySvc   map[string][]netip.Addr
	// byShare indexes the addresses held under each allow-shared-ip key.
	byShare map[string]map[netip.Addr]struct{}
	// inPool counts the addresses held in each pool's usable ranges, per family.
	inPool map[string]*[2]uint64
	wait   waitlist
}

// New returns an empty allocator over the given pools.
func New(pools *poolset.Snapshot) *Allocator {
	a := &Allocator{
		pools:   pools,
		used:    newUsedSet(),
		holders: map[netip.Addr][]*holder{},
		bySvc:   map[string][]netip.Addr{},
		byShare: map[string]map[netip.Addr]struct{}{},
		inPool:  map[string]*[2]uint64{},
		wait:    newWaitlist(),
	}
	return a
}

// Pools returns the snapshot in use.
func (a *Allocator) Pools() *poolset.Snapshot { return a.pools }

// SetPools swaps in a new snapshot. Every address held stays held, even outside every
// pool now. Every waiting Service is woken: O(held addresses + waiting Services).
// Services whose addresses changed pool (or left every pool) are woken too, so their
// status can say so.
func (a *Allocator) SetPools(s *poolset.Snapshot) {
	old := a.pools
	a.pools = s
	clear(a.inPool)
	for ip, hs := range a.holders {
		a.count(ip, 1)
		// Holders whose address changed pool, or whose pool changed whom it admits, are
		// woken so their status can say so (OutsidePool, NotAllowedByPool, or back).
		if before, after := old.PoolOf(ip), s.PoolOf(ip); (before == nil) != (after == nil) ||
			(before != nil && (before.Name != after.Name || before.Allocation.Describe() != after.Allocation.Describe())) {
			for _, h := range hs {
				a.wait.woken = append(a.wait.woken, h.key)
			}
		}
	}
	a.wait.wakeAll()
}

// TakeWoken returns the Services that were waiting for an address and may now get one,
// and forgets them.
func (a *Allocator) TakeWoken() []string { return a.wait.take() }

// In returns the Services of a namespace that wait for an address or hold one: O(waiting +
// holding Services), for the rare namespace label change (it can change what a pool admits).
func (a *Allocator) In(namespace string) []string {
	var keys []string
	for k := range a.wait.waiting {
		if ns, _, _ := strings.Cut(k, "/"); ns == namespace {
			keys = append(keys, k)
		}
	}
	for k := range a.bySvc {
		if ns, _, _ := strings.Cut(k, "/"); ns == namespace && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Addresses returns the addresses a Service holds.
func (a *Allocator) Addresses(key string) []netip.Addr { return slices.Clone(a.bySvc[key]) }

// Holders returns the Services holding an address.
func (a *Allocator) Holders(ip netip.Addr) []string {
	var keys []string
	for _, h := range a.holders[ip] {
		keys = append(keys, h.key)
	}
	return keys
}

// Load records addresses a Service already holds (from its status), before any new
// allocation: the restart path. Addresses held by another Service that may not share
// them are not taken, and are returned.
func (a *Allocator) Load(req *Request, ips []netip.Addr) (rejected []netip.Addr) {
	for _, ip := range ips {
		if slices.Contains(a.bySvc[req.Key], ip) {
			continue
		}
		if !a.shareable(req, ip) || a.hasFamily(req.Key, iprange.FamilyOf(ip)) {
			rejected = append(rejected, ip)
			continue
		}
		a.hold(req, ip)
	}
	return rejected
}

func (a *Allocator) hasFamily(key string, f iprange.Family) bool {
	for _, ip := range a.bySvc[key] {
		if iprange.FamilyOf(ip) == f {
			return true
		}
	}
	return false
}

// Release frees every address the Service holds and returns them.
func (a *Allocator) Release(key string) []netip.Addr {
	a.wait.remove(key)
	ips := a.bySvc[key]
	for _, ip := range ips {
		a.unhold(key, ip)
	}
	delete(a.bySvc, key)
	return ips
}

// Assign gives the Service the addresses it should hold and returns them, keeping what it
// holds when that still fits. On failure the Service keeps what it held and waits: it is
// returned by TakeWoken once an address frees up or the pools change.
func (a *Allocator) Assign(req *Request) ([]netip.Addr, error) {
	a.wait.remove(req.Key)
	cause := a.wait.takeCause(req.Key)
	if len(a.bySvc[req.Key]) == 0 && len(req.Current) > 0 {
		a.Load(req, req.Current)
	}
	if ips, ok := a.keep(req); ok {
		return ips, nil
	}
	ips, err := a.choose(req)
	if err != nil {
		a.waitFor(req, cause)
		return a.Addresses(req.Key), err
	}
	for _, old := range a.bySvc[req.Key] {
		if !slices.Contains(ips, old) {
			a.unhold(req.Key, old)
		}
	}
	a.bySvc[req.Key] = slices.DeleteFunc(a.bySvc[req.Key], func(ip netip.Addr) bool { return !slices.Contains(ips, ip) })
	for _, ip := range ips {
		if slices.Contains(a.bySvc[req.Key], ip) {
			a.refresh(req, ip) // kept: record the request's current ports and sharing key
		} else {
			a.hold(req, ip)
		}
	}
	return a.Addresses(req.Key), nil
}

// keep reports whether what the Service holds still fits the request; it refreshes the
// holder's ports and sharing data and, for PreferDualStack, adds a missing family when
// the same pool has one free.
func (a *Allocator) keep(req *Request) ([]netip.Addr, bool) {
	cur := a.bySvc[req.Key]
	if len(cur) == 0 {
		return nil, false
	}
	must, may := req.wantedFamilies()
	for _, ip := range cur {
		if !a.fits(req, ip) {
			return nil, false
		}
	}
	for _, f := range must {
		if !a.hasFamily(req.Key, f) {
			return nil, false
		}
	}
	if len(req.RequestedIPs) > 0 && len(cur) != len(req.RequestedIPs) {
		return nil, false
	}
	for _, ip := range cur {
		a.refresh(req, ip)
	}
	if len(req.RequestedIPs) == 0 {
		pool := a.pools.PoolOf(cur[0])
		for _, f := range may {
			if a.hasFamily(req.Key, f) || pool == nil || !pool.Usable() || !pool.Serves(req.Namespace, req.NamespaceLabels, req.Labels) {
				continue
			}
			if ip, ok := a.pick(req, pool, f); ok {
				a.hold(req, ip)
			}
		}
	}
	return a.Addresses(req.Key), true
}

// fits reports whether a held address still suits the request.
func (a *Allocator) fits(req *Request, ip netip.Addr) bool {
	if !slices.Contains(req.allFamilies(), iprange.FamilyOf(ip)) {
		return false
	}
	if len(req.RequestedIPs) > 0 && !slices.Contains(req.RequestedIPs, ip) {
		return false
	}
	if req.Pool != "" {
		if p := a.pools.PoolOf(ip); p == nil || p.Name != req.Pool {
			return false
		}
	}
	return a.shareable(req, ip)
}

// shareable reports whether req may hold ip next to its other holders.
func (a *Allocator) shareable(req *Request, ip netip.Addr) bool {
	for _, h := range a.holders[ip] {
		if h.key != req.Key && !compatible(req, h) {
			return false
		}
	}
	return true
}

func compatible(req *Request, h *holder) bool {
	if req.SharingKey == "" || h.sharingKey != req.SharingKey || h.local != req.Local || !consents(req, h) {
		return false
	}
	if req.Local && h.selector != req.Selector {
		return false
	}
	for _, p := range req.Ports {
		if slices.Contains(h.ports, p) {
			return false
		}
	}
	return true
}

func (a *Allocator) hold(req *Request, ip netip.Addr) {
	hs := a.holders[ip]
	if len(hs) == 0 {
		a.used.add(ip)
		a.count(ip, 1)
	}
	a.holders[ip] = append(hs, newHolder(req))
	a.bySvc[req.Key] = append(a.bySvc[req.Key], ip)
	if req.SharingKey != "" {
		m := a.byShare[req.SharingKey]
		if m == nil {
			m = map[netip.Addr]struct{}{}
			a.byShare[req.SharingKey] = m
		}
		m[ip] = struct{}{}
	}
}

func newHolder(req *Request) *holder {
	return &holder{
		key: req.Key, namespace: req.Namespace, sharingKey: req.SharingKey, shareWith: slices.Clone(req.ShareNamespaces),
		ports: slices.Clone(req.Ports), local: req.Local, selector: req.Selector,
	}
}

// consents reports whether a Service and a holder in another namespace both agree to share:
// a sharing key binds Services of one namespace only, unless each lists the other's
// namespace (or "*") in its allow-shared-ip-namespaces annotation.
func consents(req *Request, h *holder) bool {
	if h.namespace == req.Namespace {
		return true
	}
	return allows(req.ShareNamespaces, h.namespace) && allows(h.shareWith, req.Namespace)
}

func allows(list []string, ns string) bool {
	return slices.Contains(list, ns) || slices.Contains(list, AnyNamespace)
}

func (a *Allocator) refresh(req *Request, ip netip.Addr) {
	for i, h := range a.holders[ip] {
		if h.key != req.Key {
			continue
		}
		if h.sharingKey != req.SharingKey {
			a.dropShare(h.sharingKey, ip)
			if req.SharingKey != "" {
				if a.byShare[req.SharingKey] == nil {
					a.byShare[req.SharingKey] = map[netip.Addr]struct{}{}
				}
				a.byShare[req.SharingKey][ip] = struct{}{}
			}
		}
		a.holders[ip][i] = newHolder(req)
	}
}

// unhold removes one Service from an address's holders (not from bySvc), freeing the
// address when it was the last.
func (a *Allocator) unhold(key string, ip netip.Addr) {
	hs := a.holders[ip]
	i := slices.IndexFunc(hs, func(h *holder) bool { return h.key == key })
	if i < 0 {
		return
	}
	h := hs[i]
	hs = slices.Delete(hs, i, i+1)
	if len(hs) > 0 {
		a.holders[ip] = hs
		if !slices.ContainsFunc(hs, func(o *holder) bool { return o.sharingKey == h.sharingKey }) {
			a.dropShare(h.sharingKey, ip)
		}
		return
	}
	delete(a.holders, ip)
	a.dropShare(h.sharingKey, ip)
	a.used.remove(ip)
	pool := a.count(ip, -1)
	a.wait.freed(ip, pool)
}

func (a *Allocator) dropShare(key string, ip netip.Addr) {
	if key == "" {
		return
	}
	if m := a.byShare[key]; m != nil {
		delete(m, ip)
		if len(m) == 0 {
			delete(a.byShare, key)
		}
	}
}

// count adds d to the used count of the pool holding ip and returns that pool's name.
func (a *Allocator) count(ip netip.Addr, d int) string {
	p := a.pools.PoolOf(ip)
	if p == nil {
		return ""
	}
	c := a.inPool[p.Name]
	if c == nil {
		c = &[2]uint64{}
		a.inPool[p.Name] = c
	}
	i := 0
	if ip.Is6() {
		i = 1
	}
	c[i] = uint64(int64(c[i]) + int64(d))
	return p.Name
}

// Stats are a pool's address counts per family.
type Stats struct {
	AssignedIPv4, AssignedIPv6   int64
	AvailableIPv4, AvailableIPv6 int64
}

// Stats counts a pool's held and free addresses: O(ranges).
func (a *Allocator) Stats(pool string) Stats {
	p := a.pools.Pool(pool)
	if p == nil {
		return Stats{}
	}
	var total [2]uint64
	for _, r := range p.Ranges {
		i := 0
		if r.Family() == iprange.IPv6 {
			i = 1
		}
		n := r.Size()
		if p.AvoidBuggy {
			n -= r.BuggyCount()
		}
		total[i] = satAdd(total[i], n)
	}
	var used [2]uint64
	if c := a.inPool[pool]; c != nil {
		used = *c
	}
	st := Stats{AssignedIPv4: sat64(used[0]), AssignedIPv6: sat64(used[1])}
	if p.Usable() {
		st.AvailableIPv4 = sat64(satSub(total[0], used[0]))
		st.AvailableIPv6 = sat64(satSub(total[1], used[1]))
	}
	return st
}

// HolderKeys returns up to limit Services holding addresses the pool declares, sorted,
// and whether there were more: O(log n + addresses visited).
func (a *Allocator) HolderKeys(pool string, limit int) (keys []string, more bool) {
	p := a.pools.Pool(pool)
	if p == nil {
		return nil, false
	}
	seen := map[string]bool{}
	visit := func(ip netip.Addr) bool {
		for _, h := range a.holders[ip] {
			if seen[h.key] {
				continue
			}
			if len(keys) == limit {
				more = true
				return false
			}
			seen[h.key] = true
			keys = append(keys, h.key)
		}
		return true
	}
	for _, r := range p.Declared {
		if !a.used.each(r, visit) {
			break
		}
	}
	slices.Sort(keys)
	return keys, more
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func satSub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func sat64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
