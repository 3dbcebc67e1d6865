package app

import (
	"context"
	"maps"
	"net/netip"
	"slices"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
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

func report(mine map[netip.Addr]planner.Decision, members map[string]bool) v1alpha1.SpeakerReport {
	r := v1alpha1.SpeakerReport{Members: slices.Sorted(maps.Keys(members)), AnnouncedCount: int32(len(mine))}
	for _, addr := range slices.SortedFunc(maps.Keys(mine), netip.Addr.Compare) {
		d := mine[addr]
		a := v1alpha1.Announcement{IP: addr.String(), Mode: v1alpha1.ModeL2, Services: d.Services}
		for _, i := range d.Interfaces {
			a.Interfaces = append(a.Interfaces, v1alpha1.InterfaceName(i))
		}
		r.Announcements = append(r.Announcements, a)
	}
	return r
}

func (w *statusWriter) write(ctx context.Context, mine map[netip.Addr]planner.Decision, members map[string]bool) {
	want := report(mine, members)
	if w.last != nil && equality.Semantic.DeepEqual(want.Announcements, w.last.Announcements) && slices.Equal(want.Members, w.last.Members) {
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
