package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// TestAHundredServicesShareOneAddress: 100 Services on one address (a sharing key, a port
// each) are all announced by one node, reported, and reached; no per-address limit of the
// report stops it, nor the reports that follow.
func TestAHundredServicesShareOneAddress(t *testing.T) {
	const n = 100
	ns := namespace(t)
	deploy(t, ns, "web", "node-1", "node-2", "node-3")
	single := corev1.IPFamilyPolicySingleStack
	share := func(i int, ip string) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: l2Pool, v1alpha1.AnnotationAllowSharedIP: "hundred"}
			if ip != "" {
				s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = ip
			}
			s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &single, []corev1.IPFamily{corev1.IPv4Protocol}
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: int32(10000 + i), TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}
		}
	}
	first := service(t, ns, "web-0", "web", corev1.ServiceTypeLoadBalancer, share(0, ""))
	var addr netip.Addr
	eventually(t, 30*time.Second, "EXTERNAL-IP of web-0", func(ctx context.Context) error {
		if err := cluster.Kube.Get(ctx, client.ObjectKeyFromObject(first), first); err != nil {
			return err
		}
		if in := first.Status.LoadBalancer.Ingress; len(in) == 1 {
			return addrOf(in[0].IP, &addr)
		}
		return fmt.Errorf("ingress %v", first.Status.LoadBalancer.Ingress)
	})
	for i := 1; i < n; i++ {
		service(t, ns, fmt.Sprintf("web-%d", i), "web", corev1.ServiceTypeLoadBalancer, share(i, addr.String()))
	}
	eventually(t, 90*time.Second, fmt.Sprintf("%d Services on %s, each Announced", n, addr), func(ctx context.Context) error {
		var list corev1.ServiceList
		if err := cluster.Kube.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		ok := 0
		var last string
		for _, s := range list.Items {
			c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAnnounced)
			if len(s.Status.LoadBalancer.Ingress) == 1 && s.Status.LoadBalancer.Ingress[0].IP == addr.String() && c != nil && c.Status == metav1.ConditionTrue {
				ok++
			} else {
				last = fmt.Sprintf("%s: %v, %+v", s.Name, s.Status.LoadBalancer.Ingress, c)
			}
		}
		if ok != n {
			return fmt.Errorf("%d of %d (%s)", ok, n, last)
		}
		return nil
	})
	who := owner(t, addr)
	for _, port := range []int{10000, 10000 + n/2, 10000 + n - 1} {
		eventually(t, 30*time.Second, fmt.Sprintf("the client reaches %s:%d", addr, port), func(ctx context.Context) error {
			_, err := getFrom(ctx, cluster.ClientNetns, addr, port, time.Second)
			return err
		})
	}
	// The report is not frozen by them: a Service created afterwards on another address is
	// reported and announced too.
	after := service(t, ns, "after", "web", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: l2Pool}
		s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &single, []corev1.IPFamily{corev1.IPv4Protocol}
	})
	waitAnnounced(t, after, "L2 from")
	var st v1alpha1.SpeakerStatus
	if err := cluster.Kube.Get(t.Context(), client.ObjectKey{Name: who.Name}, &st); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(st.Status.Conditions, "Ready"); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("%s's speaker Ready: %+v", who.Name, c)
	}
	var svc corev1.Service
	if err := cluster.Kube.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("web-%d", n-1)}, &svc); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionAnnounced); c == nil || !strings.Contains(c.Message, who.Name) {
		t.Errorf("the last Service's Announced condition does not name %s: %+v", who.Name, c)
	}
}

func addrOf(s string, out *netip.Addr) (err error) {
	*out, err = netip.ParseAddr(s)
	return err
}
