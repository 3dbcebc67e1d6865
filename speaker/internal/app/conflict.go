package app

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/speaker/internal/layer2"
)

// conflictLog collects the claims of other MACs for addresses this node owns, as the
// responders see them (from their own goroutines), for the plan loop to report.
type conflictLog struct {
	poke func()

	mu   sync.Mutex
	seen map[netip.Addr]*claim
	// byMAC is when each claimant was last heard, whatever the address.
	byMAC map[string]time.Time
}

// claim is the latest other claimant of an address.
type claim struct {
	mac         string
	first, last time.Time
	reported    bool
}

func newConflictLog(poke func()) *conflictLog {
	return &conflictLog{poke: poke, seen: map[netip.Addr]*claim{}, byMAC: map[string]time.Time{}}
}

// add records a claim; a new claimant wakes the plan loop.
func (l *conflictLog) add(c layer2.Conflict) {
	mac := c.MAC.String()
	l.mu.Lock()
	cl := l.seen[c.Addr]
	fresh := cl == nil || cl.mac != mac
	if fresh {
		cl = &claim{mac: mac, first: c.At}
		l.seen[c.Addr] = cl
	}
	cl.last = c.At
	l.byMAC[mac] = c.At
	l.mu.Unlock()
	if fresh {
		l.poke()
	}
}

// current returns the claims seen within hold before now (also for addresses this node
// has yielded since: the conflict happened), forgetting older ones, and marks them all
// reported; fresh are the ones not reported before.
func (l *conflictLog) current(now time.Time, hold time.Duration) (all, fresh map[netip.Addr]claim) {
	l.mu.Lock()
	defer l.mu.Unlock()
	all, fresh = map[netip.Addr]claim{}, map[netip.Addr]claim{}
	for a, cl := range l.seen {
		if now.Sub(cl.last) > hold {
			delete(l.seen, a)
			continue
		}
		if !cl.reported {
			fresh[a] = *cl
			cl.reported = true
		}
		all[a] = *cl
	}
	return all, fresh
}

// heard returns the MACs heard claiming an address of this node within hold before now.
func (l *conflictLog) heard(now time.Time, hold time.Duration) map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]time.Time{}
	for mac, at := range l.byMAC {
		if now.Sub(at) > hold {
			delete(l.byMAC, mac)
			continue
		}
		out[mac] = at
	}
	return out
}

// claimant describes who has a MAC: a speaker's node, or a device that is no speaker.
func claimant(mac, node string) string {
	if node == "" {
		return mac + " (a device that is no speaker: an address configured by hand, another load balancer?)"
	}
	return fmt.Sprintf("%s (the speaker on %s)", mac, node)
}

// reportConflicts turns the claims seen into Events on the Services (once per claimant), the
// metric and the SpeakerStatus entries, and asks for a plan when the oldest expires.
func (s *speaker) reportConflicts(ctx context.Context, mine map[annKey]announcement, now time.Time) []v1alpha1.AddressConflict {
	all, fresh := s.conflicts.current(now, conflictHold)
	// The Services holding each address in conflict: the claim may have made this node give
	// the address up already.
	holders := map[netip.Addr][]*corev1.Service{}
	for a := range fresh {
		for _, key := range s.plan.holders(a) {
			if svc := s.service(ctx, key); svc != nil {
				holders[a] = append(holders[a], svc)
			}
		}
	}
	// Two of this node's own interfaces on one segment hear each other: no conflict.
	for a, cl := range all {
		if s.macs[cl.mac] == s.node {
			delete(all, a)
			delete(fresh, a)
		}
	}
	for _, a := range slices.SortedFunc(maps.Keys(fresh), netip.Addr.Compare) {
		cl := fresh[a]
		node := s.macs[cl.mac]
		source := "speaker"
		if node == "" {
			source = "foreign"
		}
		s.m.conflicts.WithLabelValues(source).Inc()
		s.log.Info("Address conflict", "ip", a.String(), "mac", cl.mac, "node", node)
		_, keeps := mine[annKey{a, v1alpha1.ModeL2}]
		for _, svc := range holders[a] {
			switch {
			case keeps:
				s.recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonAddressConflict, "Defend",
					"%s is also claimed by %s; %s announces it", a, claimant(cl.mac, node), s.node)
			default:
				s.recorder.Eventf(svc, nil, corev1.EventTypeWarning, ReasonAddressConflict, "Yield",
					"%s is also claimed by %s; %s leaves it to that node", a, claimant(cl.mac, node), s.node)
			}
		}
	}
	out := make([]v1alpha1.AddressConflict, 0, len(all))
	for _, a := range slices.SortedFunc(maps.Keys(all), netip.Addr.Compare) {
		cl := all[a]
		out = append(out, v1alpha1.AddressConflict{IP: a.String(), MAC: cl.mac, Node: s.macs[cl.mac], Since: metav1.NewTime(cl.first)})
		s.wakeAt(cl.last.Add(conflictHold + time.Second))
	}
	return out
}

// conflictCondition is the Conflict condition for the conflicts reported, the first of
// total.
func conflictCondition(cs []v1alpha1.AddressConflict, total int) metav1.Condition {
	if len(cs) == 0 {
		return metav1.Condition{Type: ConditionConflict, Status: metav1.ConditionFalse, Reason: "NoConflict", Message: "no other MAC claims an address this node announces"}
	}
	var parts []string
	for i, c := range cs {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", total-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s also claimed by %s", c.IP, claimant(c.MAC, c.Node)))
	}
	return metav1.Condition{Type: ConditionConflict, Status: metav1.ConditionTrue, Reason: ReasonAddressConflict, Message: strings.Join(parts, "; ")}
}
