// Package service reconciles LoadBalancer Services: it turns each into an allocation
// request, asks the IPAM for addresses and writes status.loadBalancer, the IPAllocated
// condition and Events.
package service

// The controller's permissions for this reconciler, collected into config/rbac.
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
