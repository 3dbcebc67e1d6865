package v1alpha1

// Service annotations vipcast reads.
const (
	// AnnotationAddressPool names the IPAddressPool a Service wants its address from.
	AnnotationAddressPool = "vipcast.io/address-pool"
	// AnnotationLoadBalancerIPs lists the addresses a Service asks for, comma-separated, at
	// most one per family.
	AnnotationLoadBalancerIPs = "vipcast.io/load-balancer-ips"
	// AnnotationAllowSharedIP is a key: Services with the same key may share an address.
	AnnotationAllowSharedIP = "vipcast.io/allow-shared-ip"
	// AnnotationAllowSharedIPNamespaces lists, comma-separated, the other namespaces whose
	// Services may share this Service's address under the same key ("*": any). A sharing key
	// binds one namespace unless both Services list each other's namespace.
	AnnotationAllowSharedIPNamespaces = "vipcast.io/allow-shared-ip-namespaces"
)

// MetalLB's Service annotations, read as the vipcast.io ones above so that Services move
// from MetalLB without an edit. For each setting the first present of vipcast.io,
// metallb.io and metallb.universe.tf is the one read; the others are ignored.
const (
	MetalLBAddressPool     = "metallb.io/address-pool"
	MetalLBLoadBalancerIPs = "metallb.io/loadBalancerIPs"
	MetalLBAllowSharedIP   = "metallb.io/allow-shared-ip"
	// The metallb.universe.tf forms, which MetalLB still reads after metallb.io.
	MetalLBLegacyAddressPool     = "metallb.universe.tf/address-pool"
	MetalLBLegacyLoadBalancerIPs = "metallb.universe.tf/loadBalancerIPs"
	MetalLBLegacyAllowSharedIP   = "metallb.universe.tf/allow-shared-ip"
)

// AnnotationForms lists, for each vipcast.io annotation that MetalLB has an equivalent of,
// the keys read in order of precedence.
var AnnotationForms = map[string][]string{
	AnnotationAddressPool:     {AnnotationAddressPool, MetalLBAddressPool, MetalLBLegacyAddressPool},
	AnnotationLoadBalancerIPs: {AnnotationLoadBalancerIPs, MetalLBLoadBalancerIPs, MetalLBLegacyLoadBalancerIPs},
	AnnotationAllowSharedIP:   {AnnotationAllowSharedIP, MetalLBAllowSharedIP, MetalLBLegacyAllowSharedIP},
}

// Annotation reads a Service annotation by its vipcast.io name, or MetalLB's equivalent when
// the vipcast.io one is absent (AnnotationForms): the value, the key it was read from, and
// whether any was present.
func Annotation(annotations map[string]string, name string) (value, key string, ok bool) {
	forms := AnnotationForms[name]
	if forms == nil {
		forms = []string{name}
	}
	for _, k := range forms {
		if v, ok := annotations[k]; ok {
			return v, k, true
		}
	}
	return "", "", false
}

// Conditions vipcast writes.
const (
	// ConditionIPAllocated on a Service: whether it holds an address, and from which pool.
	ConditionIPAllocated = "vipcast.io/IPAllocated"
	// ConditionAnnounced on a Service: which nodes announce its address, and how.
	ConditionAnnounced = "vipcast.io/Announced"

	// PoolReady on an IPAddressPool: its addresses are valid and can be handed out.
	PoolReady = "Ready"
	// PoolConflicting on an IPAddressPool: it overlaps another pool; the shared part is not
	// handed out.
	PoolConflicting = "Conflicting"
	// PoolInUse on an IPAddressPool: Services hold addresses of it (so it cannot go yet).
	PoolInUse = "InUse"

	// PoolFinalizer keeps a pool until no Service holds one of its addresses.
	PoolFinalizer = "vipcast.io/pool-protection"

	// LoadBalancerClass is the class vipcast handles when told to handle one.
	LoadBalancerClass = "vipcast.io/lb"
	// ConditionAccepted on an L2Advertisement, BGPAdvertisement or BGPPeer: whether it is
	// valid and in effect as written (False: the reason says what is not).
	ConditionAccepted = "Accepted"
)

// Reasons a speaker gives in a BGP session's status (BGPSessionStatus.Reason); the
// controller carries them into the BGPPeer's Accepted condition.
const (
	// SessionReasonSecretNotFound: the peer's password Secret (or its key) cannot be read.
	// The message names the Secret; a session already up keeps the last password read.
	SessionReasonSecretNotFound = "SecretNotFound"
	// SessionReasonInvalidPeer: the speaker cannot configure a session to the peer at all.
	SessionReasonInvalidPeer = "InvalidPeer"
)
