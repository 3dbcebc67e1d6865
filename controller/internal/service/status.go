package service

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
)

// Condition reasons on the Service's IPAllocated condition, besides allocator's failure
// reasons.
const (
	ReasonAllocated = "Allocated"
	// ReasonOutsidePool: the Service keeps an address no pool hands out any more.
	ReasonOutsidePool = "OutsidePool"
)

// Outcome is the result of one allocation, as the Service's status should show it.
type Outcome struct {
	IPs  []netip.Addr
	Pool string
	// NotAdmitted: the pool no longer admits the Service, which keeps its address.
	NotAdmitted bool
	Err         error
}

// DesiredStatus returns the Service's status as it should be after an allocation: the
// ingress list (one entry per address, ipMode VIP, in ipFamilies order) and the
// IPAllocated condition. Other conditions are left as they are.
func DesiredStatus(svc *corev1.Service, o Outcome) corev1.ServiceStatus {
	st := *svc.Status.DeepCopy()
	ips := slices.Clone(o.IPs)
	slices.SortStableFunc(ips, func(a, b netip.Addr) int { return familyRank(svc, a) - familyRank(svc, b) })
	vip := corev1.LoadBalancerIPModeVIP
	st.LoadBalancer.Ingress = nil
	for _, ip := range ips {
		st.LoadBalancer.Ingress = append(st.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip})
	}
	meta.SetStatusCondition(&st.Conditions, allocatedCondition(svc, o, ips))
	return st
}

func allocatedCondition(svc *corev1.Service, o Outcome, ips []netip.Addr) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionIPAllocated, ObservedGeneration: svc.Generation}
	var aerr *allocator.Error
	switch {
	case o.Err != nil && errors.As(o.Err, &aerr):
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, aerr.Reason, aerr.Message
	case o.Err != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, allocator.ReasonInvalidAnnotation, o.Err.Error()
	case o.Pool == "":
		c.Status, c.Reason = metav1.ConditionTrue, ReasonOutsidePool
		c.Message = fmt.Sprintf("%s kept, though no IPAddressPool hands it out any more", joinIPs(ips))
		return c
	case o.NotAdmitted:
		c.Status, c.Reason = metav1.ConditionTrue, allocator.ReasonNotAllowedByPool
		c.Message = fmt.Sprintf("%s from IPAddressPool %s kept, though the pool's serviceAllocation no longer admits this Service (a working address is never taken away; it would not be given now)", joinIPs(ips), o.Pool)
		return c
	default:
		c.Status, c.Reason = metav1.ConditionTrue, ReasonAllocated
		c.Message = fmt.Sprintf("%s from IPAddressPool %s", joinIPs(ips), o.Pool)
		return c
	}
	if len(ips) > 0 {
		c.Message += fmt.Sprintf(" (keeps %s)", joinIPs(ips))
	}
	return c
}

func joinIPs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ", ")
}

func familyRank(svc *corev1.Service, ip netip.Addr) int {
	want := corev1.IPv4Protocol
	if ip.Is6() {
		want = corev1.IPv6Protocol
	}
	if i := slices.Index(svc.Spec.IPFamilies, want); i >= 0 {
		return i
	}
	return len(svc.Spec.IPFamilies)
}

// ClearedStatus returns the Service's status without what vipcast wrote: for a Service
// that stopped being one vipcast handles.
func ClearedStatus(svc *corev1.Service) corev1.ServiceStatus {
	st := *svc.Status.DeepCopy()
	st.LoadBalancer.Ingress = nil
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionIPAllocated)
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionAnnounced)
	return st
}
