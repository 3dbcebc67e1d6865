package announce

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
)

// Condition reasons on the Announced condition, besides the planner's.
const (
	ReasonAnnounced = "Announced"
	// ReasonPending: a node should announce the address but has not reported it yet.
	ReasonPending = "Pending"
	// ReasonConflict: a live node announces the address and sees another MAC claim it too.
	ReasonConflict = "Conflict"
)

// conflict is a claim for an address by another MAC, as the announcing node saw it.
type conflict struct {
	seenBy, mac, node string
}

// Conflicts maps each address to the claims the live nodes announcing it report.
func Conflicts(statuses []v1alpha1.SpeakerStatus, live map[string]bool) map[netip.Addr][]conflict {
	out := map[netip.Addr][]conflict{}
	for _, st := range statuses {
		if !live[st.Name] {
			continue
		}
		for _, c := range st.Status.Conflicts {
			if addr, err := netip.ParseAddr(c.IP); err == nil {
				out[addr] = append(out[addr], conflict{seenBy: st.Name, mac: c.MAC, node: c.Node})
			}
		}
	}
	return out
}

// Links are the interfaces each live speaker reports it can answer on, for the planner. A
// speaker reporting none is left out (not restricted): its report may come from before it
// read them.
func Links(statuses []v1alpha1.SpeakerStatus, live map[string]bool) map[string][]planner.Link {
	out := map[string][]planner.Link{}
	for _, st := range statuses {
		if !live[st.Name] || len(st.Status.Interfaces) == 0 {
			continue
		}
		links := []planner.Link{}
		for _, i := range st.Status.Interfaces {
			l := planner.Link{Name: string(i.Name)}
			for _, p := range i.Prefixes {
				if pf, err := netip.ParsePrefix(p); err == nil {
					l.Prefixes = append(l.Prefixes, pf)
				}
			}
			links = append(links, l)
		}
		out[st.Name] = links
	}
	return out
}

// LiveSpeakers are the nodes whose SpeakerStatus counts. A report with members is current
// (a stopped speaker empties its own); a current report counts when another current report
// lists its node alive, or when it is the only current report. So a node that lost power,
// whose last report still lists everyone, is not read once the others stop listing it.
func LiveSpeakers(statuses []v1alpha1.SpeakerStatus) map[string]bool {
	current := map[string]bool{}
	for i := range statuses {
		if len(statuses[i].Status.Members) > 0 {
			current[statuses[i].Name] = true
		}
	}
	live := map[string]bool{}
	if len(current) == 1 {
		maps.Copy(live, current)
		return live
	}
	for i := range statuses {
		st := &statuses[i]
		if !current[st.Name] {
			continue
		}
		for _, m := range st.Status.Members {
			if m != st.Name && current[m] {
				live[m] = true
			}
		}
	}
	return live
}

// announcer is one live node's announcement of an address.
type announcer struct {
	node       string
	mode       v1alpha1.AnnouncementMode
	interfaces []string // L2
	peers      []string // BGP
}

// Desired computes the Announced condition of a Service holding ips: True when every address
// is announced by a live node ("L2 from node-b on eth0", "BGP from node-a, node-c to 2
// peers"), else False: Conflict when a live node reports another claim for any of them, else
// the planner's reason for the first address nobody announces.
func Desired(ips []netip.Addr, announced map[netip.Addr][]announcer, conflicts map[netip.Addr][]conflict, decisions map[netip.Addr]planner.Decision, generation int64) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionAnnounced, ObservedGeneration: generation, Status: metav1.ConditionTrue, Reason: ReasonAnnounced}
	// A conflict on any address comes first: it needs the user, where another address
	// still waiting for its node's report usually needs nothing but time.
	for _, ip := range ips {
		if cs := conflicts[ip]; len(cs) > 0 {
			x := cs[0]
			who := x.mac + " (a device that is no speaker)"
			if x.node != "" {
				who = fmt.Sprintf("%s (the speaker on %s)", x.mac, x.node)
			}
			c.Status, c.Reason = metav1.ConditionFalse, ReasonConflict
			c.Message = fmt.Sprintf("%s, announced by %s, was also claimed by %s in the last 30 s: clients may reach either", ip, x.seenBy, who)
			return c
		}
	}
	var parts []string
	for _, ip := range ips {
		ans := announced[ip]
		if len(ans) == 0 {
			c.Status = metav1.ConditionFalse
			d := decisions[ip]
			switch {
			case d.Reason != "":
				c.Reason, c.Message = string(d.Reason), fmt.Sprintf("%s is not announced: %s", ip, explain(d.Reason))
			case d.Owner != "":
				c.Reason, c.Message = ReasonPending, fmt.Sprintf("%s should be announced by %s, which has not reported it yet", ip, d.Owner)
			default:
				c.Reason, c.Message = ReasonPending, fmt.Sprintf("%s is not announced yet", ip)
			}
			return c
		}
		parts = append(parts, fmt.Sprintf("%s: %s", ip, describe(ans)))
	}
	c.Message = strings.Join(parts, "; ")
	if len(ips) == 1 {
		c.Message = strings.TrimPrefix(c.Message, ips[0].String()+": ")
	}
	return c
}

// describe says who announces an address: each L2 owner with its interfaces, and the BGP
// nodes with the number of peers they reach.
func describe(ans []announcer) string {
	var who, bgpNodes []string
	peers := map[string]bool{}
	for _, a := range ans {
		if a.mode == v1alpha1.ModeBGP {
			bgpNodes = append(bgpNodes, a.node)
			for _, p := range a.peers {
				peers[p] = true
			}
			continue
		}
		w := "L2 from " + a.node
		if len(a.interfaces) > 0 {
			w += " on " + strings.Join(a.interfaces, ", ")
		}
		who = append(who, w)
	}
	slices.Sort(who)
	if len(bgpNodes) > 0 {
		slices.Sort(bgpNodes)
		unit := "peers"
		if len(peers) == 1 {
			unit = "peer"
		}
		who = append(who, fmt.Sprintf("BGP from %s to %d %s", strings.Join(slices.Compact(bgpNodes), ", "), len(peers), unit))
	}
	return strings.Join(who, "; ")
}

func explain(r planner.Reason) string {
	switch r {
	case planner.NoAdvertisement:
		return "no L2Advertisement selects it"
	case planner.NoLocalEndpoints:
		return "externalTrafficPolicy is Local and no live, eligible node has a ready endpoint"
	case planner.NoEligibleNode:
		return "no live speaker runs on a node the advertisements select"
	case planner.NoInterface:
		return "no live node the advertisements select has an interface to answer on (the advertisement's interfaces are missing, down or excluded there, or no interface holds the address's prefix or the node's address of its family; see the SpeakerStatuses' interfaces)"
	default:
		return string(r)
	}
}
