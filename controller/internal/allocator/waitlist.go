package allocator

import (
	"net/netip"
	"slices"
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
}

type ticket struct {
	key string
	seq uint64
}

func newWaitlist() waitlist {
	return waitlist{waiting: map[string]uint64{}, byIP: map[netip.Addr][]string{}, byPool: map[string][]ticket{}}
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
	q := w.byPool[pool]
	for len(q) > 0 {
		t := q[0]
		q = q[1:]
		if w.waiting[t.key] == t.seq {
			w.wake(t.key)
			break
		}
	}
	if len(q) == 0 {
		delete(w.byPool, pool)
	} else {
		w.byPool[pool] = q
	}
}

func (w *waitlist) wakeAll() {
	for k := range w.waiting {
		w.woken = append(w.woken, k)
	}
	slices.Sort(w.woken)
	clear(w.waiting)
	clear(w.byIP)
	clear(w.byPool)
}

func (w *waitlist) take() []string {
	out := w.woken
	w.woken = nil
	return out
}

// waitFor records why req failed so that the right change wakes it.
func (a *Allocator) waitFor(req *Request) {
	if len(req.RequestedIPs) > 0 {
		a.wait.add(req.Key, req.RequestedIPs, nil)
		return
	}
	var pools []string
	if req.Pool != "" {
		pools = []string{req.Pool}
	} else {
		for _, p := range a.pools.Ordered() {
			if p.AutoAssign && p.Serves(req.Namespace, req.NamespaceLabels, req.Labels) {
				pools = append(pools, p.Name)
			}
		}
	}
	a.wait.add(req.Key, nil, pools)
}
