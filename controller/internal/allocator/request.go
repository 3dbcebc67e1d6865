package allocator

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vipcast/vipcast/internal/iprange"
)

// Policy is a Service's ipFamilyPolicy.
type Policy int

// The policies, as in corev1.IPFamilyPolicy.
const (
	SingleStack Policy = iota
	PreferDualStack
	RequireDualStack
)

// Port is one protocol/port pair a Service exposes; two Services sharing an address must
// not expose the same pair.
type Port struct {
	Protocol string
	Port     int32
}

// Request is everything the allocator needs to know of one Service.
type Request struct {
	// Key names the Service: "namespace/name".
	Key             string
	Namespace       string
	Labels          map[string]string
	NamespaceLabels map[string]string
	// Families in the Service's order of preference (spec.ipFamilies).
	Families []iprange.Family
	Policy   Policy
	// RequestedIPs come from the load-balancer-ips annotation or spec.loadBalancerIP.
	RequestedIPs []netip.Addr
	// Pool is the pool the Service names, if any.
	Pool string
	// SharingKey is the allow-shared-ip annotation; empty means no sharing. It binds
	// Services of one namespace, unless both sides list each other in ShareNamespaces.
	SharingKey string
	// ShareNamespaces are the other namespaces whose Services may share this one's address
	// under the same key ("*": any), from the allow-shared-ip-namespaces annotation.
	ShareNamespaces []string
	Ports           []Port
	// Local is externalTrafficPolicy: Local; Selector the Service's pod selector, in a
	// canonical form, which must be equal among Local Services sharing an address.
	Local    bool
	Selector string
	// Current are the addresses in the Service's status: adopted when they are free, so a
	// Service the allocator has not seen yet keeps what it has.
	Current []netip.Addr
}

// wantedFamilies returns the families the Service must get and the ones it may get.
func (r *Request) wantedFamilies() (must, may []iprange.Family) {
	if len(r.Families) == 0 {
		return nil, nil
	}
	switch r.Policy {
	case RequireDualStack:
		return r.Families, nil
	case PreferDualStack:
		return r.Families[:1], r.Families[1:]
	default:
		return r.Families[:1], nil
	}
}

func (r *Request) allFamilies() []iprange.Family {
	must, may := r.wantedFamilies()
	return append(slices.Clone(must), may...)
}

// Reasons for an allocation failure, used as Event and condition reasons.
const (
	ReasonPoolExhausted          = "PoolExhausted"
	ReasonNoMatchingPool         = "NoMatchingPool"
	ReasonRequestedIPUnavailable = "RequestedIPUnavailable"
	ReasonSharingConflict        = "SharingConflict"
	ReasonInvalidAnnotation      = "InvalidAnnotation"
	// ReasonNotAllowedByPool: the Service names a pool, or asks for an address of a pool,
	// whose serviceAllocation does not admit it.
	ReasonNotAllowedByPool = "NotAllowedByPool"
	// ReasonSharingNotAllowed: the address is shared under the Service's key in another
	// namespace, and the two namespaces do not both consent.
	ReasonSharingNotAllowed = "SharingNotAllowed"
)

// AnyNamespace in ShareNamespaces consents to sharing with every namespace.
const AnyNamespace = "*"

// Error is an allocation that cannot be made until something changes: a user's mistake
// or a full pool. Retrying it at once will not help.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Reason + ": " + e.Message }

func failf(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}
