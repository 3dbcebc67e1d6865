package integration

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/controller/internal/app"
)

// A tenant cannot take what is not its own: not by naming a reserved pool, not by asking
// for a reserved address, not by copying another namespace's sharing key. Sharing across
// namespaces works when both consent.
func TestTenantsCannotTakeWhatIsNotTheirs(t *testing.T) {
	startController(t, app.Options{})
	team := newNamespace(t)
	tenant := newNamespace(t)
	createPool(t, "tenancy-reserved", []string{"203.0.113.16/29"}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.AutoAssign = boolPtr(false)
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: []string{team}}
	})
	createPool(t, "tenancy-shared", []string{"203.0.113.24/29"}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: []string{team, tenant}}
	})
	annotate := func(kv ...string) func(*corev1.Service) {
		return func(s *corev1.Service) {
			for i := 0; i+1 < len(kv); i += 2 {
				s.Annotations[kv[i]] = kv[i+1]
			}
		}
	}
	port := func(p int32) func(*corev1.Service) { return func(s *corev1.Service) { s.Spec.Ports[0].Port = p } }

	// The team names its reserved pool and gets an address.
	createService(t, team, "owned", annotate(v1alpha1.AnnotationAddressPool, "tenancy-reserved"))
	waitIPs(t, team, "owned", "203.0.113.16")

	t.Run("naming a reserved pool", func(t *testing.T) {
		createService(t, tenant, "named", annotate(v1alpha1.AnnotationAddressPool, "tenancy-reserved"))
		c := waitCondition(t, tenant, "named", metav1.ConditionFalse, allocator.ReasonNotAllowedByPool)
		if !strings.Contains(c.Message, "IPAddressPool tenancy-reserved does not admit this Service") || !strings.Contains(c.Message, "namespaces "+team) {
			t.Errorf("message %q does not name the pool and whom it admits", c.Message)
		}
		if ips := ingressIPs(getService(t, tenant, "named")); len(ips) != 0 {
			t.Errorf("got %v", ips)
		}
		waitEvent(t, tenant, "named", "AllocationFailed", allocator.ReasonNotAllowedByPool)
	})
	t.Run("asking for a reserved address", func(t *testing.T) {
		createService(t, tenant, "requested", annotate(v1alpha1.AnnotationLoadBalancerIPs, "203.0.113.17"))
		c := waitCondition(t, tenant, "requested", metav1.ConditionFalse, allocator.ReasonNotAllowedByPool)
		if !strings.Contains(c.Message, "tenancy-reserved") {
			t.Errorf("message %q does not name the pool", c.Message)
		}
		createService(t, tenant, "legacy-field", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "203.0.113.18" })
		waitCondition(t, tenant, "legacy-field", metav1.ConditionFalse, allocator.ReasonNotAllowedByPool)
	})
	t.Run("copying another namespace's sharing key", func(t *testing.T) {
		createService(t, team, "victim", annotate(v1alpha1.AnnotationAllowSharedIP, "k"), port(80))
		victimIP := waitAllocated(t, team, "victim", 1)[0]
		createService(t, tenant, "copycat", annotate(v1alpha1.AnnotationAllowSharedIP, "k", v1alpha1.AnnotationLoadBalancerIPs, victimIP), port(443))
		c := waitCondition(t, tenant, "copycat", metav1.ConditionFalse, allocator.ReasonSharingNotAllowed)
		if !strings.Contains(c.Message, team+"/victim") || !strings.Contains(c.Message, v1alpha1.AnnotationAllowSharedIPNamespaces) {
			t.Errorf("message %q does not name the holder and the consent annotation", c.Message)
		}
		// Without asking for the address, the key binds only the tenant's namespace: a
		// fresh address, never the victim's.
		createService(t, tenant, "copycat-auto", annotate(v1alpha1.AnnotationAllowSharedIP, "k"), port(8443))
		if got := waitAllocated(t, tenant, "copycat-auto", 1)[0]; got == victimIP {
			t.Errorf("the tenant joined the victim's address %s", victimIP)
		}
		// One-sided consent is not enough.
		createService(t, tenant, "one-sided", annotate(v1alpha1.AnnotationAllowSharedIP, "k",
			v1alpha1.AnnotationAllowSharedIPNamespaces, team, v1alpha1.AnnotationLoadBalancerIPs, victimIP), port(9443))
		waitCondition(t, tenant, "one-sided", metav1.ConditionFalse, allocator.ReasonSharingNotAllowed)
		waitIPs(t, team, "victim", victimIP)
	})
	t.Run("a pool that stops admitting a holder: kept, and said", func(t *testing.T) {
		createService(t, tenant, "settled")
		ip := waitAllocated(t, tenant, "settled", 1)[0]
		setAdmitted := func(namespaces ...string) {
			t.Helper()
			update(t, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "tenancy-shared"}}, func(p *v1alpha1.IPAddressPool) {
				p.Spec.ServiceAllocation.Namespaces = namespaces
			})
		}
		setAdmitted(team)
		c := waitCondition(t, tenant, "settled", metav1.ConditionTrue, allocator.ReasonNotAllowedByPool)
		if !strings.Contains(c.Message, ip+" from IPAddressPool tenancy-shared kept") {
			t.Errorf("message %q", c.Message)
		}
		waitIPs(t, tenant, "settled", ip)
		setAdmitted(team, tenant)
		waitCondition(t, tenant, "settled", metav1.ConditionTrue, "Allocated")
		waitIPs(t, tenant, "settled", ip)
	})
	t.Run("sharing across namespaces with consent of both", func(t *testing.T) {
		createService(t, team, "web", annotate(v1alpha1.AnnotationAllowSharedIP, "together", v1alpha1.AnnotationAllowSharedIPNamespaces, tenant), port(80))
		ip := waitAllocated(t, team, "web", 1)[0]
		createService(t, tenant, "api", annotate(v1alpha1.AnnotationAllowSharedIP, "together", v1alpha1.AnnotationAllowSharedIPNamespaces, team), port(443))
		waitIPs(t, tenant, "api", ip)
	})
}
