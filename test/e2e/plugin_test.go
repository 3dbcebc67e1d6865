package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// plugin runs bin/kubectl-vipcast against the lab and returns its output and exit code.
func plugin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, "kubectl-vipcast"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("kubectl vipcast %v: %v", args, err)
	}
	return string(out), 0
}

// explainUntil runs explain until its output holds want (the speakers' reports and the
// conditions take a moment), and returns the last output and exit code.
func explainUntil(t *testing.T, ns, name string, want ...string) (string, int) {
	t.Helper()
	var out string
	var code int
	eventually(t, 30*time.Second, fmt.Sprintf("explain svc %s/%s saying %q", ns, name, want), func(context.Context) error {
		out, code = plugin(t, "explain", "svc", name, "-n", ns)
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("exit %d:\n%s", code, out)
			}
		}
		return nil
	})
	t.Logf("kubectl vipcast explain svc %s -n %s (exit %d):\n%s", name, ns, code, out)
	return out, code
}

// TestPluginExplain: kubectl vipcast explain on the lab, for a Service allocated and
// announced, one pending on an exhausted pool, and a Local one without an endpoint.
func TestPluginExplain(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-1", "node-2", "node-3")
	// Pools of its own: the shared ones are for the tests that follow.
	poolAndAdvert(t, "explain", "192.0.2.176/29", v1alpha1.L2AdvertisementSpec{})
	single := corev1.IPFamilyPolicySingleStack
	inExplain := func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "explain"}
		s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &single, []corev1.IPFamily{corev1.IPv4Protocol}
	}
	svc := service(t, ns, "web", "web", corev1.ServiceTypeLoadBalancer, inExplain)
	v4 := singleAddress(t, svc)
	who := owner(t, v4)
	if _, code := explainUntil(t, ns, svc.Name, "holds "+v4.String(), "announced over L2 (ARP/NDP) by "+who.Name, "reported by "+who.Name, "Announced: True"); code != 0 {
		t.Errorf("exit code %d for a Service allocated and announced, want 0", code)
	}

	no := false
	for _, o := range []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "tiny"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []v1alpha1.AddressRange{"192.0.2.232/32"}, AutoAssign: &no}},
	} {
		if err := cluster.Kube.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.Kube.Delete(context.Background(), o) })
	}
	tiny := func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "tiny"}
		s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &single, []corev1.IPFamily{corev1.IPv4Protocol}
	}
	service(t, ns, "first", "web", corev1.ServiceTypeLoadBalancer, tiny)
	eventually(t, 30*time.Second, "first holds tiny's address", func(ctx context.Context) error {
		var s corev1.Service
		if err := cluster.Kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "first"}, &s); err != nil {
			return err
		}
		if len(s.Status.LoadBalancer.Ingress) != 1 {
			return fmt.Errorf("ingress %v", s.Status.LoadBalancer.Ingress)
		}
		return nil
	})
	service(t, ns, "second", "web", corev1.ServiceTypeLoadBalancer, tiny)
	if _, code := explainUntil(t, ns, "second", "Allocation: False, PoolExhausted", "every pool that may serve it is full", "Addresses: none"); code != 3 {
		t.Errorf("exit code %d for a pending Service, want 3", code)
	}

	service(t, ns, "lonely", "nobody", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		inExplain(s)
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	if _, code := explainUntil(t, ns, "lonely", "Allocation: True, Allocated", "(NoLocalEndpoints)", "Announced: False"); code != 3 {
		t.Errorf("exit code %d for a Service nobody announces, want 3", code)
	}
	if out, code := plugin(t, "explain", "svc", "no-such-service", "-n", ns); code != 1 || !strings.Contains(out, "not found") {
		t.Errorf("a missing Service: exit %d, %q", code, out)
	}
	// status lists the two Services that need attention, and every speaker.
	eventually(t, 30*time.Second, "status naming second and lonely", func(context.Context) error {
		out, code := plugin(t, "status")
		for _, want := range []string{ns + "/second: not allocated: PoolExhausted", ns + "/lonely: not announced: NoLocalEndpoints", "node-1", "node-2", "node-3", "tiny"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("exit %d, no %q in:\n%s", code, want, out)
			}
		}
		if code != 3 {
			return fmt.Errorf("exit %d, want 3:\n%s", code, out)
		}
		t.Logf("kubectl vipcast status:\n%s", out)
		return nil
	})
}

// TestPluginWhatIfNodeDown: what kubectl vipcast whatif node-down says of a node is what
// happens when that node's power is cut: each address it owns moves to the node named.
func TestPluginWhatIfNodeDown(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-1", "node-2", "node-3")
	poolAndAdvert(t, "whatif", "192.0.2.184/29", v1alpha1.L2AdvertisementSpec{})
	single := corev1.IPFamilyPolicySingleStack
	var addrs []netip.Addr
	for i := range 4 {
		svc := service(t, ns, fmt.Sprintf("w%d", i), "web", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
			s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "whatif"}
			s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &single, []corev1.IPFamily{corev1.IPv4Protocol}
		})
		addrs = append(addrs, singleAddress(t, svc))
	}
	allReady(t)
	victim := owner(t, addrs[0])
	var mine []netip.Addr
	for _, a := range addrs {
		if owner(t, a).Name == victim.Name {
			mine = append(mine, a)
		}
	}
	out, code := plugin(t, "whatif", "node-down", victim.Name, "-o", "json")
	if code != 0 && code != 3 {
		t.Fatalf("whatif: exit %d\n%s", code, out)
	}
	text, _ := plugin(t, "whatif", "node-down", victim.Name)
	t.Logf("kubectl vipcast whatif node-down %s:\n%s", victim.Name, text)
	predicted := map[string]string{}
	for _, a := range mine {
		for line := range strings.Lines(text) {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == a.String() && f[1] == victim.Name {
				predicted[a.String()] = f[2]
			}
		}
		if predicted[a.String()] == "" {
			t.Fatalf("whatif does not move %s from %s:\n%s", a, victim.Name, text)
		}
	}
	if err := victim.PowerOff(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := victim.PowerOn(context.Background()); err != nil {
			t.Error(err)
		}
		allReady(t)
	}()
	for _, a := range mine {
		got := owner(t, a, otherNodes(victim)...).Name
		t.Logf("%s: whatif said %s, the power cut gave %s", a, predicted[a.String()], got)
		if got != predicted[a.String()] {
			t.Errorf("%s: whatif said %s, the power cut gave %s", a, predicted[a.String()], got)
		}
	}
}

// singleAddress waits for the Service's one address.
func singleAddress(t *testing.T, svc *corev1.Service) netip.Addr {
	t.Helper()
	var a netip.Addr
	eventually(t, 30*time.Second, "EXTERNAL-IP of "+svc.Name, func(ctx context.Context) error {
		if err := cluster.Kube.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		if in := svc.Status.LoadBalancer.Ingress; len(in) == 1 {
			return addrOf(in[0].IP, &a)
		}
		return fmt.Errorf("ingress %v", svc.Status.LoadBalancer.Ingress)
	})
	return a
}
