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

// L2Reconciler writes the Accepted condition of L2Advertisements.
type L2Reconciler struct {
	Writer
}

// SetupWithManager watches L2Advertisements, and pools for the advertisements naming them.
func (r *L2Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("l2advertisement").
		For(&v1alpha1.L2Advertisement{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.IPAddressPool{}, handler.EnqueueRequestsFromMapFunc(r.naming), builder.WithPredicates(specChanged)).
		Complete(r)
}

// naming maps a pool to the L2Advertisements that name it.
func (r *L2Reconciler) naming(ctx context.Context, pool client.Object) []reconcile.Request {
	var ads v1alpha1.L2AdvertisementList
	if err := r.Client.List(ctx, &ads); err != nil {
		return nil
	}
	var names []string
	for _, ad := range ads.Items {
		if slices.Contains(ad.Spec.IPAddressPools, pool.GetName()) {
			names = append(names, ad.Name)
		}
	}
	return requests(names)
}

// Reconcile judges one L2Advertisement.
func (r *L2Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	defer func() {
		metrics.ReconcileSeconds.WithLabelValues("l2advertisement").Observe(time.Since(start).Seconds())
	}()
	var ad v1alpha1.L2Advertisement
	if err := r.Client.Get(ctx, req.NamespacedName, &ad); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var pools v1alpha1.IPAddressPoolList
	if err := r.Client.List(ctx, &pools); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing pools: %w", err)
	}
	want := v1alpha1.AdvertisementStatus{Conditions: withCondition(ad.Status.Conditions, L2(&ad, pools.Items), r.now())}
	if equality.Semantic.DeepEqual(want, ad.Status) {
		return reconcile.Result{}, nil
	}
	orig := ad.DeepCopy()
	ad.Status = want
	return reconcile.Result{}, r.writeStatus(ctx, &ad, orig)
}
