package announce

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
)

// Index is what the SpeakerStatuses say, read once per change rather than once per Service:
// every node's announcements by address, which nodes are live, and the reports themselves
// without their addresses (members, interfaces, conflicts). Put and Delete, called by the
// SpeakerStatus informer, return the addresses whose announcers or conflicts changed, so
// only the Services holding them are looked at again. Safe for concurrent use.
type Index struct {
	mu sync.RWMutex
	// nodes are the reports by node; byAddr every set, of any node, holding the address.
	nodes  map[string]*nodeReport
	byAddr map[netip.Addr][]*indexedSet
	live   map[string]bool
	// reports are the reports without their sets, sorted by node, for LiveSpeakers, Links
	// and Conflicts.
	reports []v1alpha1.SpeakerStatus
}

type nodeReport struct {
	report v1alpha1.SpeakerStatus // without its sets
	sets   []*indexedSet
}

// indexedSet is one announced set of a node: the announcer it makes of each of its
// addresses, and its encoding (shared with the informer's copy, never written) to tell an
// unchanged set without decoding it.
type indexedSet struct {
	announcer
	key     string // mode, interfaces and peers
	encoded []byte
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{nodes: map[string]*nodeReport{}, byAddr: map[netip.Addr][]*indexedSet{}, live: map[string]bool{}}
}

// Put records a node's report and returns the addresses that changed for the Services: those
// whose announcers from a live node changed, those of every node that turned live or not,
// and those whose conflicts changed. A set that cannot be decoded counts as empty; the error
// says which.
func (x *Index) Put(st *v1alpha1.SpeakerStatus) ([]netip.Addr, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.nodes[st.Name]
	// The informer's objects are never written, so the report shares their slices.
	now := &nodeReport{report: v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: st.Name}, Status: st.Status}}
	now.report.Status.Announced = nil
	for _, s := range st.Status.Announced {
		is := &indexedSet{announcer: announcer{node: st.Name, mode: s.Mode, peers: s.Peers}, encoded: s.Addresses}
		for _, i := range s.Interfaces {
			is.interfaces = append(is.interfaces, string(i))
		}
		is.key = setKey(is.announcer)
		now.sets = append(now.sets, is)
	}
	changed, err := x.replace(st.Name, old, now)
	x.nodes[st.Name] = now
	return x.relive(changed, old, now), err
}

// Delete forgets a node's report and returns the addresses that changed, as Put does.
func (x *Index) Delete(node string) ([]netip.Addr, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.nodes[node]
	if old == nil {
		return nil, nil
	}
	changed, err := x.replace(node, old, nil)
	delete(x.nodes, node)
	return x.relive(changed, old, nil), err
}

// replace swaps a node's sets in byAddr and returns the addresses whose announcement by this
// node changed. A set found unchanged (same key, same encoding) keeps its place without being
// decoded; the others are decoded, the old ones to remove their addresses, the new ones to
// add theirs; an address removed and added under the same key did not change.
func (x *Index) replace(node string, old, now *nodeReport) (map[netip.Addr]bool, error) {
	var errs []error
	kept := map[*indexedSet]bool{}
	removed := map[netip.Addr][]string{} // address → keys of the sets it left
	if old != nil {
		byKey := map[string][]*indexedSet{}
		for _, s := range old.sets {
			byKey[s.key] = append(byKey[s.key], s)
		}
		if now != nil {
			for i, s := range now.sets {
				for _, o := range byKey[s.key] {
					if !kept[o] && bytes.Equal(o.encoded, s.encoded) {
						now.sets[i], kept[o] = o, true
						break
					}
				}
			}
		}
		for _, s := range old.sets {
			if kept[s] {
				continue
			}
			addrs, _ := addrset.Decode(s.encoded) // an old set that did not decode added nothing
			for _, a := range addrs {
				x.byAddr[a] = slices.DeleteFunc(x.byAddr[a], func(o *indexedSet) bool { return o == s })
				if len(x.byAddr[a]) == 0 {
					delete(x.byAddr, a)
				}
				removed[a] = append(removed[a], s.key)
			}
		}
	}
	changed := map[netip.Addr]bool{}
	if now != nil {
		for _, s := range now.sets {
			if kept[s] {
				continue
			}
			addrs, err := addrset.Decode(s.encoded)
			if err != nil {
				errs = append(errs, fmt.Errorf("SpeakerStatus %s: a set of %s addresses: %w", node, s.mode, err))
				continue
			}
			for _, a := range addrs {
				x.byAddr[a] = append(x.byAddr[a], s)
				if i := slices.Index(removed[a], s.key); i >= 0 {
					removed[a] = slices.Delete(removed[a], i, i+1)
				} else {
					changed[a] = true
				}
			}
		}
	}
	for a, keys := range removed {
		if len(keys) > 0 {
			changed[a] = true
		}
	}
	return changed, errors.Join(errs...)
}

// relive recomputes the live speakers after a node's report changed from old to now (nil:
// none) and returns the addresses that changed for the Services: the node's own changes if it
// was or is live, every address of a node that turned live or not, and the addresses whose
// conflicts changed.
func (x *Index) relive(changed map[netip.Addr]bool, old, now *nodeReport) []netip.Addr {
	x.reports = x.reports[:0:0]
	for _, name := range slices.Sorted(maps.Keys(x.nodes)) {
		x.reports = append(x.reports, x.nodes[name].report)
	}
	live := LiveSpeakers(x.reports)
	node := ""
	if old != nil {
		node = old.report.Name
	} else if now != nil {
		node = now.report.Name
	}
	out := map[netip.Addr]bool{}
	if x.live[node] || live[node] {
		maps.Copy(out, changed)
		for _, r := range []*nodeReport{old, now} {
			if r != nil {
				conflictAddrs(out, r.report.Status.Conflicts)
			}
		}
	}
	for name := range joinKeys(x.live, live) {
		if x.live[name] == live[name] {
			continue
		}
		if r := x.nodes[name]; r != nil {
			for _, s := range r.sets {
				addrs, _ := addrset.Decode(s.encoded)
				for _, a := range addrs {
					out[a] = true
				}
			}
			conflictAddrs(out, r.report.Status.Conflicts)
		}
	}
	x.live = live
	return slices.SortedFunc(maps.Keys(out), netip.Addr.Compare)
}

func joinKeys(a, b map[string]bool) map[string]bool {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func conflictAddrs(out map[netip.Addr]bool, cs []v1alpha1.AddressConflict) {
	for _, c := range cs {
		if a, err := netip.ParseAddr(c.IP); err == nil {
			out[a] = true
		}
	}
}

func setKey(a announcer) string {
	return string(a.mode) + "\x00" + strings.Join(a.interfaces, "\x00") + "\x00\x00" + strings.Join(a.peers, "\x00")
}

// view is what the index says about one Service's addresses.
type view struct {
	live map[string]bool
	// reports without their sets, sorted by node (never written).
	reports   []v1alpha1.SpeakerStatus
	announced map[netip.Addr][]announcer
}

// view returns the live nodes, the reports and the announcers of ips: the live nodes
// announcing each, over layer 2 or over BGP sessions that are established, by node.
func (x *Index) view(ips []netip.Addr) view {
	x.mu.RLock()
	defer x.mu.RUnlock()
	v := view{live: x.live, reports: x.reports, announced: map[netip.Addr][]announcer{}}
	for _, ip := range ips {
		for _, s := range x.byAddr[ip] {
			if x.live[s.node] && (s.mode != v1alpha1.ModeBGP || len(s.peers) > 0) {
				v.announced[ip] = append(v.announced[ip], s.announcer)
			}
		}
		slices.SortFunc(v.announced[ip], func(a, b announcer) int {
			return strings.Compare(a.node+"\x00"+string(a.mode), b.node+"\x00"+string(b.mode))
		})
	}
	return v
}
