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

func report(mine map[annKey]announcement, sessions []v1alpha1.BGPSessionStatus, members map[string]bool) v1alpha1.SpeakerReport {
	r := v1alpha1.SpeakerReport{Members: slices.Sorted(maps.Keys(members)), AnnouncedCount: int32(len(mine)), Sessions: sessions}
	keys := slices.SortedFunc(maps.Keys(mine), func(a, b annKey) int {
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return strings.Compare(string(a.mode), string(b.mode))
	})
	for _, k := range keys {
		a := mine[k]
		an := v1alpha1.Announcement{IP: k.addr.String(), Mode: k.mode, Services: a.services, Peers: a.peers, Prefix: a.prefix}
		for _, i := range a.interfaces {
			an.Interfaces = append(an.Interfaces, v1alpha1.InterfaceName(i))
		}
		r.Announcements = append(r.Announcements, an)
	}
	return r
}

func (w *statusWriter) write(ctx context.Context, mine map[annKey]announcement, sessions []v1alpha1.BGPSessionStatus, members map[string]bool) {
	want := report(mine, sessions, members)
	if w.last != nil && equality.Semantic.DeepEqual(want.Announcements, w.last.Announcements) &&
		equality.Semantic.DeepEqual(want.Sessions, w.last.Sessions) && slices.Equal(want.Members, w.last.Members) {
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
	conds := st.Status.Conditions
	meta.SetStatusCondition(&conds, metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Applied",
		Message: "joined the speakers and applied the plan", ObservedGeneration: st.Generation})
	want.Conditions = conds
	st.Status = want
	if err := w.client.Status().Update(ctx, &st); err != nil {
		w.log.Error(err, "Writing SpeakerStatus failed")
		return
	}
	w.last = &want
}
