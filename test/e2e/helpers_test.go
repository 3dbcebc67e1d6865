package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

// The pool the tests' Services get their addresses from; the tests route them by hand from
// the router to a node until a speaker announces them.
var poolAddresses = []v1alpha1.AddressRange{"203.0.113.0/24", "2001:db8:203::/120"}

// l2Pool is on the fabric and announced over ARP/NDP by the speakers; Services ask for it by
// name (it is not handed out otherwise).
const l2Pool = "l2"

func createPool(ctx context.Context) error {
	no := false
	for _, o := range []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "e2e"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: poolAddresses}},
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: l2Pool}, Spec: v1alpha1.IPAddressPoolSpec{
			Addresses: []v1alpha1.AddressRange{"192.0.2.240/28", "2001:db8::240/124"}, AutoAssign: &no}},
		&v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: l2Pool}, Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{l2Pool}}},
	} {
		if err := cluster.Kube.Create(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// namespace makes a Kubernetes namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	name = strings.ReplaceAll(name, "_", "-")
	if len(name) > 50 {
		name = name[:50]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := cluster.Kube.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

// deploy runs a workload of pods labelled app=<name> on the given nodes.
func deploy(t *testing.T, ns, name string, nodes ...string) []*lab.Pod {
	t.Helper()
	pods, err := cluster.Deploy(t.Context(), lab.Workload{Namespace: ns, Name: name, Labels: map[string]string{"app": name}, Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// service creates a Service for app=<selector> on port 80 → 8080; mutate adjusts it.
func service(t *testing.T, ns, name, selector string, typ corev1.ServiceType, mutate func(*corev1.Service)) *corev1.Service {
	t.Helper()
	dual := corev1.IPFamilyPolicyPreferDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: typ, Selector: map[string]string{"app": selector}, IPFamilyPolicy: &dual,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
		},
	}
	if mutate != nil {
		mutate(svc)
	}
	if err := cluster.Kube.Create(t.Context(), svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// eventually retries f until it returns nil, failing the test with its last error after
// timeout.
func eventually(t *testing.T, timeout time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		err := f(ctx)
		if err == nil || ctx.Err() == nil || last == nil {
			last = err // an attempt cut short by the deadline says less than the one before
		}
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, last)
	}
}

// loadBalancerIPs waits for the controller to give the Service its addresses.
func loadBalancerIPs(t *testing.T, svc *corev1.Service) (v4, v6 netip.Addr) {
	t.Helper()
	eventually(t, 30*time.Second, "EXTERNAL-IP of "+svc.Name, func(ctx context.Context) error {
		if err := cluster.Kube.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			a := netip.MustParseAddr(in.IP)
			if a.Is4() {
				v4 = a
			} else {
				v6 = a
			}
		}
		if !v4.IsValid() || !v6.IsValid() {
			return fmt.Errorf("ingress %v", svc.Status.LoadBalancer.Ingress)
		}
		return nil
	})
	return v4, v6
}

// readyEndpoints counts the ready and not-ready endpoints of a Service's IPv4 slices, as the
// real EndpointSlice controller wrote them.
func readyEndpoints(ctx context.Context, svc *corev1.Service) (ready, notReady int, err error) {
	var slices discoveryv1.EndpointSliceList
	if err := cluster.Kube.List(ctx, &slices, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return 0, 0, err
	}
	for _, s := range slices.Items {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				ready++
			} else {
				notReady++
			}
		}
	}
	return ready, notReady, nil
}

// getFrom sends one GET from a namespace and parses the pod's reply.
func getFrom(ctx context.Context, netns string, addr netip.Addr, port int, timeout time.Duration) (lab.Reply, error) {
	body, err := lab.Get(ctx, netns, lab.URL(addr, port), timeout)
	if err != nil {
		return lab.Reply{}, err
	}
	return lab.ParseReply(body)
}

// replies sends n GETs from a namespace and counts the answering pods; any failure fails.
func replies(ctx context.Context, netns string, addr netip.Addr, port, n int) (map[string]int, error) {
	seen := map[string]int{}
	for range n {
		r, err := getFrom(ctx, netns, addr, port, 2*time.Second)
		if err != nil {
			return seen, err
		}
		seen[r.Pod]++
	}
	return seen, nil
}

func nodePort(svc *corev1.Service) int { return int(svc.Spec.Ports[0].NodePort) }

func clusterIPs(svc *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, s := range svc.Spec.ClusterIPs {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// routeByHand points the router at node for vip (what a speaker will do), and removes the
// route when the test ends.
func routeByHand(t *testing.T, vip netip.Addr, nodes ...*lab.Node) {
	t.Helper()
	var via []netip.Addr
	for _, n := range nodes {
		if vip.Is4() {
			via = append(via, n.IPv4)
		} else {
			via = append(via, n.IPv6)
		}
	}
	if err := cluster.Router.Route(t.Context(), vip, via...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Router.Unroute(context.Background(), vip) })
}

func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
