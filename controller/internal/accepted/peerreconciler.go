package accepted

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/announce"
	"github.com/vipcast/vipcast/controller/internal/metrics"
)

// PeerReconciler writes the Accepted condition and session counts of BGPPeers.
type PeerReconciler struct {
	Writer
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// SetupWithManager watches BGPPeers and SpeakerStatuses: a report enqueues the peers it
// lists a session with, before and after the change; when its members change, also the
// peers of the nodes that joined or left it (whose reports may count again, or no more).
func (r *PeerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("bgppeer").
		For(&v1alpha1.BGPPeer{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.SpeakerStatus{}, handler.Funcs{
			CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) { enqueuePeers(q, e.Object) },
			UpdateFunc: r.speakerUpdated,
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) { enqueuePeers(q, e.Object) },
		}).
		Complete(r)
}

func (r *PeerReconciler) speakerUpdated(ctx context.Context, e event.UpdateEvent, q queue) {
	o, ok1 := e.ObjectOld.(*v1alpha1.SpeakerStatus)
	n, ok2 := e.ObjectNew.(*v1alpha1.SpeakerStatus)
	if !ok1 || !ok2 {
		return
	}
	if !equality.Semantic.DeepEqual(o.Status.Sessions, n.Status.Sessions) {
		enqueuePeers(q, o)
		enqueuePeers(q, n)
	}
	if slices.Equal(o.Status.Members, n.Status.Members) {
		return
	}
	if len(o.Status.Members) == 0 || len(n.Status.Members) == 0 {
		enqueuePeers(q, n) // the report itself starts or stops counting
		enqueuePeers(q, o)
	}
	for _, node := range symmetricDifference(o.Status.Members, n.Status.Members) {
		var other v1alpha1.SpeakerStatus
		if err := r.Client.Get(ctx, client.ObjectKey{Name: node}, &other); err == nil {
			enqueuePeers(q, &other)
		}
	}
}

func enqueuePeers(q queue, o client.Object) {
	st, ok := o.(*v1alpha1.SpeakerStatus)
	if !ok {
		return
	}
	for _, s := range st.Status.Sessions {
		q.Add(reconcile.Request{NamespacedName: client.ObjectKey{Name: s.Peer}})
	}
}

func symmetricDifference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, x)
		}
	}
	return out
}

// Reconcile judges one BGPPeer.
func (r *PeerReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	defer func() { metrics.ReconcileSeconds.WithLabelValues("bgppeer").Observe(time.Since(start).Seconds()) }()
	var p v1alpha1.BGPPeer
	if err := r.Client.Get(ctx, req.NamespacedName, &p); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var reports v1alpha1.SpeakerStatusList
	if err := r.Client.List(ctx, &reports); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing speaker statuses: %w", err)
	}
	v := Peer(&p, reports.Items, announce.LiveSpeakers(reports.Items))
	want := v1alpha1.BGPPeerStatus{Conditions: withCondition(p.Status.Conditions, v.Accepted, r.now()),
		EstablishedNodes: v.EstablishedNodes, Nodes: v.Nodes}
	if equality.Semantic.DeepEqual(want, p.Status) {
		return reconcile.Result{}, nil
	}
	orig := p.DeepCopy()
	p.Status = want
	return reconcile.Result{}, r.writeStatus(ctx, &p, orig)
}
