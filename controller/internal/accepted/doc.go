// Package accepted tells whether each L2Advertisement, BGPAdvertisement and BGPPeer is in
// effect as written: it writes their Accepted condition (and a BGPPeer's session counts)
// from the objects they refer to and the speakers' reports. The verdicts are pure functions
// (L2, BGP, Peer); one reconciler per kind writes them, only on change.
package accepted

// The controller's permissions for these reconcilers, collected into config/rbac.
// +kubebuilder:rbac:groups=vipcast.io,resources=l2advertisements;bgpadvertisements;bgppeers;ipaddresspools;speakerstatuses,verbs=get;list;watch
// +kubebuilder:rbac:groups=vipcast.io,resources=l2advertisements/status;bgpadvertisements/status;bgppeers/status,verbs=get;update;patch
