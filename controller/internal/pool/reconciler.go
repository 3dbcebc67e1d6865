package pool

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/controller/internal/ipam"
	"github.com/vipcast/vipcast/controller/internal/leader"
	"github.com/vipcast/vipcast/controller/internal/metrics"
	"github.com/vipcast/vipcast/internal/poolset"
)

// Condition reasons on pools.
const (
	ReasonValid         = "Valid"
	ReasonInvalid       = "InvalidAddresses"
	ReasonTerminating   = "Terminating"
	ReasonOverlap       = "Overlap"
	ReasonNoOverlap     = "NoOverlap"
	ReasonHeld          = "HeldByServices"
	ReasonUnused        = "Unused"
	holdersInMessage    = 5
	flushIntervalMillis = 1000
)

// Reconciler keeps the IPAM's pool snapshot current, writes pool status and guards pool
// deletion with a finalizer while Services hold its addresses.
type Reconciler struct {
	Client client.Client
	IPAM   *ipam.IPAM
	// Fence guards every write; nil allows them (no leader election).
	Fence leader.Fence
}

// SetupWithManager registers the reconciler and the flusher of changed pool counts.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.Add(ctrlRunnable(func(ctx context.Context) error {
		return r.IPAM.FlushDirty(ctx, flushIntervalMillis*time.Millisecond)
	})); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("ipaddresspool").
		For(&v1alpha1.IPAddressPool{}).
		WatchesRawSource(source.Channel(r.IPAM.PoolDirty, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

type ctrlRunnable func(ctx context.Context) error

func (f ctrlRunnable) Start(ctx context.Context) error { return f(ctx) }

// Reconcile handles one pool.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	start := time.Now()
	defer func() { metrics.ReconcileSeconds.WithLabelValues("ipaddresspool").Observe(time.Since(start).Seconds()) }()
	if err := r.IPAM.Load(ctx); err != nil {
		return reconcile.Result{}, err
	}
	var list v1alpha1.IPAddressPoolList
	if err := r.Client.List(ctx, &list); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing pools: %w", err)
	}
	r.IPAM.SetPools(list.Items)
	var p *v1alpha1.IPAddressPool
	for i := range list.Items {
		if list.Items[i].Name == req.Name {
			p = &list.Items[i]
		}
	}
	if p == nil {
		for _, fam := range []string{"IPv4", "IPv6"} {
			metrics.PoolAddresses.DeleteLabelValues(req.Name, fam)
			metrics.PoolAddressesInUse.DeleteLabelValues(req.Name, fam)
		}
		return reconcile.Result{}, nil
	}
	// The holders are counted on the snapshot just built from this list. Only when that
	// snapshot already knows the pool is being deleted (so nothing new is handed out of it)
	// may no holders mean the finalizer can go; the patches below return a fresher object,
	// whose deletionTimestamp says nothing of when the holders were counted.
	view := r.IPAM.Pool(p.Name, holdersInMessage)
	mayGo := view.Pool != nil && view.Pool.Terminating && len(view.Holders) == 0
	if p.DeletionTimestamp == nil && !controllerutil.ContainsFinalizer(p, v1alpha1.PoolFinalizer) {
		wctx, cancel, err := leader.WriteContext(ctx, r.Fence)
		if err != nil {
			return reconcile.Result{}, err
		}
		defer cancel()
		orig := p.DeepCopy()
		controllerutil.AddFinalizer(p, v1alpha1.PoolFinalizer)
		if err := r.Client.Patch(wctx, p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
	}
	if err := r.writeStatus(ctx, p, view); err != nil {
		return reconcile.Result{}, err
	}
	if mayGo && controllerutil.ContainsFinalizer(p, v1alpha1.PoolFinalizer) {
		wctx, cancel, err := leader.WriteContext(ctx, r.Fence)
		if err != nil {
			return reconcile.Result{}, err
		}
		defer cancel()
		orig := p.DeepCopy()
		controllerutil.RemoveFinalizer(p, v1alpha1.PoolFinalizer)
		if err := client.IgnoreNotFound(r.Client.Patch(wctx, p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))); err != nil {
			return reconcile.Result{}, fmt.Errorf("removing finalizer: %w", err)
		}
	}
	return reconcile.Result{}, nil
}

func (r *Reconciler) writeStatus(ctx context.Context, p *v1alpha1.IPAddressPool, view ipam.PoolView) error {
	st := DesiredStatus(p, view)
	setGauges(p.Name, view.Stats)
	if equality.Semantic.DeepEqual(st, p.Status) {
		return nil
	}
	wctx, cancel, err := leader.WriteContext(ctx, r.Fence)
	if err != nil {
		return err
	}
	defer cancel()
	orig := p.DeepCopy()
	p.Status = st
	if err := client.IgnoreNotFound(r.Client.Status().Patch(wctx, p, client.MergeFrom(orig))); err != nil {
		return fmt.Errorf("writing pool status: %w", err)
	}
	return nil
}

func setGauges(name string, s allocator.Stats) {
	metrics.PoolAddresses.WithLabelValues(name, "IPv4").Set(float64(s.AssignedIPv4 + s.AvailableIPv4))
	metrics.PoolAddresses.WithLabelValues(name, "IPv6").Set(float64(s.AssignedIPv6) + float64(s.AvailableIPv6))
	metrics.PoolAddressesInUse.WithLabelValues(name, "IPv4").Set(float64(s.AssignedIPv4))
	metrics.PoolAddressesInUse.WithLabelValues(name, "IPv6").Set(float64(s.AssignedIPv6))
}

// DesiredStatus computes a pool's status from the allocator's view of it.
func DesiredStatus(p *v1alpha1.IPAddressPool, view ipam.PoolView) v1alpha1.IPAddressPoolStatus {
	st := *p.Status.DeepCopy()
	st.AssignedIPv4, st.AssignedIPv6 = view.Stats.AssignedIPv4, view.Stats.AssignedIPv6
	st.AvailableIPv4, st.AvailableIPv6 = view.Stats.AvailableIPv4, view.Stats.AvailableIPv6
	gen := p.Generation
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	pool := view.Pool
	switch {
	case pool == nil:
		set(v1alpha1.PoolReady, false, ReasonInvalid, "the pool is not known to the allocator yet")
	case pool.Err != nil:
		set(v1alpha1.PoolReady, false, ReasonInvalid, pool.Err.Error())
	case pool.Terminating:
		set(v1alpha1.PoolReady, false, ReasonTerminating, "the pool is being deleted and hands out no new addresses")
	default:
		set(v1alpha1.PoolReady, true, ReasonValid, describeRanges(pool))
	}
	if pool != nil && len(pool.Conflicts) > 0 {
		set(v1alpha1.PoolConflicting, true, ReasonOverlap, fmt.Sprintf("overlaps IPAddressPool %s; the shared addresses are handed out by neither", strings.Join(pool.Conflicts, ", ")))
	} else {
		set(v1alpha1.PoolConflicting, false, ReasonNoOverlap, "no other pool claims these addresses")
	}
	if len(view.Holders) > 0 {
		msg := "held by " + strings.Join(view.Holders, ", ")
		if view.More {
			msg += " and more"
		}
		if p.DeletionTimestamp != nil {
			msg = "deletion waits: addresses " + msg
		}
		set(v1alpha1.PoolInUse, true, ReasonHeld, msg)
	} else {
		set(v1alpha1.PoolInUse, false, ReasonUnused, "no Service holds an address of this pool")
	}
	return st
}

func describeRanges(p *poolset.Pool) string {
	parts := make([]string, 0, len(p.Ranges))
	for _, r := range p.Ranges {
		parts = append(parts, r.String())
	}
	if len(parts) == 0 {
		return "no usable addresses"
	}
	return strconv.Itoa(len(parts)) + " usable range(s): " + strings.Join(parts, ", ")
}
