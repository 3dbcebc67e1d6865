package announce

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/leader"
	"github.com/vipcast/vipcast/controller/internal/metrics"
	"github.com/vipcast/vipcast/internal/planner"
)

// FieldOwner is the server-side-apply field manager of the Announced condition, so it and
// the IPAllocated condition (written by the allocation controller) never overwrite each other.
const FieldOwner = "vipcast-announce"

// +kubebuilder:rbac:groups=vipcast.io,resources=speakerstatuses;l2advertisements;bgpadvertisements;bgppeers,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch

// Reconciler writes the Announced condition of LoadBalancer Services.
type Reconciler struct {
	Client client.Client
	Class  string
	// Fence guards the condition's writes; nil allows them (no leader election).
	Fence leader.Fence

	// index holds the SpeakerStatuses as read once per change (made by SetupWithManager).
	index *Index

	mu          sync.Mutex
	unannounced map[types.NamespacedName]bool // Services whose condition is False, for the gauge
}

// ingressIndex is the field index of Services by the addresses in their
// status.loadBalancer.ingress, so a SpeakerStatus's change reaches the Services holding the
// addresses that changed, shared ones included.
const ingressIndex = "status.loadBalancer.ingress.ip"

func ingressIPs(o client.Object) []string {
	svc, ok := o.(*corev1.Service)
	if !ok {
		return nil
	}
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.String())
		}
	}
	return out
}

// count keeps the vipcast_services_unannounced gauge: a Service is counted while its
// condition is False and forgotten when it is announced, gone or no longer ours.
func (r *Reconciler) count(key types.NamespacedName, unannounced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unannounced == nil {
		r.unannounced = map[types.NamespacedName]bool{}
	}
	if unannounced {
		r.unannounced[key] = true
	} else {
		delete(r.unannounced, key)
	}
	metrics.ServicesUnannounced.Set(float64(len(r.unannounced)))
}

// SetupWithManager watches Services (when their addresses change) and SpeakerStatuses: each
// report goes into the index once per change, and the Services holding the addresses whose
// announcers changed are reconciled (found through the ingress field index). The kinds only
// read for the planner's reasons get their informers now, so they start and sync with the
// manager rather than on a first reconcile.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.index = NewIndex()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Service{}, ingressIndex, ingressIPs); err != nil {
		return err
	}
	for _, obj := range []client.Object{&corev1.Node{}, &discoveryv1.EndpointSlice{}, &v1alpha1.L2Advertisement{}, &v1alpha1.BGPAdvertisement{}, &v1alpha1.BGPPeer{}, &v1alpha1.IPAddressPool{}} {
		if _, err := mgr.GetCache().GetInformer(ctx, obj); err != nil {
			return err
		}
	}
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	return ctrl.NewControllerManagedBy(mgr).Named("announced").
		For(&corev1.Service{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: ingressChanged})).
		Watches(&v1alpha1.SpeakerStatus{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) { r.put(ctx, q, e.Object) },
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) { r.put(ctx, q, e.ObjectNew) },
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) {
				changed, err := r.index.Delete(e.Object.GetName())
				r.enqueueHolders(ctx, q, e.Object.GetName(), changed, err)
			},
		}).
		Complete(r)
}

func (r *Reconciler) put(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
	st, ok := o.(*v1alpha1.SpeakerStatus)
	if !ok {
		return
	}
	changed, err := r.index.Put(st)
	r.enqueueHolders(ctx, q, st.Name, changed, err)
}

// enqueueHolders queues the Services holding the changed addresses.
func (r *Reconciler) enqueueHolders(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], node string, changed []netip.Addr, err error) {
	if err != nil {
		log.FromContext(ctx).Error(err, "Reading a SpeakerStatus failed; its unreadable sets count as empty", "node", node)
	}
	for _, a := range changed {
		var svcs corev1.ServiceList
		if err := r.Client.List(ctx, &svcs, client.MatchingFields{ingressIndex: a.String()}, client.UnsafeDisableDeepCopy); err != nil {
			log.FromContext(ctx).Error(err, "Listing the Services of an address failed", "ip", a.String())
			continue
		}
		for i := range svcs.Items {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&svcs.Items[i])})
		}
	}
}

func ingressChanged(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*corev1.Service)
	n, ok2 := e.ObjectNew.(*corev1.Service)
	if !ok1 || !ok2 {
		return true
	}
	return !slices.EqualFunc(o.Status.LoadBalancer.Ingress, n.Status.LoadBalancer.Ingress, func(a, b corev1.LoadBalancerIngress) bool { return a.IP == b.IP }) ||
		meta.FindStatusCondition(n.Status.Conditions, v1alpha1.ConditionAnnounced) == nil && len(n.Status.LoadBalancer.Ingress) > 0 ||
		o.Spec.ExternalTrafficPolicy != n.Spec.ExternalTrafficPolicy
}

// Reconcile computes the condition and applies it when it differs.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var svc corev1.Service
	if err := r.Client.Get(ctx, req.NamespacedName, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			r.count(req.NamespacedName, false)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var ips []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			ips = append(ips, a)
		}
	}
	if !planner.Handled(&svc, r.Class) || len(ips) == 0 || svc.DeletionTimestamp != nil {
		r.count(req.NamespacedName, false)
		return reconcile.Result{}, nil
	}
	v := r.index.view(ips)
	decisions, err := r.plan(ctx, &svc, v, ips)
	if err != nil {
		return reconcile.Result{}, err
	}
	want := Desired(ips, v.announced, Conflicts(v.reports, v.live), decisions, svc.Generation)
	r.count(req.NamespacedName, want.Status == metav1.ConditionFalse)
	if have := meta.FindStatusCondition(svc.Status.Conditions, want.Type); have != nil &&
		have.Status == want.Status && have.Reason == want.Reason && have.Message == want.Message {
		return reconcile.Result{}, nil
	}
	wctx, cancel, err := leader.WriteContext(ctx, r.Fence)
	if err != nil {
		return reconcile.Result{}, err
	}
	defer cancel()
	// The resourceVersion makes an apply computed from a stale copy fail: otherwise a
	// condition computed while the Service had an address could land after the address was
	// cleared, and stay.
	ac := corev1ac.Service(svc.Name, svc.Namespace).WithResourceVersion(svc.ResourceVersion).WithStatus(corev1ac.ServiceStatus().WithConditions(
		metav1ac.Condition().WithType(want.Type).WithStatus(want.Status).WithReason(want.Reason).
			WithMessage(want.Message).WithObservedGeneration(want.ObservedGeneration).WithLastTransitionTime(transition(&svc, want))))
	err = r.Client.Status().Apply(wctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership)
	if apierrors.IsConflict(err) {
		log.FromContext(ctx).V(1).Info("Service changed under the write; retrying")
		return reconcile.Result{RequeueAfter: conflictRetry}, nil
	}
	return reconcile.Result{}, err
}

// conflictRetry is how long a Service waits after its write lost to a newer version.
const conflictRetry = 20 * time.Millisecond

// plan asks the planner about this Service's unannounced addresses only (a fully announced
// Service needs no explanation).
func (r *Reconciler) plan(ctx context.Context, svc *corev1.Service, v view, ips []netip.Addr) (map[netip.Addr]planner.Decision, error) {
	missing := false
	for _, ip := range ips {
		missing = missing || len(v.announced[ip]) == 0
	}
	if !missing {
		return nil, nil
	}
	objs := planner.Objects{Services: []corev1.Service{*svc}, LBClass: r.Class, Members: v.live, Links: Links(v.reports, v.live)}
	var nodes corev1.NodeList
	var pools v1alpha1.IPAddressPoolList
	var ads v1alpha1.L2AdvertisementList
	var bgpAds v1alpha1.BGPAdvertisementList
	var peers v1alpha1.BGPPeerList
	var slices discoveryv1.EndpointSliceList
	for _, l := range []client.ObjectList{&nodes, &pools, &ads, &bgpAds, &peers} {
		if err := r.Client.List(ctx, l); err != nil {
			return nil, err
		}
	}
	if err := r.Client.List(ctx, &slices, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, err
	}
	objs.Nodes, objs.Pools, objs.L2, objs.Slices = nodes.Items, pools.Items, ads.Items, slices.Items
	objs.BGP, objs.Peers = bgpAds.Items, peers.Items
	in := objs.Input()
	out := map[netip.Addr]planner.Decision{}
	for _, d := range planner.L2(in) {
		out[d.Addr] = d
	}
	viaBGP(in, out)
	return out, nil
}

// viaBGP turns "no L2 advertisement" into "pending" for addresses that live nodes should
// announce over BGP, naming them.
func viaBGP(in planner.Input, out map[netip.Addr]planner.Decision) {
	nodes := map[netip.Addr][]string{}
	for _, node := range slices.Sorted(maps.Keys(in.Members)) {
		for _, r := range planner.BGPFor(in, node) {
			for _, a := range r.Addrs {
				nodes[a] = append(nodes[a], node)
			}
		}
	}
	for a, who := range nodes {
		if d := out[a]; d.Reason == planner.NoAdvertisement || d.Reason == "" {
			out[a] = planner.Decision{Addr: a, Owner: strings.Join(who, ", ") + " over BGP"}
		}
	}
}

// transition keeps lastTransitionTime unless the status flips.
func transition(svc *corev1.Service, want metav1.Condition) metav1.Time {
	if have := meta.FindStatusCondition(svc.Status.Conditions, want.Type); have != nil && have.Status == want.Status {
		return have.LastTransitionTime
	}
	return metav1.Now()
}
