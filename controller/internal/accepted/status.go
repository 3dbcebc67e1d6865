package accepted

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/vipcast/vipcast/controller/internal/leader"
)

// Writer is what the three reconcilers share: the client, the leader fence and the clock
// of lastTransitionTime.
type Writer struct {
	Client client.Client
	// Fence guards every write; nil allows them (no leader election).
	Fence leader.Fence
	// Clock stamps transitions; nil is the real clock.
	Clock clock.PassiveClock
}

func (w *Writer) now() metav1.Time {
	if w.Clock == nil {
		return metav1.Now()
	}
	return metav1.NewTime(w.Clock.Now())
}

// writeStatus patches obj's status, changed from orig, under the fence. An object gone
// meanwhile needs no status.
func (w *Writer) writeStatus(ctx context.Context, obj, orig client.Object) error {
	wctx, cancel, err := leader.WriteContext(ctx, w.Fence)
	if err != nil {
		return err
	}
	defer cancel()
	if err := client.IgnoreNotFound(w.Client.Status().Patch(wctx, obj, client.MergeFrom(orig))); err != nil {
		return fmt.Errorf("writing the Accepted condition: %w", err)
	}
	return nil
}

// specChanged passes creations, deletions and changes of the spec or labels, not the
// status updates that happen all the time (a pool's counts).
var specChanged = predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})

// requests turns names into reconcile requests.
func requests(names []string) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(names))
	for _, n := range names {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: n}})
	}
	return out
}
