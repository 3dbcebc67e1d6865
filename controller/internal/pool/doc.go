// Package pool reconciles IPAddressPools: it feeds their specs to the allocator, writes
// their status (counts, Ready, Conflicting, InUse) and holds a finalizer on a pool while
// Services still hold its addresses.
package pool

// The controller's permissions for this reconciler, collected into config/rbac.
// +kubebuilder:rbac:groups=vipcast.io,resources=ipaddresspools,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=vipcast.io,resources=ipaddresspools/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=vipcast.io,resources=ipaddresspools/finalizers,verbs=update
