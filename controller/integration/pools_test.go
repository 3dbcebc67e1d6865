package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/controller/internal/app"
)

func TestInvalidPoolsAreRejected(t *testing.T) {
	cases := []struct {
		name, addr, want string
	}{
		{"bad cidr", "192.0.2.0/33", "must be a CIDR"},
		{"not an address", "banana", "must be a CIDR"},
		{"reversed range", "192.0.2.20-192.0.2.10", "the range is reversed"},
		{"mixed families", "192.0.2.1-2001:db8::1", "must not mix IPv4 and IPv6"},
		{"three parts", "192.0.2.1-192.0.2.2-192.0.2.3", "two IP addresses joined by '-'"},
		{"empty", "", "spec.addresses[0]"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "invalid-" + string(rune('a'+i))}}
			p.Spec.Addresses = []v1alpha1.AddressRange{v1alpha1.AddressRange(tc.addr)}
			err := k8s.Create(context.Background(), p)
			if err == nil {
				_ = k8s.Delete(context.Background(), p)
				t.Fatalf("pool with %q was accepted", tc.addr)
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want an Invalid error containing %q", err, tc.want)
			}
		})
	}
	t.Run("valid forms", func(t *testing.T) {
		p := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "valid-forms"}}
		p.Spec.Addresses = []v1alpha1.AddressRange{"192.0.2.0/28", "2001:db8::/124", "192.0.2.100-192.0.2.110", "2001:db8::10 - 2001:db8::20", "192.0.2.200-192.0.2.200"}
		must(t, k8s.Create(context.Background(), p))
		must(t, k8s.Delete(context.Background(), p))
	})
}

func TestOverlappingPoolsConflict(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "overlap-a", []string{"192.0.2.80/30"})
	createPool(t, "overlap-b", []string{"192.0.2.82-192.0.2.84"})
	st := waitPool(t, "overlap-a", "Conflicting", func(st v1alpha1.IPAddressPoolStatus) bool {
		return poolCondition(st, v1alpha1.PoolConflicting).Status == metav1.ConditionTrue
	})
	if c := poolCondition(st, v1alpha1.PoolConflicting); !strings.Contains(c.Message, "overlap-b") {
		t.Errorf("overlap-a Conflicting message %q does not name overlap-b", c.Message)
	}
	st = waitPool(t, "overlap-b", "Conflicting naming overlap-a", func(st v1alpha1.IPAddressPoolStatus) bool {
		return strings.Contains(poolCondition(st, v1alpha1.PoolConflicting).Message, "overlap-a")
	})
	if st.AvailableIPv4 != 1 {
		t.Errorf("overlap-b has %d free addresses, want 1 (192.0.2.84)", st.AvailableIPv4)
	}
	// Addresses: a keeps .80-.81, b keeps .84; .82-.83 are contested. Four Services race for
	// the three (reconciled in parallel, in any order): three get one each, one waits.
	names := []string{"s1", "s2", "s3", "s4"}
	for _, name := range names {
		createService(t, ns, name)
	}
	got := map[string]bool{}
	var waiting []string
	eventually(t, "three Services served and one exhausted", func() (bool, string) {
		got, waiting = map[string]bool{}, nil
		for _, name := range names {
			s := getService(t, ns, name)
			if ips := ingressIPs(s); len(ips) == 1 {
				got[ips[0]] = true
			} else if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionIPAllocated); c != nil && c.Reason == allocator.ReasonPoolExhausted {
				waiting = append(waiting, name)
			}
		}
		return len(got) == 3 && len(waiting) == 1, fmt.Sprintf("addresses %v, exhausted %v", got, waiting)
	})
	for _, ip := range []string{"192.0.2.80", "192.0.2.81", "192.0.2.84"} {
		if !got[ip] {
			t.Errorf("free address %s was not handed out (got %v)", ip, got)
		}
	}
	c := waitCondition(t, newNs(t, ns), "contested", metav1.ConditionFalse, allocator.ReasonRequestedIPUnavailable)
	if !strings.Contains(c.Message, "overlap-a, overlap-b") {
		t.Errorf("message %q should name both pools", c.Message)
	}
}

// newNs creates, in ns, a Service requesting a contested address and returns ns.
func newNs(t *testing.T, ns string) string {
	createService(t, ns, "contested", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "192.0.2.82" })
	return ns
}

func TestPoolDeletionWaitsForHolders(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "doomed", []string{"192.0.2.88/30"})
	createService(t, ns, "holder")
	waitIPs(t, ns, "holder", "192.0.2.88")
	waitPool(t, "doomed", "finalizer set", func(v1alpha1.IPAddressPoolStatus) bool {
		p := &v1alpha1.IPAddressPool{}
		must(t, k8s.Get(context.Background(), client.ObjectKey{Name: "doomed"}, p))
		return len(p.Finalizers) == 1
	})
	must(t, k8s.Delete(context.Background(), &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}}))
	st := waitPool(t, "doomed", "InUse naming the holder while terminating", func(st v1alpha1.IPAddressPoolStatus) bool {
		c := poolCondition(st, v1alpha1.PoolInUse)
		return strings.HasPrefix(c.Message, "deletion waits") && strings.Contains(c.Message, ns+"/holder")
	})
	if c := poolCondition(st, v1alpha1.PoolReady); c.Status != metav1.ConditionFalse || c.Reason != "Terminating" {
		t.Errorf("Ready = %+v, want False/Terminating", c)
	}
	// The holder keeps its address; a new Service gets nothing from a terminating pool.
	createService(t, ns, "latecomer")
	waitCondition(t, ns, "latecomer", metav1.ConditionFalse, allocator.ReasonNoMatchingPool)
	waitIPs(t, ns, "holder", "192.0.2.88")
	must(t, k8s.Delete(context.Background(), getService(t, ns, "holder")))
	deletePoolAndWait(t, "doomed")
}

func TestPendingServiceGetsAddressWhenPoolGrows(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "growing", []string{"192.0.2.96/32"})
	createService(t, ns, "first")
	waitIPs(t, ns, "first", "192.0.2.96")
	createService(t, ns, "second")
	waitCondition(t, ns, "second", metav1.ConditionFalse, allocator.ReasonPoolExhausted)
	waitEvent(t, ns, "second", "AllocationFailed", "PoolExhausted")
	update(t, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "growing"}}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.Addresses = append(p.Spec.Addresses, "192.0.2.97/32")
	})
	waitIPs(t, ns, "second", "192.0.2.97")
	waitCondition(t, ns, "second", metav1.ConditionTrue, "Allocated")
}

func TestShrunkPoolKeepsHeldAddress(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "shrinking", []string{"192.0.2.100/31"})
	createService(t, ns, "a")
	waitIPs(t, ns, "a", "192.0.2.100")
	createService(t, ns, "b")
	waitIPs(t, ns, "b", "192.0.2.101")
	update(t, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "shrinking"}}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.Addresses = []v1alpha1.AddressRange{"192.0.2.100/32"}
	})
	// b keeps its address and is told it is outside every pool now.
	c := waitCondition(t, ns, "b", metav1.ConditionTrue, "OutsidePool")
	if !strings.Contains(c.Message, "192.0.2.101") {
		t.Errorf("message %q", c.Message)
	}
	waitIPs(t, ns, "b", "192.0.2.101")
}
