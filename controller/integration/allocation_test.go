package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/controller/internal/app"
)

func TestAllocatesFromPool(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "alloc-basic", []string{"192.0.2.0/29"})
	createService(t, ns, "web")

	s := waitIPs(t, ns, "web", "192.0.2.0")
	if in := s.Status.LoadBalancer.Ingress[0]; in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", in.IPMode)
	}
	c := waitCondition(t, ns, "web", metav1.ConditionTrue, "Allocated")
	if !strings.Contains(c.Message, "192.0.2.0 from IPAddressPool alloc-basic") {
		t.Errorf("condition message %q does not name the address and pool", c.Message)
	}
	waitEvent(t, ns, "web", "IPAllocated", "alloc-basic")
	st := waitPool(t, "alloc-basic", "counts 1 used, 7 free", func(st v1alpha1.IPAddressPoolStatus) bool {
		return st.AssignedIPv4 == 1 && st.AvailableIPv4 == 7
	})
	if c := poolCondition(st, v1alpha1.PoolReady); c.Status != metav1.ConditionTrue {
		t.Errorf("pool Ready = %+v", c)
	}
	if c := poolCondition(st, v1alpha1.PoolInUse); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, ns+"/web") {
		t.Errorf("pool InUse = %+v, want it to name %s/web", c, ns)
	}
}

func TestOnlyHandlesItsServices(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "only-lb", []string{"192.0.2.8/29"})
	other := "example.com/other"
	createService(t, ns, "clusterip", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP })
	createService(t, ns, "nodeport", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort })
	createService(t, ns, "external", func(s *corev1.Service) {
		s.Spec.Type, s.Spec.ExternalName, s.Spec.Selector, s.Spec.Ports = corev1.ServiceTypeExternalName, "db.example.com", nil, nil
	})
	createService(t, ns, "other-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other })
	createService(t, ns, "ours")
	waitIPs(t, ns, "ours", "192.0.2.8")
	for _, name := range []string{"clusterip", "nodeport", "external", "other-class"} {
		s := getService(t, ns, name)
		if len(s.Status.LoadBalancer.Ingress) > 0 || len(s.Status.Conditions) > 0 {
			t.Errorf("%s was touched: %+v", name, s.Status)
		}
	}
}

func TestLoadBalancerClassFlag(t *testing.T) {
	startController(t, app.Options{LBClass: v1alpha1.LoadBalancerClass})
	ns := newNamespace(t)
	createPool(t, "class-pool", []string{"192.0.2.16/29"})
	class := v1alpha1.LoadBalancerClass
	createService(t, ns, "unclassed")
	createService(t, ns, "classed", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &class })
	waitIPs(t, ns, "classed", "192.0.2.16")
	if s := getService(t, ns, "unclassed"); len(s.Status.LoadBalancer.Ingress) > 0 {
		t.Errorf("a Service without class was handled under --lb-class: %v", ingressIPs(s))
	}
}

func TestTypeChangeAndDeleteFreeTheAddress(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "free-pool", []string{"192.0.2.24/32"})
	createService(t, ns, "first")
	waitIPs(t, ns, "first", "192.0.2.24")
	createService(t, ns, "second")
	waitCondition(t, ns, "second", metav1.ConditionFalse, allocator.ReasonPoolExhausted)

	// first stops being a LoadBalancer: its status is cleared and second gets the address.
	update(t, getService(t, ns, "first"), func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeClusterIP
		s.Spec.ExternalTrafficPolicy = ""
	})
	waitIPs(t, ns, "second", "192.0.2.24")
	s := waitIPs(t, ns, "first")
	if len(s.Status.Conditions) != 0 {
		t.Errorf("first keeps conditions after leaving LoadBalancer: %+v", s.Status.Conditions)
	}

	// Deleting second frees it for a third.
	createService(t, ns, "third")
	waitCondition(t, ns, "third", metav1.ConditionFalse, allocator.ReasonPoolExhausted)
	must(t, k8s.Delete(context.Background(), getService(t, ns, "second")))
	waitIPs(t, ns, "third", "192.0.2.24")
}

func TestRequestedAddresses(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "req-auto", []string{"192.0.2.32/29"})
	createPool(t, "req-manual", []string{"192.0.2.40/29", "2001:db8:40::/125"}, func(p *v1alpha1.IPAddressPool) { p.Spec.AutoAssign = boolPtr(false) })

	createService(t, ns, "annotated", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "192.0.2.45" })
	waitIPs(t, ns, "annotated", "192.0.2.45")
	createService(t, ns, "spec-ip", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "192.0.2.36" })
	waitIPs(t, ns, "spec-ip", "192.0.2.36")
	createService(t, ns, "by-pool", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationAddressPool] = "req-manual" })
	waitIPs(t, ns, "by-pool", "192.0.2.40")
	createService(t, ns, "auto")
	waitIPs(t, ns, "auto", "192.0.2.32")

	createService(t, ns, "outside", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "203.0.113.7" })
	c := waitCondition(t, ns, "outside", metav1.ConditionFalse, allocator.ReasonRequestedIPUnavailable)
	if !strings.Contains(c.Message, "not in any IPAddressPool") {
		t.Errorf("message %q", c.Message)
	}
	waitEvent(t, ns, "outside", "AllocationFailed", "RequestedIPUnavailable")

	createService(t, ns, "taken", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "192.0.2.45" })
	c = waitCondition(t, ns, "taken", metav1.ConditionFalse, allocator.ReasonRequestedIPUnavailable)
	if !strings.Contains(c.Message, ns+"/annotated") {
		t.Errorf("message %q does not name the holder", c.Message)
	}
	createService(t, ns, "garbage", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "192.0.2.300" })
	waitCondition(t, ns, "garbage", metav1.ConditionFalse, allocator.ReasonInvalidAnnotation)
	createService(t, ns, "missing-pool", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationAddressPool] = "no-such-pool" })
	waitCondition(t, ns, "missing-pool", metav1.ConditionFalse, allocator.ReasonNoMatchingPool)

	// Changing the requested address to a taken one keeps the working address.
	update(t, getService(t, ns, "spec-ip"), func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationLoadBalancerIPs: "192.0.2.45"}
	})
	waitCondition(t, ns, "spec-ip", metav1.ConditionFalse, allocator.ReasonRequestedIPUnavailable)
	if got := ingressIPs(getService(t, ns, "spec-ip")); len(got) != 1 || got[0] != "192.0.2.36" {
		t.Errorf("spec-ip lost its working address: %v", got)
	}
	// When the holder lets go, the waiting request is served without a restart ("taken",
	// which waits for the same address, goes first so that the winner is known).
	must(t, k8s.Delete(context.Background(), getService(t, ns, "taken")))
	must(t, k8s.Delete(context.Background(), getService(t, ns, "annotated")))
	waitIPs(t, ns, "spec-ip", "192.0.2.45")
}

func TestDualStack(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "ds-pool", []string{"192.0.2.48/30", "2001:db8:48::/126"})
	createPool(t, "ds-v4only", []string{"192.0.2.52/30"}, func(p *v1alpha1.IPAddressPool) { p.Spec.AutoAssign = boolPtr(false) })
	policy := func(p corev1.IPFamilyPolicy, fams ...corev1.IPFamily) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &p, fams }
	}
	createService(t, ns, "require", policy(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol))
	waitIPs(t, ns, "require", "2001:db8:48::", "192.0.2.48")
	createService(t, ns, "prefer", policy(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	waitIPs(t, ns, "prefer", "192.0.2.49", "2001:db8:48::1")
	createService(t, ns, "single6", policy(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol))
	waitIPs(t, ns, "single6", "2001:db8:48::2")
	createService(t, ns, "prefer-v4pool", policy(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol),
		func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationAddressPool] = "ds-v4only" })
	waitIPs(t, ns, "prefer-v4pool", "192.0.2.52")
	createService(t, ns, "require-v4pool", policy(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol),
		func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationAddressPool] = "ds-v4only" })
	waitCondition(t, ns, "require-v4pool", metav1.ConditionFalse, allocator.ReasonNoMatchingPool)
}

func TestSharing(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "share-pool", []string{"192.0.2.56/31"})
	share := func(key string, port int32, local bool) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Annotations[v1alpha1.AnnotationAllowSharedIP] = key
			s.Spec.Ports[0].Port = port
			if local {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.Selector = map[string]string{"app": "shared"}
			}
		}
	}
	createService(t, ns, "dns-tcp", share("dns", 53, false))
	waitIPs(t, ns, "dns-tcp", "192.0.2.56")
	createService(t, ns, "dns-udp", share("dns", 54, false))
	waitIPs(t, ns, "dns-udp", "192.0.2.56")
	// Same key, clashing port: another address.
	createService(t, ns, "dns-clash", share("dns", 53, false))
	waitIPs(t, ns, "dns-clash", "192.0.2.57")
	// Pool full; same key but port clashes with both: a clear refusal.
	createService(t, ns, "dns-clash2", share("dns", 53, false))
	c := waitCondition(t, ns, "dns-clash2", metav1.ConditionFalse, allocator.ReasonSharingConflict)
	if !strings.Contains(c.Message, `"dns"`) {
		t.Errorf("message %q does not name the key", c.Message)
	}
	// Requesting a shared address with a different key is refused and names the holders.
	createService(t, ns, "intruder", func(s *corev1.Service) {
		s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "192.0.2.56"
		s.Spec.Ports[0].Port = 8443
	})
	c = waitCondition(t, ns, "intruder", metav1.ConditionFalse, allocator.ReasonRequestedIPUnavailable)
	if !strings.Contains(c.Message, ns+"/dns-tcp") {
		t.Errorf("message %q does not name the holders", c.Message)
	}
	// Deleting one sharer keeps the address for the other.
	must(t, k8s.Delete(context.Background(), getService(t, ns, "dns-udp")))
	createService(t, ns, "probe")
	waitCondition(t, ns, "probe", metav1.ConditionFalse, allocator.ReasonPoolExhausted)
	waitIPs(t, ns, "dns-tcp", "192.0.2.56")
}

func TestSharingLocalNeedsSameSelector(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "share-local", []string{"192.0.2.58/32"})
	local := func(sel string, port int32) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Annotations[v1alpha1.AnnotationAllowSharedIP] = "k"
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.Selector = map[string]string{"app": sel}
			s.Spec.Ports[0].Port = port
		}
	}
	createService(t, ns, "a", local("x", 80))
	waitIPs(t, ns, "a", "192.0.2.58")
	createService(t, ns, "b", local("x", 81))
	waitIPs(t, ns, "b", "192.0.2.58")
	createService(t, ns, "c", local("y", 82))
	waitCondition(t, ns, "c", metav1.ConditionFalse, allocator.ReasonSharingConflict)
}

func TestServiceAllocation(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	other := newNamespace(t)
	nsObj := &corev1.Namespace{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Name: other}, nsObj))
	nsObj.Labels = map[string]string{"tier": "gold"}
	must(t, k8s.Update(context.Background(), nsObj))

	createPool(t, "sa-general", []string{"192.0.2.64/30"})
	createPool(t, "sa-team", []string{"192.0.2.68/30"}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: 20, Namespaces: []string{ns}}
	})
	createPool(t, "sa-gold", []string{"192.0.2.72/30"}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: 10,
			NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "gold"}}}}
	})
	createPool(t, "sa-labelled", []string{"192.0.2.76/30"}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: 5,
			ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}}}
	})
	createService(t, ns, "team")
	waitIPs(t, ns, "team", "192.0.2.68")
	createService(t, other, "gold")
	waitIPs(t, other, "gold", "192.0.2.72")
	createService(t, ns, "edge", func(s *corev1.Service) { s.Labels = map[string]string{"edge": "true"} })
	waitIPs(t, ns, "edge", "192.0.2.76")
}

func TestAvoidBuggyIPs(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "buggy", []string{"198.18.1.255-198.18.2.1"}, func(p *v1alpha1.IPAddressPool) { p.Spec.AvoidBuggyIPs = true })
	createService(t, ns, "one")
	waitIPs(t, ns, "one", "198.18.2.1")
	waitPool(t, "buggy", "1 used, 0 free", func(st v1alpha1.IPAddressPoolStatus) bool {
		return st.AssignedIPv4 == 1 && st.AvailableIPv4 == 0
	})
}

func TestNamespaceLabelChangeServesAWaitingService(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "silver", []string{"192.0.2.120/30"}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{
			NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "silver"}}}}
	})
	createService(t, ns, "waiting")
	waitCondition(t, ns, "waiting", metav1.ConditionFalse, allocator.ReasonNoMatchingPool)
	nsObj := &corev1.Namespace{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj))
	nsObj.Labels = map[string]string{"tier": "silver"}
	must(t, k8s.Update(context.Background(), nsObj))
	waitIPs(t, ns, "waiting", "192.0.2.120")
}

// A Service annotated for MetalLB is served as it is: both of MetalLB's prefixes, with
// vipcast.io first when both are present.
func TestMetalLBAnnotations(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	manual := func(p *v1alpha1.IPAddressPool) { p.Spec.AutoAssign = boolPtr(false) }
	createPool(t, "mlb-pool", []string{"192.0.2.64/29"}, manual)
	createPool(t, "mlb-other", []string{"192.0.2.72/30"}, manual)
	annotate := func(kv ...string) func(*corev1.Service) {
		return func(s *corev1.Service) {
			for i := 0; i < len(kv); i += 2 {
				s.Annotations[kv[i]] = kv[i+1]
			}
		}
	}
	createService(t, ns, "legacy-pool", annotate(v1alpha1.MetalLBLegacyAddressPool, "mlb-pool"))
	waitIPs(t, ns, "legacy-pool", "192.0.2.64")
	createService(t, ns, "ip", annotate(v1alpha1.MetalLBLoadBalancerIPs, "192.0.2.70"))
	waitIPs(t, ns, "ip", "192.0.2.70")
	// Two Services share one address by MetalLB's key, one with each prefix.
	createService(t, ns, "share-a", annotate(v1alpha1.MetalLBAddressPool, "mlb-pool", v1alpha1.MetalLBAllowSharedIP, "k"))
	waitIPs(t, ns, "share-a", "192.0.2.65")
	createService(t, ns, "share-b", annotate(v1alpha1.MetalLBLegacyLoadBalancerIPs, "192.0.2.65", v1alpha1.MetalLBLegacyAllowSharedIP, "k"),
		func(s *corev1.Service) { s.Spec.Ports[0].Port = 8443 })
	waitIPs(t, ns, "share-b", "192.0.2.65")
	// vipcast.io first, then metallb.io, then metallb.universe.tf.
	createService(t, ns, "both", annotate(v1alpha1.AnnotationAddressPool, "mlb-other", v1alpha1.MetalLBAddressPool, "mlb-pool", v1alpha1.MetalLBLegacyAddressPool, "mlb-pool"))
	waitIPs(t, ns, "both", "192.0.2.72")
	createService(t, ns, "io-first", annotate(v1alpha1.MetalLBLoadBalancerIPs, "192.0.2.73", v1alpha1.MetalLBLegacyLoadBalancerIPs, "192.0.2.66"))
	waitIPs(t, ns, "io-first", "192.0.2.73")
	createService(t, ns, "garbage", annotate(v1alpha1.MetalLBLoadBalancerIPs, "192.0.2.300"))
	if c := waitCondition(t, ns, "garbage", metav1.ConditionFalse, allocator.ReasonInvalidAnnotation); !strings.Contains(c.Message, v1alpha1.MetalLBLoadBalancerIPs) {
		t.Errorf("message %q does not name the annotation", c.Message)
	}
}
