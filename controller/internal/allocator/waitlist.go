package allocator

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/vipcast/vipcast/internal/iprange"
)

// waitlist remembers the Services that could not get an address and what would help
// them: a freed requested address, a freed address in a pool they may use, or a change of
// pools. A freed address wakes the Services waiting for exactly it and the longest-waiting
// one for its pool, so a busy pool costs O(1) wake-ups per freed address, not one per
// waiting Service.
type waitlist struct {
	seq     uint64
	waiting map[string]uint64 // key -> sequence number of its current wait
	byIP    map[netip.Addr][]string
	byPool  map[string][]ticket
	woken   []string
	// cause remembers, for a Service woken by a freed address, the queue it was woken
	// from: if it fails again, the wake-up passes on to the next in that queue.
	cause map[string]string
}

type ticket struct {
	key string
	seq uint64
}

func newWaitlist() waitlist {
	return waitlist{waiting: map[string]uint64{}, byIP: map[netip.Addr][]string{}, byPool: map[string][]ticket{}, cause: map[string]string{}}
}

func (w *waitlist) add(key string, ips []netip.Addr, pools []string) {
	w.seq++
	w.waiting[key] = w.seq
	for _, ip := range ips {
		w.byIP[ip] = append(w.byIP[ip], key)
	}
	for _, p := range pools {
		w.byPool[p] = append(w.byPool[p], ticket{key: key, seq: w.seq})
	}
}

func (w *waitlist) remove(key string) { delete(w.waiting, key) }

func (w *waitlist) wake(key string) {
	if _, ok := w.waiting[key]; ok {
		delete(w.waiting, key)
		w.woken = append(w.woken, key)
	}
}

func (w *waitlist) freed(ip netip.Addr, pool string) {
	for _, k := range w.byIP[ip] {
		w.wake(k)
	}
	delete(w.byIP, ip)
	w.wakeNext(queueKey(pool, iprange.FamilyOf(ip)), "")
}

// wakeNext wakes the longest-waiting Service of a queue other than skip.
func (w *waitlist) wakeNext(queue, skip string) {
	q := w.byPool[queue]
	for i := 0; i < len(q); i++ {
		t := q[i]
		if w.waiting[t.key] != t.seq {
			q = slices.Delete(q, i, i+1)
			i--
			continue
		}
		if t.key == skip {
			continue
		}
		q = slices.Delete(q, i, i+1)
		w.wake(t.key)
		w.cause[t.key] = queue
		break
	}
	if len(q) == 0 {
		delete(w.byPool, queue)
	} else {
		w.byPool[queue] = q
	}
}

// queueKey names the queue of Services waiting for a free address of one family in a pool:
// a freed IPv4 address wakes a Service that needs IPv4, not one stuck on IPv6.
func queueKey(pool string, f iprange.Family) string { return pool + "|" + f.String() }

// takeCause returns and forgets the queue a Service was last woken from.
func (w *waitlist) takeCause(key string) string {
	q := w.cause[key]
	delete(w.cause, key)
	return q
}

func (w *waitlist) wakeAll() {
	for k := range w.waiting {
		w.woken = append(w.woken, k)
	}
	slices.Sort(w.woken)
	clear(w.waiting)
	clear(w.cause)
	clear(w.byIP)
	clear(w.byPool)
}

func (w *waitlist) take() []string {
	out := w.woken
	w.woken = nil
	return out
}

// helpful returns the requested addresses whose freeing could help the Service: not those of
// a pool that does not admit it.
func (a *Allocator) helpful(req *Request) []netip.Addr {
	var ips []netip.Addr
	for _, ip := range req.RequestedIPs {
		if p := a.pools.PoolOf(ip); p == nil || p.Serves(req.Namespace, req.NamespaceLabels, req.Labels) {
			ips = append(ips, ip)
		}
	}
	return ips
}

// helpfulPools returns the pools whose freed addresses could help a Service that names no
// address: the pool it names, else every usable pool that would auto-assign to it. A pool
// that does not admit the Service, or that hands out nothing (terminating or broken), is no
// help; a change of pools (or of the namespace's labels) wakes the Service instead.
func (a *Allocator) helpfulPools(req *Request) []string {
	var names []string
	if req.Pool != "" {
		if p := a.pools.Pool(req.Pool); p == nil || p.Usable() && p.Serves(req.Namespace, req.NamespaceLabels, req.Labels) {
			names = []string{req.Pool}
		}
		return names
	}
	for _, p := range a.pools.Ordered() {
		if p.Usable() && p.AutoAssign && p.Serves(req.Namespace, req.NamespaceLabels, req.Labels) {
			names = append(names, p.Name)
		}
	}
	return names
}

// waitFor records why req failed so that the right change wakes it. When req had been
// woken by a freed address and the address is still free, the wake-up passes on to the
// next Service in that queue, so one Service that cannot use it does not starve the rest.
func (a *Allocator) waitFor(req *Request, cause string) {
	defer func() {
		if cause == "" {
			return
		}
		name, fam, _ := strings.Cut(cause, "|")
		if p := a.pools.Pool(name); p != nil && p.Usable() {
			for _, r := range p.Ranges {
				if r.Family().String() != fam {
					continue
				}
				if _, ok := a.firstFree(r, p.AvoidBuggy); ok {
					a.wait.wakeNext(cause, req.Key)
					return
				}
			}
		}
	}()
	if len(req.RequestedIPs) > 0 {
		a.wait.add(req.Key, a.helpful(req), nil)
		return
	}
	names := a.helpfulPools(req)
	// Wait on the families that are missing: a dual-stack Service short of an IPv6
	// address must not take the wake-up of a freed IPv4 address from the next Service.
	must, _ := req.wantedFamilies()
	var queues []string
	for _, name := range names {
		p := a.pools.Pool(name)
		var missing []string
		for _, f := range must {
			if p == nil {
				missing = append(missing, queueKey(name, f))
			} else if _, ok := a.pick(req, p, f); !ok {
				missing = append(missing, queueKey(name, f))
			}
		}
		if len(missing) == 0 {
			for _, f := range req.allFamilies() {
				missing = append(missing, queueKey(name, f))
			}
		}
		queues = append(queues, missing...)
	}
	a.wait.add(req.Key, nil, queues)
}
