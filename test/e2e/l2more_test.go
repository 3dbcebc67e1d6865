package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

// poolAndAdvert makes a fabric pool (handed out only on request) and an L2Advertisement for it.
func poolAndAdvert(t *testing.T, name, cidr string, spec v1alpha1.L2AdvertisementSpec) {
	t.Helper()
	no := false
	spec.IPAddressPools = []string{name}
	for _, o := range []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(cidr)}, AutoAssign: &no}},
		&v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec},
	} {
		if err := cluster.Kube.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
	}
}

func TestL2NodeAndInterfaceSelectors(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-1", "node-2", "node-3")
	// Only nodes labelled edge=true may announce the "edge" pool, on eth0.
	var n3 corev1.Node
	if err := cluster.Kube.Get(t.Context(), client.ObjectKey{Name: "node-3"}, &n3); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(n3.DeepCopy())
	n3.Labels["edge"] = "true"
	if err := cluster.Kube.Patch(t.Context(), &n3, patch); err != nil {
		t.Fatal(err)
	}
	poolAndAdvert(t, "edge", "192.0.2.224/29", v1alpha1.L2AdvertisementSpec{
		NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}},
		Interfaces:    []v1alpha1.InterfaceName{"eth0"},
	})
	// The "nowhere" pool is advertised on an interface no node has.
	poolAndAdvert(t, "nowhere", "192.0.2.216/29", v1alpha1.L2AdvertisementSpec{Interfaces: []v1alpha1.InterfaceName{"eth9"}})

	svcs := map[string]netip.Addr{}
	for _, pool := range []string{"edge", "nowhere"} {
		svc := service(t, ns, pool, "web", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
			s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: pool}
			single := corev1.IPFamilyPolicySingleStack
			s.Spec.IPFamilyPolicy = &single
		})
		eventually(t, 30*time.Second, "address of "+pool, func(ctx context.Context) error {
			if err := cluster.Kube.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
				return err
			}
			if len(svc.Status.LoadBalancer.Ingress) == 0 {
				return fmt.Errorf("none yet")
			}
			svcs[pool] = netip.MustParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
			return nil
		})
	}
	owner(t, svcs["edge"], "node-3")
	reach(t, svcs["edge"])
	if got := routerMAC(t.Context(), svcs["edge"]); got != cluster.Node("node-3").MAC {
		t.Errorf("the router has the edge address at %q, not node-3's %s", got, cluster.Node("node-3").MAC)
	}
	// Nobody announces on a missing interface, and the client gets nothing.
	time.Sleep(time.Second)
	if nodes, err := cluster.Announcers(t.Context(), svcs["nowhere"]); err != nil || len(nodes) != 0 {
		t.Errorf("announced by %v (%v) on an interface no node has", nodes, err)
	}
	if _, err := getFrom(t.Context(), cluster.ClientNetns, svcs["nowhere"], 80, time.Second); err == nil {
		t.Error("an address advertised on no existing interface answered")
	}
	eventually(t, 30*time.Second, "Announced says no node has the interface", func(ctx context.Context) error {
		var s corev1.Service
		if err := cluster.Kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nowhere"}, &s); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAnnounced); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "NoInterface" {
			return fmt.Errorf("Announced %+v", c)
		}
		return nil
	})
}

// With the API server gone for 60 s nothing changes on the wire, against both routers with
// MD5 and BFD on every session: the same node answers for the L2 address, no BGP session is
// reset (the speakers keep the passwords they read), the router keeps its routes, the client
// loses no request, and everything works again afterwards.
func TestSurvivesAPIServerOutage(t *testing.T) {
	t.Cleanup(func() {
		if err := cluster.Router.Configure(context.Background(), lab.BIRD, lab.RouterOptions{}); err != nil {
			t.Error(err)
		}
	})
	for _, kind := range []lab.RouterKind{lab.BIRD, lab.FRR} {
		t.Run(string(kind), func(t *testing.T) { testOutage(t, kind) })
	}
}

func testOutage(t *testing.T, kind lab.RouterKind) {
	const outage = 60 * time.Second
	bgpPool, _, _ := bgpLab(t, kind, lab.RouterOptions{Password: "s3cret", BFD: true}, nil)
	ns := namespace(t)
	deploy(t, ns, "web", "node-1", "node-2", "node-3")
	_, v4, _ := l2Service(t, ns, "web", nil)
	reach(t, v4)
	_, bgpIPs := bgpService(t, ns, "routed", bgpPool, func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack) })
	nextHopsAre(t, 30*time.Second, host(bgpIPs[0]), "node-1", "node-2", "node-3")
	sessionsAre(t, 30*time.Second, func(s v1alpha1.BGPSessionStatus) bool { return s.State == "Established" && s.BFD == "Up" })
	// The router may learn the new route a few hundred ms before one of the kube-proxies has
	// the address: probing before then counts that, not the outage.
	kubeProxiesServe(t, bgpIPs[0])
	before := owner(t, v4)
	epochs, err := cluster.Router.SessionEpochs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	apiserver := cluster.Process("cp/kube-apiserver")
	probe := lab.StartProbe(cluster.ClientNetns, lab.URL(v4, 80), 50*time.Millisecond, time.Second)
	routed := lab.StartProbe(cluster.ClientNetns, lab.URL(bgpIPs[0], 80), 50*time.Millisecond, time.Second)
	defer probe.Stop()
	defer routed.Stop()
	apiserver.Kill()
	restarted := false
	defer func() {
		if !restarted {
			if err := apiserver.Start(); err != nil {
				t.Error(err)
			}
		}
	}()
	for end := time.Now().Add(outage); time.Now().Before(end); time.Sleep(time.Second) {
		if hops, err := cluster.Router.NextHops(t.Context(), host(bgpIPs[0])); err != nil || len(hops) != 3 {
			t.Errorf("the router's next hops for %s changed during the outage: %v %v", bgpIPs[0], hops, err)
			break
		}
	}
	mac := routerMAC(t.Context(), v4)
	after, err := cluster.Router.SessionEpochs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if reset := lab.SessionsReset(epochs, after); len(reset) > 0 {
		t.Errorf("BGP sessions %v were reset during the outage: before %v, after %v", reset, epochs, after)
	}
	// The probes end with the outage: the API server's start is heavy on a small machine and
	// belongs to neither.
	res, r := probe.Stop(), routed.Stop()
	restarted = true
	if err := apiserver.Start(); err != nil {
		t.Fatal(err)
	}
	if r.Failed() > 0 {
		t.Errorf("the client lost the BGP address: %d of %d requests failed, longest gap %s", r.Failed(), len(r.Samples), r.Longest())
	} else {
		t.Logf("%s: BGP address (MD5, BFD) during the outage: %d requests, none failed; sessions never reset (%d)", kind, len(r.Samples), len(after))
	}
	// A request can time out on a loaded machine; the address going dark shows as a gap.
	if res.Longest() > 500*time.Millisecond {
		t.Errorf("the client lost the address for %s while the API server was down (%d of %d requests failed)", res.Longest(), res.Failed(), len(res.Samples))
	}
	if mac != before.MAC {
		t.Errorf("during the outage the router had %s at %s, not at %s's %s", v4, mac, before.Name, before.MAC)
	}
	eventually(t, 60*time.Second, "the API server is back", func(ctx context.Context) error {
		var n corev1.NodeList
		return cluster.Kube.List(ctx, &n)
	})
	if after := owner(t, v4); after != before {
		t.Errorf("the owner moved from %s to %s across the outage", before.Name, after.Name)
	}
	t.Logf("API server down %s: %d requests to the L2 address, %d failed, longest gap %s", outage, len(res.Samples), res.Failed(), res.Longest())
	// The controller lost its leader lease and was restarted (as its Deployment would); the
	// whole way (address, EndpointSlices, kube-proxy, announcement) works again for a new
	// Service before the next test starts.
	_, later, _ := l2Service(t, ns, "after", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "web"} })
	eventually(t, 90*time.Second, "a Service created after the outage answers", func(ctx context.Context) error {
		_, err := getFrom(ctx, cluster.ClientNetns, later, 80, time.Second)
		return err
	})
	// Every node's kube-proxy too (its informers back off during the outage, and the next
	// test's address may land on any node): the lab has recovered, not only the owner.
	eventually(t, 120*time.Second, "every kube-proxy serves the new Service", func(ctx context.Context) error {
		for _, n := range cluster.Nodes {
			if ok, err := n.KubeProxyServes(ctx, later, 80); err != nil || !ok {
				return fmt.Errorf("%s: not yet (%w)", n.Name, err)
			}
		}
		return nil
	})
}

// TestARestartedSpeakerCountsItsAddressesOnItsNode: a speaker that takes more Services in one
// plan than --events-per-plan (3 in this lab) writes one Event on its Node that counts them,
// not one on each Service.
func TestARestartedSpeakerCountsItsAddressesOnItsNode(t *testing.T) {
	const n = 10 // one node owns at least 4 of them
	ns := namespace(t)
	poolAndAdvert(t, "many", "192.0.2.192/28", v1alpha1.L2AdvertisementSpec{})
	single := corev1.IPFamilyPolicySingleStack
	var addrs []netip.Addr
	for i := range n {
		svc := service(t, ns, fmt.Sprintf("s%d", i), "none", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
			s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: "many"}
			s.Spec.IPFamilyPolicy, s.Spec.IPFamilies = &single, []corev1.IPFamily{corev1.IPv4Protocol}
		})
		addrs = append(addrs, singleAddress(t, svc))
	}
	owned := map[string]int{}
	for _, a := range addrs {
		owned[owner(t, a).Name]++
	}
	top := ""
	for name, k := range owned {
		if top == "" || k > owned[top] {
			top = name
		}
	}
	t.Logf("owners: %v; restarting %s's speaker", owned, top)
	seen := map[types.UID]bool{}
	var evs eventsv1.EventList
	if err := cluster.Kube.List(t.Context(), &evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		seen[e.UID] = true
	}
	sp := cluster.Node(top).Process("speaker")
	if err := sp.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := sp.Start(); err != nil {
		t.Fatal(err)
	}
	allReady(t)
	var note string
	eventually(t, 60*time.Second, "an Announcing Event on node "+top+" that counts its addresses", func(ctx context.Context) error {
		if err := cluster.Kube.List(ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if !seen[e.UID] && e.ReportingController == "vipcast-speaker" && e.Reason == "Announcing" && e.Regarding.Kind == "Node" && e.Regarding.Name == top {
				note = e.Note
				return nil
			}
		}
		return fmt.Errorf("none among %d Events", len(evs.Items))
	})
	t.Logf("%s", note)
	var count int
	if _, err := fmt.Sscanf(note, top+" started announcing %d addresses over L2", &count); err != nil || count < owned[top] {
		t.Errorf("the Event counts %d addresses (%v), want at least the %d of this test", count, err, owned[top])
	}
	for _, e := range evs.Items {
		if !seen[e.UID] && e.Regarding.Namespace == ns && e.Reason == "Announcing" && strings.Contains(e.Note, "from "+top) {
			t.Errorf("an Event on %s/%s after the restart: %s", ns, e.Regarding.Name, e.Note)
		}
	}
}
