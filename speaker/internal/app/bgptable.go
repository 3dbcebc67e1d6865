package app

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/speaker/internal/bgp"
)

// bgpTable is the BGP side's view of the routes it gave GoBGP, kept by prefix so that a
// change of some prefixes updates it, the routes per session and the addresses announced in
// proportion to those prefixes. Made for one set of sessions: other sessions need a new one.
type bgpTable struct {
	// v4 tells each session's family.
	v4 map[string]bool
	// routes are the plan's routes toward the sessions of their prefix's family (routes left
	// with no session are not kept); perSession counts them per session.
	routes     map[netip.Prefix]planner.Route
	perSession map[string]int
	// carriers are the prefixes whose routes carry each address (an address may sit in its
	// own route and in an aggregate).
	carriers map[netip.Addr][]netip.Prefix
	// up are the sessions Established; announced the addresses a route carries on at least
	// one of them, to those sessions.
	up        map[string]bool
	announced map[netip.Addr]announcement
	// stated: setStates ran once.
	stated bool
}

// newBGPTable is the table of the plan's routes toward sessions.
func newBGPTable(routes []planner.Route, sessions []bgp.Session) *bgpTable {
	t := &bgpTable{v4: map[string]bool{}, routes: make(map[netip.Prefix]planner.Route, len(routes)), perSession: map[string]int{},
		carriers: make(map[netip.Addr][]netip.Prefix, len(routes)), up: map[string]bool{}, announced: map[netip.Addr]announcement{}}
	for _, ss := range sessions {
		t.v4[ss.Name] = ss.Address.Is4()
	}
	for _, r := range routes {
		t.set(r.Prefix, r, true)
	}
	return t
}

// set makes prefix's route r (none when !ok) and returns what GoBGP is to announce for it
// (false: withdraw it).
func (t *bgpTable) set(prefix netip.Prefix, r planner.Route, ok bool) (bgp.Route, bool) {
	if old, had := t.routes[prefix]; had {
		for _, p := range old.Peers {
			t.perSession[p]--
		}
		for _, a := range old.Addrs {
			t.carriers[a] = slices.DeleteFunc(t.carriers[a], func(p netip.Prefix) bool { return p == prefix })
			if len(t.carriers[a]) == 0 {
				delete(t.carriers, a)
			}
		}
		delete(t.routes, prefix)
	}
	if !ok {
		return bgp.Route{}, false
	}
	r.Peers = slices.DeleteFunc(slices.Clone(r.Peers), func(p string) bool { is4, ok := t.v4[p]; return !ok || is4 != prefix.Addr().Is4() })
	if len(r.Peers) == 0 {
		return bgp.Route{}, false
	}
	t.routes[prefix] = r
	for _, p := range r.Peers {
		t.perSession[p]++
	}
	for _, a := range r.Addrs {
		t.carriers[a] = append(t.carriers[a], prefix)
	}
	return bgp.Route{Prefix: r.Prefix, Communities: r.Communities, LocalPref: r.LocalPref, Peers: r.Peers}, true
}

// update makes the routes of the prefixes given those of the plan (route) and returns what
// GoBGP is to announce and withdraw, and the addresses whose announcement was made again.
func (t *bgpTable) update(prefixes []netip.Prefix, route func(netip.Prefix) (planner.Route, bool), holders func(netip.Addr) []string) (set []bgp.Route, withdraw []netip.Prefix, touched []netip.Addr) {
	for _, prefix := range prefixes {
		touched = append(touched, t.routes[prefix].Addrs...)
		r, ok := route(prefix)
		if br, keep := t.set(prefix, r, ok); keep {
			set = append(set, br)
		} else {
			withdraw = append(withdraw, prefix)
		}
		if ok {
			touched = append(touched, r.Addrs...)
		}
	}
	slices.SortFunc(touched, netip.Addr.Compare)
	touched = slices.Compact(touched)
	for _, a := range touched {
		t.announce(a, holders)
	}
	return set, withdraw, touched
}

// want is every route for GoBGP, sorted by prefix.
func (t *bgpTable) want() []bgp.Route {
	out := make([]bgp.Route, 0, len(t.routes))
	for _, prefix := range slices.SortedFunc(maps.Keys(t.routes), comparePrefixes) {
		r := t.routes[prefix]
		out = append(out, bgp.Route{Prefix: r.Prefix, Communities: r.Communities, LocalPref: r.LocalPref, Peers: r.Peers})
	}
	return out
}

// setStates takes the sessions' states and tells whether the sessions Established changed
// (announced is then made again in full).
func (t *bgpTable) setStates(states []bgp.SessionState, holders func(netip.Addr) []string) bool {
	up := map[string]bool{}
	for _, st := range states {
		if st.Established {
			up[st.Name] = true
		}
	}
	if t.stated && maps.Equal(up, t.up) {
		return false
	}
	t.stated, t.up, t.announced = true, up, map[netip.Addr]announcement{}
	for a := range t.carriers {
		t.announce(a, holders)
	}
	return true
}

// announce makes announced[a] again from the routes carrying a.
func (t *bgpTable) announce(a netip.Addr, holders func(netip.Addr) []string) {
	var peers []string
	for _, prefix := range t.carriers[a] {
		for _, p := range t.routes[prefix].Peers {
			if t.up[p] && !slices.Contains(peers, p) {
				peers = append(peers, p)
			}
		}
	}
	if len(peers) == 0 {
		delete(t.announced, a)
		return
	}
	slices.Sort(peers)
	t.announced[a] = announcement{mode: v1alpha1.ModeBGP, services: holders(a), peers: peers}
}

// settling tells whether an established session has not been sent all its routes yet
// (by its last count) or its BFD session is still coming up: GoBGP tells of neither.
func (t *bgpTable) settling(states []bgp.SessionState) bool {
	for _, st := range states {
		if !st.Established {
			continue
		}
		if st.BFD != "" && st.BFD != "Up" {
			return true
		}
		if st.OutQueue > 0 || st.Advertised != t.perSession[st.Name] {
			return true
		}
	}
	return false
}

func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
