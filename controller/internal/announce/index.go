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

	"k8s.io/apimachinery/pkg/api/equality"
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
// addresses, and its encoding (the informer's bytes, never written) to tell an
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
	// What LiveSpeakers, Links and Conflicts read. The informer's objects are never written,
	// so the report shares their slices.
	now := &nodeReport{report: v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: st.Name}, Status: v1alpha1.SpeakerReport{
		Members: st.Status.Members, Interfaces: st.Status.Interfaces, Conflicts: st.Status.Conflicts}}}
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
	return x.relive(st.Name, changed, old, now), err
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
	return x.relive(node, changed, old, nil), err
}

// replace swaps a node's sets in byAddr and returns the addresses whose announcement by this
// node changed. A new set takes the place of an old one of the same key (mode, interfaces,
// peers): an equal encoding is not decoded at all, another is merged with the old one so
// that only the addresses that entered or left it change. The other sets are decoded whole,
// the old ones to remove their addresses, the new ones to add theirs.
func (x *Index) replace(node string, old, now *nodeReport) (map[netip.Addr]bool, error) {
	var errs []error
	changed := map[netip.Addr]bool{}
	var gone []*indexedSet
	if old != nil {
		gone = slices.Clone(old.sets)
	}
	var added []*indexedSet
	if now != nil {
		for i, s := range now.sets {
			j := slices.IndexFunc(gone, func(o *indexedSet) bool { return o.key == s.key })
			if j < 0 {
				added = append(added, s)
				continue
			}
			o := gone[j]
			gone = slices.Delete(gone, j, j+1)
			now.sets[i] = o // same announcer: keeps its place in byAddr
			if bytes.Equal(o.encoded, s.encoded) {
				continue
			}
			before, _ := addrset.Decode(o.encoded) // an old set that did not decode added nothing
			after, err := addrset.Decode(s.encoded)
			if err != nil {
				errs = append(errs, fmt.Errorf("SpeakerStatus %s: a set of %s addresses: %w", node, s.mode, err))
			}
			o.encoded = s.encoded
			mergeSorted(before, after, func(a netip.Addr) {
				x.unref(a, o)
				changed[a] = true
			}, func(a netip.Addr) {
				x.byAddr[a] = append(x.byAddr[a], o)
				changed[a] = true
			})
		}
	}
	for _, o := range gone {
		addrs, _ := addrset.Decode(o.encoded)
		for _, a := range addrs {
			x.unref(a, o)
			changed[a] = true
		}
	}
	for _, s := range added {
		addrs, err := addrset.Decode(s.encoded)
		if err != nil {
			errs = append(errs, fmt.Errorf("SpeakerStatus %s: a set of %s addresses: %w", node, s.mode, err))
			continue
		}
		for _, a := range addrs {
			x.byAddr[a] = append(x.byAddr[a], s)
			changed[a] = true
		}
	}
	return changed, errors.Join(errs...)
}

// unref takes set s off address a.
func (x *Index) unref(a netip.Addr, s *indexedSet) {
	if left := slices.DeleteFunc(x.byAddr[a], func(o *indexedSet) bool { return o == s }); len(left) > 0 {
		x.byAddr[a] = left
	} else {
		delete(x.byAddr, a)
	}
}

// mergeSorted walks two sorted address lists and calls onlyBefore and onlyAfter for the
// addresses in one of them only.
func mergeSorted(before, after []netip.Addr, onlyBefore, onlyAfter func(netip.Addr)) {
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		switch {
		case j == len(after) || i < len(before) && before[i].Less(after[j]):
			onlyBefore(before[i])
			i++
		case i == len(before) || after[j].Less(before[i]):
			onlyAfter(after[j])
			j++
		default:
			i++
			j++
		}
	}
}

// relive follows a node's report from old to now (nil: none) in the reports and the live
// speakers, and returns the addresses that changed for the Services: the node's own changes if
// it was or is live, those whose conflicts it reports changed, and every address of a node
// that turned live or not. Most changes touch neither members, interfaces nor conflicts, and
// cost nothing here.
func (x *Index) relive(node string, changed map[netip.Addr]bool, old, now *nodeReport) []netip.Addr {
	var before, after v1alpha1.SpeakerReport
	if old != nil {
		before = old.report.Status
	}
	if now != nil {
		after = now.report.Status
	}
	added := old == nil || now == nil
	members := added || !slices.Equal(before.Members, after.Members)
	conflicts := !equality.Semantic.DeepEqual(before.Conflicts, after.Conflicts)
	if members || conflicts || !equality.Semantic.DeepEqual(before.Interfaces, after.Interfaces) {
		x.reports = nil // a new slice: views may hold the old one
		for _, name := range slices.Sorted(maps.Keys(x.nodes)) {
			x.reports = append(x.reports, x.nodes[name].report)
		}
	}
	was := x.live
	if members {
		x.live = LiveSpeakers(x.reports)
	}
	out := map[netip.Addr]bool{}
	if was[node] || x.live[node] {
		maps.Copy(out, changed)
		if conflicts {
			conflictAddrs(out, before.Conflicts)
			conflictAddrs(out, after.Conflicts)
		}
	}
	if members {
		for name := range joinKeys(was, x.live) {
			if was[name] == x.live[name] {
				continue
			}
			r := x.nodes[name]
			if r == nil { // deleted: its addresses are in changed
				continue
			}
			for _, s := range r.sets {
				addrs, _ := addrset.Decode(s.encoded) // one that did not decode holds nothing
				for _, a := range addrs {
					out[a] = true
				}
			}
			conflictAddrs(out, r.report.Status.Conflicts)
		}
	}
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
