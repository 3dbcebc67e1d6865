package app

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/internal/planner"
)

// slim drops from every cached object what the speaker never reads: managed fields,
// annotations, and a Node's image list.
func slim(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		m.SetAnnotations(nil)
	}
	if n, ok := obj.(*corev1.Node); ok {
		n.Status.Images = nil
	}
	return obj, nil
}

// changedService names the Service whose plan an object's change may alter: the Service
// itself, or an EndpointSlice's ("" for other kinds).
func changedService(o any) string {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	switch o := o.(type) {
	case *corev1.Service:
		return o.Namespace + "/" + o.Name
	case *discoveryv1.EndpointSlice:
		return planner.ServiceKey(o)
	}
	return ""
}

// sliceService indexes an EndpointSlice by its Service's namespace/name.
func sliceService(o client.Object) []string {
	if sl, ok := o.(*discoveryv1.EndpointSlice); ok {
		if key := planner.ServiceKey(sl); key != "" {
			return []string{key}
		}
	}
	return nil
}

// unhandledService tells whether o is a Service vipcast does not handle (not a
// LoadBalancer of its class): its changes alter no plan.
func unhandledService(o any, class string) bool {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	s, ok := o.(*corev1.Service)
	return ok && !planner.Handled(s, class)
}

// planInputChanged tells whether an update changes what a plan reads of the object.
func planInputChanged(old, cur any) bool {
	switch o := old.(type) {
	case *corev1.Service:
		n, ok := cur.(*corev1.Service)
		return !ok || serviceChanged(o, n)
	case *discoveryv1.EndpointSlice:
		n, ok := cur.(*discoveryv1.EndpointSlice)
		return !ok || sliceChanged(o, n)
	case *corev1.Node:
		n, ok := cur.(*corev1.Node)
		return !ok || nodeChanged(o, n)
	case metav1.Object:
		// Pools, advertisements, peers: their spec (the generation) or labels; not the status
		// the controller writes.
		n, ok := cur.(metav1.Object)
		return !ok || o.GetGeneration() != n.GetGeneration() || !maps.Equal(o.GetLabels(), n.GetLabels())
	}
	return true
}

func serviceChanged(o, n *corev1.Service) bool {
	return o.Spec.Type != n.Spec.Type || !equalPtr(o.Spec.LoadBalancerClass, n.Spec.LoadBalancerClass) ||
		o.Spec.ExternalTrafficPolicy != n.Spec.ExternalTrafficPolicy || o.Spec.PublishNotReadyAddresses != n.Spec.PublishNotReadyAddresses ||
		!maps.Equal(o.Labels, n.Labels) ||
		!slices.EqualFunc(o.Status.LoadBalancer.Ingress, n.Status.LoadBalancer.Ingress, func(a, b corev1.LoadBalancerIngress) bool { return a.IP == b.IP })
}

// sliceChanged: the nodes of its endpoints, ready or not, differ.
func sliceChanged(o, n *discoveryv1.EndpointSlice) bool {
	return planner.ServiceKey(o) != planner.ServiceKey(n) || !maps.Equal(endpointNodeStates(o), endpointNodeStates(n))
}

// endpointNodeStates maps each node with an endpoint to whether one there is ready.
func endpointNodeStates(sl *discoveryv1.EndpointSlice) map[string]bool {
	out := map[string]bool{}
	for _, e := range sl.Endpoints {
		if e.NodeName != nil {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			out[*e.NodeName] = out[*e.NodeName] || ready
		}
	}
	return out
}

// nodeChanged: labels, addresses, schedulability, or a condition's status (the plan reads
// NetworkUnavailable; the gate and the stop read Ready) differ; heartbeats do not count.
func nodeChanged(o, n *corev1.Node) bool {
	conds := func(x *corev1.Node) map[corev1.NodeConditionType]corev1.ConditionStatus {
		out := map[corev1.NodeConditionType]corev1.ConditionStatus{}
		for _, c := range x.Status.Conditions {
			out[c.Type] = c.Status
		}
		return out
	}
	return !maps.Equal(o.Labels, n.Labels) || !slices.Equal(o.Status.Addresses, n.Status.Addresses) ||
		o.Spec.Unschedulable != n.Spec.Unschedulable || !maps.Equal(conds(o), conds(n)) || !equalTime(o.DeletionTimestamp, n.DeletionTimestamp)
}

func equalPtr[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func equalTime(a, b *metav1.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(b)
}
