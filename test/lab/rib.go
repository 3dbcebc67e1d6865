package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Path is one BGP path the router holds for a prefix, with the attributes the tests check.
type Path struct {
	NextHop netip.Addr
	// Communities are "a:b" and "large:a:b:c", sorted.
	Communities []string
	LocalPref   uint32
	// Stale: kept for a peer in graceful restart.
	Stale bool
	// proto is the BIRD protocol the path came from.
	proto string
}

// Paths reads the router's BGP paths for exactly prefix, from BIRD or FRR, sorted by next
// hop.
func (r *Router) Paths(ctx context.Context, prefix netip.Prefix) ([]Path, error) {
	var out []Path
	var err error
	switch r.Kind() {
	case FRR:
		out, err = r.frrPaths(ctx, prefix)
	default:
		var text, protos string
		if text, err = r.Birdc(ctx, "show", "route", "all", prefix.String()); err == nil {
			out = parseBIRDPaths(text)
		}
		// BIRD marks no route stale; its protocol says the neighbour is restarting.
		if err == nil {
			protos, err = r.Birdc(ctx, "show", "protocols", "all")
		}
		restarting := birdRestarting(protos)
		for i := range out {
			out[i].Stale = restarting[out[i].proto]
		}
	}
	slices.SortFunc(out, func(a, b Path) int { return a.NextHop.Compare(b.NextHop) })
	return out, err
}

func (r *Router) frrPaths(ctx context.Context, prefix netip.Prefix) ([]Path, error) {
	fam := "ipv4"
	if prefix.Addr().Is6() {
		fam = "ipv6"
	}
	text, err := r.Vtysh(ctx, fmt.Sprintf("show bgp %s unicast %s json", fam, prefix))
	if err != nil {
		return nil, err
	}
	return parseFRRPaths(text)
}

// parseFRRPaths reads `show bgp … <prefix> json`.
func parseFRRPaths(text string) ([]Path, error) {
	var v struct {
		Paths []struct {
			Community struct {
				String string `json:"string"`
			} `json:"community"`
			LargeCommunity struct {
				String string `json:"string"`
			} `json:"largeCommunity"`
			LocPrf   uint32 `json:"locPrf"`
			Stale    bool   `json:"stale"`
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, fmt.Errorf("reading FRR output %q: %w", text, err)
	}
	var out []Path
	for _, p := range v.Paths {
		path := Path{LocalPref: p.LocPrf, Stale: p.Stale}
		if len(p.Nexthops) > 0 {
			path.NextHop, _ = netip.ParseAddr(p.Nexthops[0].IP)
		}
		path.Communities = append(path.Communities, strings.Fields(p.Community.String)...)
		for _, l := range strings.Fields(p.LargeCommunity.String) {
			path.Communities = append(path.Communities, "large:"+l)
		}
		slices.Sort(path.Communities)
		out = append(out, path)
	}
	return out, nil
}

var (
	birdVia   = regexp.MustCompile(`^\s+via (\S+)`)
	birdTuple = regexp.MustCompile(`\(([0-9, ]+)\)`)
	birdProto = regexp.MustCompile(`unicast \[(\S+)`)
	birdName  = regexp.MustCompile(`^(\S+)\s+BGP\s`)
)

// birdRestarting reads `show protocols all`: the BGP protocols whose neighbour is in
// graceful restart (their routes are kept, stale).
func birdRestarting(text string) map[string]bool {
	out := map[string]bool{}
	cur := ""
	for _, line := range strings.Split(text, "\n") {
		if m := birdName.FindStringSubmatch(line); m != nil {
			cur = m[1]
		} else if strings.Contains(line, "Neighbor graceful restart active") && cur != "" {
			out[cur] = true
		}
	}
	return out
}

// parseBIRDPaths reads `show route all <prefix>`: a path starts at each "unicast [" line.
func parseBIRDPaths(text string) []Path {
	var out []Path
	var cur *Path
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.Contains(line, "unicast ["):
			out = append(out, Path{})
			cur = &out[len(out)-1]
			if m := birdProto.FindStringSubmatch(line); m != nil {
				cur.proto = m[1]
			}
		case cur == nil:
		case birdVia.MatchString(line):
			cur.NextHop, _ = netip.ParseAddr(birdVia.FindStringSubmatch(line)[1])
		case strings.HasPrefix(t, "BGP.local_pref:"):
			v, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(t, "BGP.local_pref:")), 10, 32)
			cur.LocalPref = uint32(v)
		case strings.HasPrefix(t, "BGP.community:"), strings.HasPrefix(t, "BGP.large_community:"):
			large := strings.HasPrefix(t, "BGP.large_community:")
			for _, m := range birdTuple.FindAllStringSubmatch(t, -1) {
				parts := strings.Split(strings.ReplaceAll(m[1], " ", ""), ",")
				c := strings.Join(parts, ":")
				if large {
					c = "large:" + c
				}
				cur.Communities = append(cur.Communities, c)
			}
			slices.Sort(cur.Communities)
		}
	}
	return out
}

// ReceivedPrefixes is, per BGP neighbour of the router, how many prefixes it accepted from
// it (FRR only), for the family of v4.
func (r *Router) ReceivedPrefixes(ctx context.Context, v4 bool) (map[string]int, error) {
	fam := "ipv4"
	if !v4 {
		fam = "ipv6"
	}
	text, err := r.Vtysh(ctx, "show bgp "+fam+" unicast summary json")
	if err != nil {
		return nil, err
	}
	var v struct {
		Peers map[string]struct {
			PfxRcd int `json:"pfxRcd"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, fmt.Errorf("reading FRR summary %q: %w", text, err)
	}
	out := map[string]int{}
	for k, p := range v.Peers {
		out[k] = p.PfxRcd
	}
	return out, nil
}

// SessionEpoch is what a router says of one BGP session: its state and when it entered it.
type SessionEpoch struct {
	State string
	// Since is the time as the router prints it; at is that time parsed (zero when the
	// router printed something else, a date for instance).
	Since string
	at    time.Time
}

func (e SessionEpoch) String() string { return e.State + " since " + e.Since }

// SessionEpochs reads, per BGP session of the router, its state and the time it entered it:
// FRR's state and the time the session was established (a dynamic neighbour is re-created
// after a drop, its counters starting again), or BIRD's protocol state and its time. Both
// routers print those times from a monotonic clock translated to the wall clock at each
// reading, so two readings of an untouched session may differ by a millisecond (BIRD) or a
// second (FRR's epoch seconds): compare readings with SessionsReset.
func (r *Router) SessionEpochs(ctx context.Context) (map[string]SessionEpoch, error) {
	out := map[string]SessionEpoch{}
	if r.Kind() == FRR {
		text, err := r.Vtysh(ctx, "show bgp neighbors json")
		if err != nil {
			return nil, err
		}
		var v map[string]struct {
			State string `json:"bgpState"`
			Epoch int64  `json:"bgpTimerUpEstablishedEpoch"`
		}
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			return nil, fmt.Errorf("reading FRR neighbours %q: %w", text, err)
		}
		for addr, n := range v {
			out[addr] = SessionEpoch{State: n.State, Since: strconv.FormatInt(n.Epoch, 10), at: time.Unix(n.Epoch, 0)}
		}
		return out, nil
	}
	text, err := r.Birdc(ctx, "show", "protocols")
	if err != nil {
		return nil, err
	}
	return birdSessionEpochs(text), nil
}

// birdSessionEpochs reads the BGP lines of BIRD's "show protocols":
// "node1 BGP --- up 07:57:36.769 Established".
func birdSessionEpochs(text string) map[string]SessionEpoch {
	out := map[string]SessionEpoch{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "BGP" {
			e := SessionEpoch{State: f[3] + " " + f[5], Since: f[4]}
			if at, err := time.Parse("15:04:05.000", f[4]); err == nil {
				e.at = at
			}
			out[f[0]] = e
		}
	}
	return out
}

// SessionsReset names the sessions whose state or time differs between two readings of
// SessionEpochs by more than the routers' rounding (a second), or that only one holds.
func SessionsReset(before, after map[string]SessionEpoch) []string {
	var reset []string
	for name, b := range before {
		a, ok := after[name]
		if !ok || !sameEpoch(a, b) {
			reset = append(reset, name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			reset = append(reset, name)
		}
	}
	slices.Sort(reset)
	return reset
}

func sameEpoch(a, b SessionEpoch) bool {
	if a.State != b.State {
		return false
	}
	if a.at.IsZero() || b.at.IsZero() {
		return a.Since == b.Since
	}
	d := a.at.Sub(b.at)
	return d >= -time.Second && d <= time.Second
}
