package planner

import (
	"maps"
	"net/netip"
	"slices"
)

// L2Plan holds the layer-2 decisions for a fixed cluster (members, nodes, links,
// advertisements, pools) and updates them one Service at a time: a change of one Service
// re-decides only the addresses it holds or held. Its decisions always equal L2 of the same
// input with the same Services (a tested property); a change of anything but the Services
// needs a new plan.
type L2Plan struct {
	in       Input // Services unused
	services map[string]*Service
	// holders are the Services holding each address; pools the pools declaring it.
	holders   map[netip.Addr]map[string]bool
	pools     map[netip.Addr][]string
	decisions map[netip.Addr]Decision
}

// NewL2Plan plans in.Services on the rest of in.
func NewL2Plan(in Input) *L2Plan {
	svcs := in.Services
	in.Services = nil
	p := &L2Plan{in: in, services: make(map[string]*Service, len(svcs)), holders: map[netip.Addr]map[string]bool{},
		pools: map[netip.Addr][]string{}, decisions: map[netip.Addr]Decision{}}
	for i := range svcs {
		p.put(&svcs[i])
	}
	for addr := range p.holders {
		p.decide(addr)
	}
	return p
}

// Set adds or replaces a Service and returns the addresses re-decided (those it holds and
// those it held).
func (p *L2Plan) Set(s Service) []netip.Addr {
	touched := p.remove(s.Key)
	p.put(&s)
	for _, ip := range s.IPs {
		touched = append(touched, ip.Addr)
	}
	return p.redecide(touched)
}

// Delete removes a Service and returns the addresses re-decided.
func (p *L2Plan) Delete(key string) []netip.Addr {
	return p.redecide(p.remove(key))
}

// SetMembers changes the live members and their links (a speaker died, left or joined; the
// links of the members that stay must be the same) and returns the addresses re-decided.
// Rendezvous hashing moves little: an address changes hands only when its owner departed, or
// a joining member outranks the owner, or the owner serves only some of the address's
// Services (a newcomer may serve them all); addresses without an owner are re-decided too
// (their reason may change). The cost is a hash per address and joining member, and a
// decision per address moved. Its decisions equal those of a new plan of the same input
// (a tested property).
func (p *L2Plan) SetMembers(members map[string]bool, links map[string][]Link) []netip.Addr {
	var gone, joined []string
	for n := range p.in.Members {
		if !members[n] {
			gone = append(gone, n)
		}
	}
	for n := range members {
		if !p.in.Members[n] {
			joined = append(joined, n)
		}
	}
	p.in.Members, p.in.Links = members, links
	var addrs []netip.Addr
	for addr, d := range p.decisions {
		if d.Owner == "" || d.partial || slices.Contains(gone, d.Owner) || anyOutranks(joined, d.Owner, addr) {
			addrs = append(addrs, addr)
		}
	}
	return p.redecide(addrs)
}

func anyOutranks(nodes []string, owner string, addr netip.Addr) bool {
	if len(nodes) == 0 {
		return false
	}
	a := addr.String()
	for _, n := range nodes {
		if outranks(n, owner, a) {
			return true
		}
	}
	return false
}

// Decision is the verdict for addr (false when no Service holds it).
func (p *L2Plan) Decision(addr netip.Addr) (Decision, bool) {
	d, ok := p.decisions[addr]
	return d, ok
}

// Decisions are all verdicts, sorted by address, as L2 returns them.
func (p *L2Plan) Decisions() []Decision {
	out := make([]Decision, 0, len(p.decisions))
	for _, a := range slices.SortedFunc(maps.Keys(p.decisions), netip.Addr.Compare) {
		out = append(out, p.decisions[a])
	}
	return out
}

// Len is the number of addresses held.
func (p *L2Plan) Len() int { return len(p.decisions) }

func (p *L2Plan) put(s *Service) {
	p.services[s.Key] = s
	for _, ip := range s.IPs {
		h := p.holders[ip.Addr]
		if h == nil {
			h = map[string]bool{}
			p.holders[ip.Addr] = h
		}
		h[s.Key] = true
		p.pools[ip.Addr] = ip.Pools
	}
}

// remove takes a Service out and returns the addresses it held.
func (p *L2Plan) remove(key string) []netip.Addr {
	old := p.services[key]
	if old == nil {
		return nil
	}
	delete(p.services, key)
	var out []netip.Addr
	for _, ip := range old.IPs {
		out = append(out, ip.Addr)
		if h := p.holders[ip.Addr]; h != nil {
			delete(h, key)
			if len(h) == 0 {
				delete(p.holders, ip.Addr)
				delete(p.pools, ip.Addr)
			}
		}
	}
	return out
}

func (p *L2Plan) redecide(addrs []netip.Addr) []netip.Addr {
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	for _, a := range addrs {
		p.decide(a)
	}
	return addrs
}

func (p *L2Plan) decide(addr netip.Addr) {
	h := p.holders[addr]
	if len(h) == 0 {
		delete(p.decisions, addr)
		return
	}
	svcs := make([]*Service, 0, len(h))
	for _, k := range slices.Sorted(maps.Keys(h)) {
		svcs = append(svcs, p.services[k])
	}
	p.decisions[addr] = decide(p.in, addr, p.pools[addr], svcs)
}

// BGPPlan holds the routes one node announces for a fixed cluster (nodes, advertisements,
// peers, pools) and updates them one Service at a time: a change of one Service rebuilds
// only the prefixes it contributes or contributed to. Its routes always equal BGPFor of the
// same input with the same Services (a tested property).
type BGPPlan struct {
	in        Input // Services unused
	node      string
	peersHere map[string]bool
	fits      aggFits
	// contrib is what each Service adds; byPrefix the Services adding to each prefix.
	contrib  map[string][]contribution
	byPrefix map[netip.Prefix]map[string]bool
	routes   map[netip.Prefix]Route
}

// NewBGPPlan plans node's routes for in.Services on the rest of in.
func NewBGPPlan(in Input, node string) *BGPPlan {
	svcs := in.Services
	in.Services = nil
	p := &BGPPlan{in: in, node: node, peersHere: peerSet(in, node), fits: aggFits{}, contrib: map[string][]contribution{},
		byPrefix: map[netip.Prefix]map[string]bool{}, routes: map[netip.Prefix]Route{}}
	touched := map[netip.Prefix]bool{}
	for i := range svcs {
		for _, c := range p.put(&svcs[i]) {
			touched[c] = true
		}
	}
	for prefix := range touched {
		p.rebuild(prefix)
	}
	return p
}

// Set adds or replaces a Service and returns the prefixes rebuilt.
func (p *BGPPlan) Set(s Service) []netip.Prefix {
	touched := append(p.remove(s.Key), p.put(&s)...)
	return p.rebuildAll(touched)
}

// Delete removes a Service and returns the prefixes rebuilt.
func (p *BGPPlan) Delete(key string) []netip.Prefix {
	return p.rebuildAll(p.remove(key))
}

// Route is the route for prefix (false when none).
func (p *BGPPlan) Route(prefix netip.Prefix) (Route, bool) {
	r, ok := p.routes[prefix]
	return r, ok
}

// Routes are all routes, sorted by prefix, as BGPFor returns them.
func (p *BGPPlan) Routes() []Route {
	out := make([]Route, 0, len(p.routes))
	for _, prefix := range slices.SortedFunc(maps.Keys(p.routes), comparePrefix) {
		out = append(out, p.routes[prefix])
	}
	return out
}

// put adds s's contributions and returns their prefixes.
func (p *BGPPlan) put(s *Service) []netip.Prefix {
	cs := contributions(p.in, p.node, p.peersHere, p.fits, s)
	if len(cs) == 0 {
		return nil
	}
	p.contrib[s.Key] = cs
	out := make([]netip.Prefix, 0, len(cs))
	for _, c := range cs {
		h := p.byPrefix[c.prefix]
		if h == nil {
			h = map[string]bool{}
			p.byPrefix[c.prefix] = h
		}
		h[s.Key] = true
		out = append(out, c.prefix)
	}
	return out
}

// remove takes a Service's contributions out and returns their prefixes.
func (p *BGPPlan) remove(key string) []netip.Prefix {
	cs := p.contrib[key]
	delete(p.contrib, key)
	out := make([]netip.Prefix, 0, len(cs))
	for _, c := range cs {
		if h := p.byPrefix[c.prefix]; h != nil {
			delete(h, key)
			if len(h) == 0 {
				delete(p.byPrefix, c.prefix)
			}
		}
		out = append(out, c.prefix)
	}
	return out
}

func (p *BGPPlan) rebuildAll(prefixes []netip.Prefix) []netip.Prefix {
	slices.SortFunc(prefixes, comparePrefix)
	prefixes = slices.Compact(prefixes)
	for _, prefix := range prefixes {
		p.rebuild(prefix)
	}
	return prefixes
}

// rebuild folds the contributions of every Service adding to prefix into its route.
func (p *BGPPlan) rebuild(prefix netip.Prefix) {
	h := p.byPrefix[prefix]
	if len(h) == 0 {
		delete(p.routes, prefix)
		return
	}
	acc := newRouteAcc()
	for key := range h {
		for _, c := range p.contrib[key] {
			if c.prefix == prefix {
				acc.add(key, c)
			}
		}
	}
	p.routes[prefix] = acc.route(prefix)
}
