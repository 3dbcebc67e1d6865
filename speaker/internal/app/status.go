package app

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
	"github.com/vipcast/vipcast/speaker/internal/host"
)

// statusWriter keeps SpeakerStatus/<node> equal to what the speaker does, writing only on
// change.
type statusWriter struct {
	node   string
	client client.Client
	reader client.Reader
	log    logr.Logger
	last   *v1alpha1.SpeakerReport
}

// report is what the speaker tells of itself. The zero report (a stopped speaker) claims
// nothing and carries no conditions to change.
type report struct {
	mine      map[annKey]announcement
	sessions  []v1alpha1.BGPSessionStatus
	members   map[string]bool
	links     []host.Link
	conflicts []v1alpha1.AddressConflict
	// ready is the Ready condition (none: left as it is).
	ready metav1.Condition
	// keep: the plan failed; announcements, sessions and conflicts stay as last written.
	keep bool
}

func (r report) status() v1alpha1.SpeakerReport {
	out := v1alpha1.SpeakerReport{Members: slices.Sorted(maps.Keys(r.members)), AnnouncedCount: int32(len(r.mine)), Sessions: r.sessions, Conflicts: r.conflicts}
	out.Announced = announcedSets(r.mine)
	for _, l := range r.links {
		si := v1alpha1.SpeakerInterface{Name: v1alpha1.InterfaceName(l.Name), MAC: l.MAC.String()}
		for _, p := range l.Prefixes {
			si.Prefixes = append(si.Prefixes, p.String())
		}
		out.Interfaces = append(out.Interfaces, si)
	}
	return out
}

// announcedSets groups the announcements by mode, interfaces and peers (each sorted), one
// set each with its addresses encoded, sorted by mode, interfaces, peers. Services and the
// BGP aggregate are not reported: the controller finds a Service by its address.
func announcedSets(mine map[annKey]announcement) []v1alpha1.AnnouncedSet {
	type group struct {
		mode              v1alpha1.AnnouncementMode
		interfaces, peers []string
		addrs             []netip.Addr
	}
	type groupKey struct {
		mode              v1alpha1.AnnouncementMode
		interfaces, peers string
	}
	groups := map[groupKey]*group{}
	for k, a := range mine {
		ifs, peers := slices.Sorted(slices.Values(a.interfaces)), slices.Sorted(slices.Values(a.peers))
		key := groupKey{k.mode, strings.Join(ifs, "\x00"), strings.Join(peers, "\x00")}
		g := groups[key]
		if g == nil {
			g = &group{mode: k.mode, interfaces: ifs, peers: peers}
			groups[key] = g
		}
		g.addrs = append(g.addrs, k.addr)
	}
	sorted := slices.SortedFunc(maps.Values(groups), func(a, b *group) int {
		return cmp.Or(cmp.Compare(a.mode, b.mode), slices.Compare(a.interfaces, b.interfaces), slices.Compare(a.peers, b.peers))
	})
	var out []v1alpha1.AnnouncedSet
	for _, g := range sorted {
		set := v1alpha1.AnnouncedSet{Mode: g.mode, Peers: g.peers, Count: int32(len(g.addrs)), Addresses: addrset.Encode(g.addrs)}
		for _, i := range g.interfaces {
			set.Interfaces = append(set.Interfaces, v1alpha1.InterfaceName(i))
		}
		out = append(out, set)
	}
	return out
}

// sameSets tells whether two reports announce the same: the encodings compare, as every set
// has one.
func sameSets(a, b []v1alpha1.AnnouncedSet) bool {
	return slices.EqualFunc(a, b, func(x, y v1alpha1.AnnouncedSet) bool {
		return x.Mode == y.Mode && x.Count == y.Count && slices.Equal(x.Interfaces, y.Interfaces) &&
			slices.Equal(x.Peers, y.Peers) && bytes.Equal(x.Addresses, y.Addresses)
	})
}

// sameConditions tells whether the conditions say the same (times aside).
func sameConditions(a, b []metav1.Condition) bool {
	return slices.EqualFunc(a, b, func(x, y metav1.Condition) bool {
		return x.Type == y.Type && x.Status == y.Status && x.Reason == y.Reason && x.Message == y.Message
	})
}

func (w *statusWriter) write(ctx context.Context, r report) {
	want := r.status()
	if r.keep && w.last != nil {
		want.Announced, want.AnnouncedCount, want.Sessions, want.Conflicts = w.last.Announced, w.last.AnnouncedCount, w.last.Sessions, w.last.Conflicts
	}
	var conds []metav1.Condition
	if w.last != nil {
		conds = slices.Clone(w.last.Conditions)
	}
	if r.ready.Type != "" {
		meta.SetStatusCondition(&conds, r.ready)
		meta.SetStatusCondition(&conds, conflictCondition(want.Conflicts))
	}
	if w.last != nil && sameSets(want.Announced, w.last.Announced) &&
		equality.Semantic.DeepEqual(want.Sessions, w.last.Sessions) && slices.Equal(want.Members, w.last.Members) &&
		equality.Semantic.DeepEqual(want.Interfaces, w.last.Interfaces) && equality.Semantic.DeepEqual(want.Conflicts, w.last.Conflicts) &&
		sameConditions(conds, w.last.Conditions) {
		return
	}
	var st v1alpha1.SpeakerStatus
	err := w.reader.Get(ctx, client.ObjectKey{Name: w.node}, &st)
	if apierrors.IsNotFound(err) {
		st.Name = w.node
		err = w.client.Create(ctx, &st)
	}
	if err != nil {
		w.log.Error(err, "Writing SpeakerStatus failed")
		return
	}
	have := st.Status.Conditions
	for _, c := range conds {
		c.ObservedGeneration = st.Generation
		meta.SetStatusCondition(&have, c)
	}
	want.Conditions = have
	st.Status = want
	if err := w.client.Status().Update(ctx, &st); err != nil {
		w.log.Error(err, "Writing SpeakerStatus failed")
		return
	}
	w.last = &want
}
