package app

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
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
	keys := slices.SortedFunc(maps.Keys(r.mine), func(a, b annKey) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return strings.Compare(string(a.mode), string(b.mode))
	})
	for _, k := range keys {
		a := r.mine[k]
		an := v1alpha1.Announcement{IP: k.addr.String(), Mode: k.mode, Services: a.services, Peers: a.peers, Prefix: a.prefix}
		for _, i := range a.interfaces {
			an.Interfaces = append(an.Interfaces, v1alpha1.InterfaceName(i))
		}
		out.Announcements = append(out.Announcements, an)
	}
	for _, l := range r.links {
		si := v1alpha1.SpeakerInterface{Name: v1alpha1.InterfaceName(l.Name), MAC: l.MAC.String()}
		for _, p := range l.Prefixes {
			si.Prefixes = append(si.Prefixes, p.String())
		}
		out.Interfaces = append(out.Interfaces, si)
	}
	return out
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
		want.Announcements, want.AnnouncedCount, want.Sessions, want.Conflicts = w.last.Announcements, w.last.AnnouncedCount, w.last.Sessions, w.last.Conflicts
	}
	var conds []metav1.Condition
	if w.last != nil {
		conds = slices.Clone(w.last.Conditions)
	}
	if r.ready.Type != "" {
		meta.SetStatusCondition(&conds, r.ready)
		meta.SetStatusCondition(&conds, conflictCondition(want.Conflicts))
	}
	if w.last != nil && equality.Semantic.DeepEqual(want.Announcements, w.last.Announcements) &&
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
