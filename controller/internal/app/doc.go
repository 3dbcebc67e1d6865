// Package app wires the controller: manager, caches, reconcilers, probes, leader
// election. main parses flags into Options and calls Run; tests call Run too.
package app

// Leader election.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete
