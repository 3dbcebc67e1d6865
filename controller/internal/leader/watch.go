package leader

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Watch feeds the guard every version of the Lease until ctx ends, so that a Lease taken
// by another holder stops writes at once rather than at the elector's next renewal.
type Watch struct {
	Guard     *Guard
	Client    kubernetes.Interface
	Namespace string
	Name      string
}

// Start runs the watch (a manager Runnable).
func (w *Watch) Start(ctx context.Context) error {
	lw := cache.NewListWatchFromClient(w.Client.CoordinationV1().RESTClient(), "leases", w.Namespace,
		fields.OneTermEqualSelector("metadata.name", w.Name))
	inf := cache.NewSharedIndexInformer(lw, &coordinationv1.Lease{}, 10*time.Minute, cache.Indexers{})
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, o any) { w.observe(o) },
	}); err != nil {
		return err
	}
	inf.RunWithContext(ctx)
	return nil
}

// NeedLeaderElection is false: the watch must run while the process leads.
func (w *Watch) NeedLeaderElection() bool { return false }

func (w *Watch) observe(o any) {
	if l, ok := o.(*coordinationv1.Lease); ok {
		w.Guard.ObserveLease(l)
	}
}
