package accepted

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/metrics"
)

// BGPReconciler writes the Accepted condition of BGPAdvertisements.
type BGPReconciler struct {
	Writer
}

// SetupWithManager watches BGPAdvertisements, pools and peers (for the advertisements
// whose verdict they can change).
func (r *BGPReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("bgpadvertisement").
		For(&v1alpha1.BGPAdvertisement{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.IPAddressPool{}, handler.EnqueueRequestsFromMapFunc(r.forPool), builder.WithPredicates(specChanged)).
		Watches(&v1alpha1.BGPPeer{}, handler.EnqueueRequestsFromMapFunc(r.forPeer), builder.WithPredicates(specChanged)).
		Complete(r)
}

// forPool maps a pool to the advertisements that name it, select pools by label, or select
// every pool and aggregate.
func (r *BGPReconciler) forPool(ctx context.Context, pool client.Object) []reconcile.Request {
	return r.matching(ctx, func(s *v1alpha1.BGPAdvertisementSpec) bool {
		all := len(s.IPAddressPools) == 0 && len(s.IPAddressPoolSelectors) == 0
		return slices.Contains(s.IPAddressPools, pool.GetName()) || len(s.IPAddressPoolSelectors) > 0 ||
			all && (s.AggregationLength != nil || s.AggregationLengthV6 != nil)
	})
}

// forPeer maps a peer to the advertisements that name it or set localPref.
func (r *BGPReconciler) forPeer(ctx context.Context, peer client.Object) []reconcile.Request {
	return r.matching(ctx, func(s *v1alpha1.BGPAdvertisementSpec) bool {
		return slices.Contains(s.Peers, peer.GetName()) || s.LocalPref != nil
	})
}

func (r *BGPReconciler) matching(ctx context.Context, match func(*v1alpha1.BGPAdvertisementSpec) bool) []reconcile.Request {
	var ads v1alpha1.BGPAdvertisementList
	if err := r.Client.List(ctx, &ads); err != nil {
		return nil
	}
	var names []string
	for i := range ads.Items {
		if match(&ads.Items[i].Spec) {
			names = append(names, ads.Items[i].Name)
		}
	}
	return requests(names)
}

// Reconcile judges one BGPAdvertisement.
func (r *BGPReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	defer func() {
		metrics.ReconcileSeconds.WithLabelValues("bgpadvertisement").Observe(time.Since(start).Seconds())
	}()
	var ad v1alpha1.BGPAdvertisement
	if err := r.Client.Get(ctx, req.NamespacedName, &ad); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var pools v1alpha1.IPAddressPoolList
	var peers v1alpha1.BGPPeerList
	for _, l := range []client.ObjectList{&pools, &peers} {
		if err := r.Client.List(ctx, l); err != nil {
			return reconcile.Result{}, fmt.Errorf("listing: %w", err)
		}
	}
	want := v1alpha1.AdvertisementStatus{Conditions: withCondition(ad.Status.Conditions, BGP(&ad, pools.Items, peers.Items), r.now())}
	if equality.Semantic.DeepEqual(want, ad.Status) {
		return reconcile.Result{}, nil
	}
	orig := ad.DeepCopy()
	ad.Status = want
	return reconcile.Result{}, r.writeStatus(ctx, &ad, orig)
}
