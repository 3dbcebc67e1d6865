package bgp

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Session is one BGP neighbour, as a BGPPeer and the node describe it.
type Session struct {
	// Name is the BGPPeer's name; routes name the sessions they go to.
	Name           string
	Address        netip.Addr
	Port           uint16
	MyASN, PeerASN uint32
	// Source is the local address (zero: the kernel's choice).
	Source netip.Addr
	// Hold, Keepalive and ConnectRetry are the BGP timers (zero: GoBGP's defaults).
	Hold, Keepalive, ConnectRetry time.Duration
	MultiHop                      bool
	// Password is the TCP MD5 key (empty: none).
	Password string
	// BFD is nil when off.
	BFD *BFD
	// GracefulRestart is the restart time announced to the peer (zero: off).
	GracefulRestart time.Duration
}

// BFD are a session's BFD timers.
type BFD struct {
	Receive, Transmit time.Duration
	Multiplier        uint32
}

// Route is one prefix to announce.
type Route struct {
	Prefix netip.Prefix
	// NextHop is the node's address of the prefix's family (zero: the session's local address).
	NextHop netip.Addr
	// Communities are "a:b" (standard) or "large:a:b:c".
	Communities []string
	LocalPref   *uint32
	// Peers are the names of the sessions the route goes to.
	Peers []string
}

// equal reports whether two routes carry the same attributes to the same peers.
func (r Route) equal(o Route) bool {
	return r.Prefix == o.Prefix && r.NextHop == o.NextHop && slices.Equal(r.Communities, o.Communities) &&
		slices.Equal(r.Peers, o.Peers) && (r.LocalPref == nil) == (o.LocalPref == nil) &&
		(r.LocalPref == nil || *r.LocalPref == *o.LocalPref)
}

// sameSession reports whether a session needs no change.
func sameSession(a, b Session) bool {
	return a.Name == b.Name && a.Address == b.Address && a.Port == b.Port && a.MyASN == b.MyASN &&
		a.PeerASN == b.PeerASN && a.Source == b.Source && a.Hold == b.Hold && a.Keepalive == b.Keepalive &&
		a.ConnectRetry == b.ConnectRetry && a.MultiHop == b.MultiHop && a.Password == b.Password &&
		(a.BFD == nil) == (b.BFD == nil) && (a.BFD == nil || *a.BFD == *b.BFD) && a.GracefulRestart == b.GracefulRestart
}

// onlyBFDChanged reports whether two sessions differ in their BFD settings alone.
func onlyBFDChanged(a, b Session) bool {
	a.BFD = b.BFD
	return sameSession(a, b)
}

// Communities split into standard (32-bit) and large (three 32-bit numbers) ones.
type Communities struct {
	Standard []uint32
	Large    [][3]uint32
}

// ParseCommunities parses "65000:100" and "large:1:2:3" forms.
func ParseCommunities(list []string) (Communities, error) {
	var c Communities
	for _, s := range list {
		if rest, ok := strings.CutPrefix(s, "large:"); ok {
			parts := strings.Split(rest, ":")
			if len(parts) != 3 {
				return c, fmt.Errorf("large community %q: want large:a:b:c", s)
			}
			var l [3]uint32
			for i, p := range parts {
				n, err := strconv.ParseUint(p, 10, 32)
				if err != nil {
					return c, fmt.Errorf("large community %q: %w", s, err)
				}
				l[i] = uint32(n)
			}
			c.Large = append(c.Large, l)
			continue
		}
		hi, lo, ok := strings.Cut(s, ":")
		if !ok {
			return c, fmt.Errorf("community %q: want a:b", s)
		}
		a, err := strconv.ParseUint(hi, 10, 16)
		if err != nil {
			return c, fmt.Errorf("community %q: %w", s, err)
		}
		b, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return c, fmt.Errorf("community %q: %w", s, err)
		}
		c.Standard = append(c.Standard, uint32(a)<<16|uint32(b))
	}
	return c, nil
}

// routeDiff is what Apply changes: routes to (re)announce, prefixes to withdraw, and per
// session the prefixes it newly gets and no longer gets.
type routeDiff struct {
	announce []Route
	withdraw []netip.Prefix
	gain     map[string][]netip.Prefix
	lose     map[string][]netip.Prefix
}

// diffRoutes is what turns the routes old into want: over every prefix of either.
func diffRoutes(old, want map[netip.Prefix]Route) routeDiff {
	prefixes := slices.Collect(maps.Keys(want))
	for p := range old {
		if _, ok := want[p]; !ok {
			prefixes = append(prefixes, p)
		}
	}
	return diffPrefixes(old, want, prefixes)
}

// diffPrefixes is what turns old into want over the prefixes given only (a prefix given and
// not in want is withdrawn): work in proportion to the prefixes, not to the table.
func diffPrefixes(old, want map[netip.Prefix]Route, prefixes []netip.Prefix) routeDiff {
	d := routeDiff{gain: map[string][]netip.Prefix{}, lose: map[string][]netip.Prefix{}}
	prefixes = slices.Clone(prefixes)
	slices.SortFunc(prefixes, comparePrefix)
	for _, p := range slices.Compact(prefixes) {
		o, had := old[p]
		r, keep := want[p]
		switch {
		case keep && had && o.equal(r):
		case keep:
			d.announce = append(d.announce, r)
			for _, peer := range r.Peers {
				if !had || !slices.Contains(o.Peers, peer) {
					d.gain[peer] = append(d.gain[peer], p)
				}
			}
			if had {
				for _, peer := range o.Peers {
					if !slices.Contains(r.Peers, peer) {
						d.lose[peer] = append(d.lose[peer], p)
					}
				}
			}
		case had:
			d.withdraw = append(d.withdraw, p)
			for _, peer := range o.Peers {
				d.lose[peer] = append(d.lose[peer], p)
			}
		}
	}
	return d
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
