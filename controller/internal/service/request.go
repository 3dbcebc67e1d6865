package service

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/controller/internal/ipam"
	"github.com/vipcast/vipcast/internal/iprange"
)

// Handles reports whether vipcast allocates for the Service: type LoadBalancer, with no
// loadBalancerClass when class is "", else with exactly that class.
func Handles(svc *corev1.Service, class string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return class == ""
	}
	return *svc.Spec.LoadBalancerClass == class
}

// ParseRequestedIPs reads the load-balancer-ips annotation ("192.0.2.1,2001:db8::1"), or
// spec.loadBalancerIP when the annotation is absent: at most one address per family.
func ParseRequestedIPs(annotation string, hasAnnotation bool, specIP string) ([]netip.Addr, error) {
	src := annotation
	if !hasAnnotation {
		src = specIP
	}
	var ips []netip.Addr
	for part := range strings.SplitSeq(src, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		ip, err := netip.ParseAddr(part)
		if err != nil || ip.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address", part)
		}
		ip = ip.Unmap()
		if slices.ContainsFunc(ips, func(o netip.Addr) bool { return o.Is4() == ip.Is4() }) {
			return nil, fmt.Errorf("at most one address per family: %q", src)
		}
		ips = append(ips, ip)
	}
	if hasAnnotation && len(ips) == 0 {
		return nil, errors.New("empty")
	}
	return ips, nil
}

// annotation reads a vipcast.io annotation of svc, or MetalLB's form of it.
func annotation(svc *corev1.Service, name string) string {
	v, _, _ := v1alpha1.Annotation(svc.Annotations, name)
	return v
}

// ParseNamespaces reads the allow-shared-ip-namespaces annotation: namespace names
// separated by commas, or "*" for every namespace.
func ParseNamespaces(annotation string) []string {
	var out []string
	for part := range strings.SplitSeq(annotation, ",") {
		if part = strings.TrimSpace(part); part != "" && !slices.Contains(out, part) {
			out = append(out, part)
		}
	}
	return out
}

// BuildRequest turns a Service into an allocation request. A malformed annotation is an
// error: the Service is told, and keeps what it holds.
func BuildRequest(svc *corev1.Service, nsLabels map[string]string) (*allocator.Request, error) {
	req := &allocator.Request{
		Key:             ipam.ServiceKey(types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}),
		Namespace:       svc.Namespace,
		Labels:          svc.Labels,
		NamespaceLabels: nsLabels,
		Pool:            strings.TrimSpace(annotation(svc, v1alpha1.AnnotationAddressPool)),
		SharingKey:      strings.TrimSpace(annotation(svc, v1alpha1.AnnotationAllowSharedIP)),
		ShareNamespaces: ParseNamespaces(svc.Annotations[v1alpha1.AnnotationAllowSharedIPNamespaces]),
		Local:           svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
		Selector:        labels.Set(svc.Spec.Selector).String(),
		Current:         ipam.StatusIPs(svc),
	}
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			req.Families = append(req.Families, iprange.IPv4)
		case corev1.IPv6Protocol:
			req.Families = append(req.Families, iprange.IPv6)
		default:
			// An unknown family gets no address.
		}
	}
	if len(req.Families) == 0 {
		req.Families = []iprange.Family{iprange.IPv4}
	}
	if p := svc.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicyPreferDualStack:
			req.Policy = allocator.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			req.Policy = allocator.RequireDualStack
		default:
			req.Policy = allocator.SingleStack
		}
	}
	for _, p := range svc.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		req.Ports = append(req.Ports, allocator.Port{Protocol: proto, Port: p.Port})
	}
	ann, key, has := v1alpha1.Annotation(svc.Annotations, v1alpha1.AnnotationLoadBalancerIPs)
	ips, err := ParseRequestedIPs(ann, has, svc.Spec.LoadBalancerIP) //nolint:staticcheck // spec.loadBalancerIP is deprecated but still honoured.
	if err != nil {
		if has {
			err = fmt.Errorf("%s: %w", key, err)
		}
		return req, err
	}
	req.RequestedIPs = ips
	return req, nil
}
