package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

const md5Secret = "router-md5"

// bgpLabs numbers the BGP set-ups: each gets pools of its own, as the last one's may still
// be held by its Services.
var bgpLabs atomic.Int32

// bgpLab points every node at the router (IPv4 and IPv6 sessions) as opts and kind say, with
// BFD on both sides when opts.BFD, and removes it all when the test ends. It returns the
// names of its pool (host routes, communities, local-pref 250) and of its aggregated pool
// (a /26 announced as one route), both announced only over BGP and handed out only on request,
// apart from the pools other tests route by hand.
func bgpLab(t *testing.T, kind lab.RouterKind, opts lab.RouterOptions, mutate func(*v1alpha1.BGPPeerSpec)) (bgpPool, bgpAggPool string, agg netip.Prefix) {
	t.Helper()
	ctx := t.Context()
	// Overlapping pools own none of their shared addresses, so each set-up has its own ranges.
	n := bgpLabs.Add(1)
	bgpPool, bgpAggPool = fmt.Sprintf("bgp-%d", n), fmt.Sprintf("bgp-agg-%d", n)
	v4 := fmt.Sprintf("198.18.%d.0/24", 62+2*n)
	v6 := fmt.Sprintf("2001:db8:64:%d::/120", n)
	agg = netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/26", 63+2*n))
	if err := cluster.Router.Configure(ctx, kind, opts); err != nil {
		t.Fatal(err)
	}
	no := false
	lp := uint32(250)
	var objs []client.Object
	if opts.Password != "" {
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: md5Secret},
			StringData: map[string]string{"password": opts.Password}})
	}
	objs = append(objs,
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: bgpPool}, Spec: v1alpha1.IPAddressPoolSpec{
			Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(v4), v1alpha1.AddressRange(v6)}, AutoAssign: &no}},
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: bgpAggPool}, Spec: v1alpha1.IPAddressPoolSpec{
			Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(agg.String())}, AutoAssign: &no}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: bgpPool}, Spec: v1alpha1.BGPAdvertisementSpec{
			IPAddressPools: []string{bgpPool}, Communities: []v1alpha1.Community{"65000:100", "large:64513:1:2"}, LocalPref: &lp}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: bgpAggPool}, Spec: v1alpha1.BGPAdvertisementSpec{
			IPAddressPools: []string{bgpAggPool}, AggregationLength: ptr(int32(26))}},
	)
	for _, addr := range []netip.Addr{cluster.Router.IPv4, cluster.Router.IPv6} {
		spec := v1alpha1.BGPPeerSpec{MyASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: addr.String(),
			HoldTime: &metav1.Duration{Duration: 9 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second}}
		if opts.IBGP {
			spec.MyASN = lab.RouterASN
		}
		if opts.Password != "" {
			spec.PasswordSecret = &v1alpha1.SecretKeyReference{Namespace: "default", Name: md5Secret}
		}
		if opts.BFD {
			spec.BFD = &v1alpha1.BFDSettings{Enabled: true, ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3}
		}
		if mutate != nil {
			mutate(&spec)
		}
		objs = append(objs, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router-v" + map[bool]string{true: "4", false: "6"}[addr.Is4()]}, Spec: spec})
	}
	for _, o := range objs {
		if err := cluster.Kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, o := range objs {
			if err := client.IgnoreNotFound(cluster.Kube.Delete(ctx, o)); err != nil {
				t.Error(err)
			}
		}
		// The sessions close; the router has no routes from the nodes left.
		eventually(t, 30*time.Second, "speakers drop their BGP sessions", func(ctx context.Context) error {
			for _, n := range cluster.Nodes {
				if st := speakerStatus(ctx, n.Name); len(st.Sessions) > 0 {
					return fmt.Errorf("%s still reports %+v", n.Name, st.Sessions)
				}
			}
			return nil
		})
	})
	return bgpPool, bgpAggPool, agg
}

func ptr[T any](v T) *T { return &v }

func speakerStatus(ctx context.Context, node string) v1alpha1.SpeakerReport {
	var st v1alpha1.SpeakerStatus
	_ = cluster.Kube.Get(ctx, client.ObjectKey{Name: node}, &st)
	return st.Status
}

// bgpService is a dual-stack LoadBalancer Service from the BGP pool (or pool).
func bgpService(t *testing.T, ns, name, pool string, mutate func(*corev1.Service)) (*corev1.Service, []netip.Addr) {
	t.Helper()
	svc := service(t, ns, name, "web", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		s.Annotations = map[string]string{v1alpha1.AnnotationAddressPool: pool}
		if mutate != nil {
			mutate(s)
		}
	})
	var ips []netip.Addr
	eventually(t, 30*time.Second, "EXTERNAL-IP of "+name, func(ctx context.Context) error {
		if err := cluster.Kube.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		ips = ips[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, netip.MustParseAddr(in.IP))
		}
		if len(ips) == 0 {
			return fmt.Errorf("no ingress yet")
		}
		return nil
	})
	return svc, ips
}

// nextHopsAre waits until the router forwards prefix to exactly the nodes' addresses of its
// family.
func nextHopsAre(t *testing.T, timeout time.Duration, prefix netip.Prefix, nodes ...string) {
	t.Helper()
	var want []netip.Addr
	for _, name := range nodes {
		n := cluster.Node(name)
		want = append(want, map[bool]netip.Addr{true: n.IPv4, false: n.IPv6}[prefix.Addr().Is4()])
	}
	slices.SortFunc(want, netip.Addr.Compare)
	done := false
	defer func() {
		if !done { // eventually failed: what the router and the speakers say, for the log
			logBGPState(t)
		}
	}()
	eventually(t, timeout, fmt.Sprintf("router forwards %s to %v", prefix, nodes), func(ctx context.Context) error {
		got, err := cluster.Router.NextHops(ctx, prefix)
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("next hops %v, want %v", got, want)
		}
		return err
	})
	done = true
}

// logBGPState logs the router's view of its sessions and each node's SpeakerStatus
// sessions, for a test that did not get the routes it waited for.
func logBGPState(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out string
	var err error
	if cluster.Router.Kind() == lab.FRR {
		out, err = cluster.Router.Vtysh(ctx, "show bgp summary")
	} else {
		out, err = cluster.Router.Birdc(ctx, "show", "protocols")
	}
	t.Logf("the router (%s) on its sessions: %v\n%s", cluster.Router.Kind(), err, out)
	for _, n := range cluster.Nodes {
		t.Logf("%s reports sessions %+v", n.Name, speakerStatus(ctx, n.Name).Sessions)
	}
}

// kubeProxiesServe waits until the kube-proxy of every node (or of the nodes named) has
// programmed addr:80; the router can learn a new address's route before a node's kube-proxy
// has seen the Service's status, and a probe started in between counts that node's misses.
func kubeProxiesServe(t *testing.T, addr netip.Addr, names ...string) {
	t.Helper()
	nodes := cluster.Nodes
	if len(names) > 0 {
		nodes = nil
		for _, name := range names {
			nodes = append(nodes, cluster.Node(name))
		}
	}
	eventually(t, 30*time.Second, fmt.Sprintf("every kube-proxy serves %s", addr), func(ctx context.Context) error {
		for _, n := range nodes {
			if ok, err := n.KubeProxyServes(ctx, addr, 80); err != nil || !ok {
				return fmt.Errorf("%s: not yet (%w)", n.Name, err)
			}
		}
		return nil
	})
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// Both routers, with an MD5 password and BFD on every session (FRR with dynamic neighbours,
// a listen range, and again with static ones): the VIPs arrive as ECMP routes with their
// communities; the client reaches the pods through them; the condition and SpeakerStatus say
// so; aggregation; Local follows the pods; a graceful stop withdraws before the speaker
// exits; a power cut is withdrawn by BFD, long before the hold time; a wrong password never
// gets a session, and a missing Secret is shown on the BGPPeer.
func TestBGPAnnouncesToRouters(t *testing.T) {
	t.Cleanup(func() {
		if err := cluster.Router.Configure(context.Background(), lab.BIRD, lab.RouterOptions{}); err != nil {
			t.Error(err)
		}
	})
	opts := lab.RouterOptions{Password: "s3cret", BFD: true}
	for _, kind := range []lab.RouterKind{lab.BIRD, lab.FRR} {
		t.Run(string(kind), func(t *testing.T) { testBGP(t, kind, opts, true) })
	}
	static := opts
	static.Static = true
	t.Run("frr static neighbours", func(t *testing.T) { testBGP(t, lab.FRR, static, false) })
}

// testBGP runs the checks above; full: every one of them, else the sessions (MD5, BFD Up),
// the routes and the power cut.
func testBGP(t *testing.T, kind lab.RouterKind, opts lab.RouterOptions, full bool) {
	bgpPool, bgpAggPool, aggPrefix := bgpLab(t, kind, opts, nil)
	ns := namespace(t)
	pods := deploy(t, ns, "web", "node-1", "node-2", "node-3")
	svc, ips := bgpService(t, ns, "web", bgpPool, nil)
	all := []string{"node-1", "node-2", "node-3"}
	for _, ip := range ips {
		nextHopsAre(t, 30*time.Second, host(ip), all...)
		paths, err := cluster.Router.Paths(t.Context(), host(ip))
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) != 3 {
			t.Fatalf("%s router paths %+v, want one per node", ip, paths)
		}
		for _, p := range paths {
			if strings.Join(p.Communities, " ") != "65000:100 large:64513:1:2" {
				t.Errorf("%s path via %s has communities %v", ip, p.NextHop, p.Communities)
			}
		}
		kubeProxiesServe(t, ip)
		got, err := replies(t.Context(), cluster.ClientNetns, ip, 80, 30)
		if err != nil {
			t.Fatalf("client to %s: %v", ip, err)
		}
		t.Logf("client to %s over BGP: %v", ip, got)
	}
	waitAnnounced(t, svc, "BGP from node-1, node-2, node-3 to 1 peer")
	for _, n := range all {
		eventually(t, 10*time.Second, n+" reports two sessions established (BFD up when on)", func(ctx context.Context) error {
			st := speakerStatus(ctx, n)
			if len(st.Sessions) != 2 {
				return fmt.Errorf("sessions %+v", st.Sessions)
			}
			for _, s := range st.Sessions {
				if s.State != "Established" || (s.BFD != "Up") != !opts.BFD || s.Advertised != 1 {
					return fmt.Errorf("session %+v", s)
				}
			}
			return nil
		})
	}

	t.Run("aggregation", func(t *testing.T) {
		if !full {
			t.Skip("checked with dynamic neighbours")
		}
		_, agg := bgpService(t, ns, "agg", bgpAggPool, func(s *corev1.Service) {
			s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack)
		})
		nextHopsAre(t, 30*time.Second, aggPrefix, all...)
		if hops, err := cluster.Router.NextHops(t.Context(), host(agg[0])); err != nil || len(hops) != 0 {
			t.Errorf("host route %s next to the aggregate: %v %v", agg[0], hops, err)
		}
	})

	t.Run("Local follows the pods", func(t *testing.T) {
		if !full {
			t.Skip("checked with dynamic neighbours")
		}
		first := deploy(t, ns, "local", "node-2")
		local, lips := bgpService(t, ns, "local", bgpPool, func(s *corev1.Service) {
			s.Spec.Selector = map[string]string{"app": "local"}
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack)
		})
		nextHopsAre(t, 30*time.Second, host(lips[0]), "node-2")
		if _, err := cluster.Deploy(t.Context(), lab.Workload{Namespace: ns, Name: "local2", Labels: map[string]string{"app": "local"}, Nodes: []string{"node-3"}}); err != nil {
			t.Fatal(err)
		}
		nextHopsAre(t, 30*time.Second, host(lips[0]), "node-2", "node-3")
		if err := cluster.DeletePod(t.Context(), first[0]); err != nil {
			t.Fatal(err)
		}
		nextHopsAre(t, 30*time.Second, host(lips[0]), "node-3")
		waitAnnounced(t, local, "BGP from node-3 to 1 peer")
	})

	t.Run("graceful stop withdraws first", func(t *testing.T) {
		if !full {
			t.Skip("checked with dynamic neighbours")
		}
		n := cluster.Node("node-1")
		hops := watchNextHops(t.Context(), host(ips[0]))
		probe := lab.StartProbe(cluster.ClientNetns, lab.URL(ips[0], 80), 10*time.Millisecond, 300*time.Millisecond)
		time.Sleep(200 * time.Millisecond)
		if err := n.Process("speaker").Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		<-n.Process("speaker").Exited()
		// Withdrawn before exit: the router has no node-1 path now, long before any timer.
		nextHopsAre(t, 2*time.Second, host(ips[0]), "node-2", "node-3")
		if !strings.Contains(n.Process("speaker").Tail(30), "Withdrew BGP routes") {
			t.Errorf("the speaker did not say it withdrew:\n%s", n.Process("speaker").Tail(30))
		}
		if err := n.Process("speaker").Start(); err != nil {
			t.Fatal(err)
		}
		nextHopsAre(t, 30*time.Second, host(ips[0]), all...)
		res := probe.Stop()
		changes := hops.Stop()
		// node-1 keeps forwarding (its kube-proxy runs on) while its speaker is away, so the
		// speaker must lose nothing. A request in flight while the router's ECMP set changed
		// can still break: its flow is rehashed to a node without its conntrack entry. Those
		// are the router's, printed; every other loss fails the test.
		rehash, other := hops.split(res.Samples)
		t.Logf("graceful stop and restart of node-1's speaker: %d requests, %d failed in flight across one of the router's %d next-hop changes (ECMP rehash), %d otherwise",
			len(res.Samples), len(rehash), changes, len(other))
		if changes < 2 && len(rehash)+len(other) > 0 {
			// The watch polls: a withdrawal and return between two looks is one change or
			// none. That only matters when there are losses to tell apart.
			t.Errorf("the router's next hops changed %d times, want the withdrawal and the return: the losses cannot be told apart", changes)
		}
		if len(other) > 0 {
			t.Errorf("%d requests failed during a graceful speaker restart, not across a next-hop change: %+v", len(other), other)
		}
	})

	t.Run("power cut: BFD withdraws", func(t *testing.T) {
		n := cluster.Node("node-3")
		setReadyOn(t, pods, n.Name, false)
		defer setReadyOn(t, pods, n.Name, true)
		start := time.Now()
		if err := n.PowerOff(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := n.PowerOn(context.Background()); err != nil {
				t.Error(err)
			}
			nextHopsAre(t, 60*time.Second, host(ips[0]), all...)
		}()
		// The hold time is 9 s; BFD (300 ms x 3) must act well before.
		nextHopsAre(t, 6*time.Second, host(ips[0]), "node-1", "node-2")
		t.Logf("%s router dropped the powered-off node after %s", kind, time.Since(start).Round(10*time.Millisecond))
	})

	t.Run("wrong password, missing Secret", func(t *testing.T) {
		if !full {
			t.Skip("checked with dynamic neighbours")
		}
		testPasswords(t, kind)
	})
}

// iBGP carries local-pref; the routers see the advertisement's value (both routers).
func TestBGPLocalPrefOverIBGP(t *testing.T) {
	t.Cleanup(func() {
		if err := cluster.Router.Configure(context.Background(), lab.BIRD, lab.RouterOptions{}); err != nil {
			t.Error(err)
		}
	})
	for _, kind := range []lab.RouterKind{lab.BIRD, lab.FRR} {
		t.Run(string(kind), func(t *testing.T) {
			bgpPool, _, _ := bgpLab(t, kind, lab.RouterOptions{IBGP: true}, nil)
			ns := namespace(t)
			deploy(t, ns, "web", "node-1", "node-2")
			_, ips := bgpService(t, ns, "web", bgpPool, func(s *corev1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			})
			for _, ip := range ips {
				nextHopsAre(t, 30*time.Second, host(ip), "node-1", "node-2")
				paths, err := cluster.Router.Paths(t.Context(), host(ip))
				if err != nil || len(paths) != 2 {
					t.Fatalf("paths %+v %v", paths, err)
				}
				for _, p := range paths {
					if p.LocalPref != 250 {
						t.Errorf("%s via %s local-pref %d, want 250", ip, p.NextHop, p.LocalPref)
					}
				}
			}
			kubeProxiesServe(t, ips[0], "node-1", "node-2")
			if _, err := replies(t.Context(), cluster.ClientNetns, ips[0], 80, 10); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A peer two hops away (the upstream BIRD behind the router) is reached only with eBGP
// multihop: without it the session never comes up.
func TestBGPMultihop(t *testing.T) {
	up, err := cluster.StartUpstream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := up.Stop(); err != nil {
			t.Error(err)
		}
	}()
	no := false
	pool := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp-up"}, Spec: v1alpha1.IPAddressPoolSpec{
		Addresses: []v1alpha1.AddressRange{"198.18.63.0/28"}, AutoAssign: &no}}
	ad := &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp-up"}, Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp-up"}}}
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "upstream"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: lab.NodeASN, PeerASN: lab.UpstreamASN, PeerAddress: up.IPv4.String(), ConnectTime: &metav1.Duration{Duration: time.Second},
		NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": "node-1"}}}}}
	for _, o := range []client.Object{pool, ad, peer} {
		if err := cluster.Kube.Create(t.Context(), o); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := cluster.Kube.Delete(context.Background(), o); err != nil {
				t.Error(err)
			}
		}()
	}
	ns := namespace(t)
	deploy(t, ns, "web", "node-1")
	_, ips := bgpService(t, ns, "web", "bgp-up", func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack) })
	session := func(ctx context.Context) string {
		for _, s := range speakerStatus(ctx, "node-1").Sessions {
			if s.Peer == "upstream" {
				return s.State
			}
		}
		return ""
	}
	eventually(t, 30*time.Second, "node-1 tries the upstream", func(ctx context.Context) error {
		if session(ctx) == "" {
			return fmt.Errorf("no session reported")
		}
		return nil
	})
	time.Sleep(5 * time.Second) // five connection attempts, each dying one hop out (TTL 1)
	if st := session(t.Context()); st == "Established" {
		t.Fatalf("a session two hops away came up without multihop")
	}
	patch := client.MergeFrom(peer.DeepCopy())
	peer.Spec.EBGPMultiHop = true
	if err := cluster.Kube.Patch(t.Context(), peer, patch); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the upstream learns the VIP", func(ctx context.Context) error {
		out, err := up.Birdc(ctx, "show", "route", host(ips[0]).String())
		if err == nil && !strings.Contains(out, host(ips[0]).String()) {
			err = fmt.Errorf("upstream routes:\n%s", out)
		}
		return err
	})
	// The SpeakerStatus follows the session: it may still say OpenConfirm when the route is in.
	eventually(t, 30*time.Second, "the session reported Established", func(ctx context.Context) error {
		if st := session(ctx); st != "Established" {
			return fmt.Errorf("session state %q", st)
		}
		return nil
	})
}
