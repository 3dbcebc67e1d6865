package integration

import (
	"context"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/controller/internal/ipam"
	"github.com/vipcast/vipcast/controller/internal/pool"
	"github.com/vipcast/vipcast/internal/iprange"
)

// The pool finalizer race, made deterministic: while the pool reconciler writes the pool's
// status (after it counted the pool's holders), the pool is deleted and a Service takes one
// of its addresses. The status write's response then carries the deletion; the finalizer
// must stay, because the holders were counted before the deletion was known.
func TestPoolFinalizerRace(t *testing.T) {
	ctx := context.Background()
	const name = "finalizer-race"
	createPool(t, name, []string{"203.0.113.200/30"})
	state := ipam.New()
	state.SetLoader(ipam.Loader{Cached: k8s, Live: k8s, ToRequest: func(context.Context, *corev1.Service) *allocator.Request { return nil }})
	holder := &allocator.Request{Key: "tenant/holder", Namespace: "tenant", Families: []iprange.Family{iprange.IPv4}, Pool: name}
	injected := false
	base, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	must(t, err)
	r := &pool.Reconciler{IPAM: state, Client: interceptor.NewClient(base, interceptor.Funcs{
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			if !injected {
				injected = true
				// The user deletes the pool (the finalizer holds it) and a Service gets an
				// address from it, both between the holder count and this write.
				must(t, k8s.Delete(ctx, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}))
				if a := state.Assign(holder); a.Err != nil {
					t.Fatalf("the Service got no address from the pool: %v", a.Err)
				}
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})}
	req := reconcile.Request{}
	req.Name = name
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if !injected {
		t.Fatal("the reconciler wrote no status: the race was not staged")
	}
	p := &v1alpha1.IPAddressPool{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: name}, p); apierrors.IsNotFound(err) {
		t.Fatalf("pool %s is gone while %s holds %v", name, holder.Key, state.Addresses(holder.Key))
	} else {
		must(t, err)
	}
	if !controllerutil.ContainsFinalizer(p, v1alpha1.PoolFinalizer) {
		t.Fatalf("the finalizer was removed while %s holds %v", holder.Key, state.Addresses(holder.Key))
	}
	// The next pass knows the deletion and counts the holder: the pool waits.
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	must(t, k8s.Get(ctx, client.ObjectKey{Name: name}, p))
	if !controllerutil.ContainsFinalizer(p, v1alpha1.PoolFinalizer) {
		t.Fatal("the finalizer was removed on the second pass while the Service holds an address")
	}
	// Once the Service lets go, the pool goes.
	state.Release(holder.Key)
	if _, err := r.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKey{Name: name}, p); !apierrors.IsNotFound(err) {
		t.Fatalf("pool still there after its last holder left: %v, finalizers %v", err, p.Finalizers)
	}
}
