// Command bgpfailover measures vipcast's BGP announcements in the lab against a real router
// (BIRD or FRR): the client-visible disruption when one of three announcing nodes loses
// power, with BFD (300 ms x 3) and with only the hold time (9 s); failed requests during a
// rolling restart of every speaker, drained (withdraw first) and with graceful restart; and
// how long until 1,000 and 10,000 VIPs are all in FRR's RIB and kernel. It prints p50 / p95
// / max.
//
// The router hashes ECMP by ports, so the client's connections spread over the nodes and a
// third of them go to a dead node until it is withdrawn. The disruption of a trial runs from
// the power cut to the start of the last request that failed. The failing node's pod is
// marked not ready first (dropping a dead node's endpoints is Kubernetes' job).
//
// With -lb vipcast,metallb (the default) MetalLB v0.16.1 (bin/metallb-*, its native BGP,
// which has no BFD) runs the same parts in a fresh lab after vipcast: power cuts with its
// shortest hold time (3 s) and with vipcast's 9 s, the rolling restart (it has no graceful
// restart) and the scale part, and the two are printed side by side.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
	"github.com/vipcast/vipcast/test/lab"
)

func main() {
	lab.ServeChild()
	// The clients' warnings are not figures.
	ctrllog.SetLogger(logr.Discard())
	trials := flag.Int("trials", 20, "power cuts per setting (0: only the scale part)")
	router := flag.String("router", "bird", "router daemon for the fail-over part: bird or frr (the scale part always uses FRR)")
	scale := flag.String("scale", "1000,10000", "numbers of VIPs to time into the router (empty skips)")
	metallbScale := flag.String("metallb-scale", "1000", "numbers of VIPs to time into the router with MetalLB (empty skips)")
	scaleWait := flag.Duration("scale-wait", 5*time.Minute, "how long to wait for all VIPs in the router before printing how many came")
	index := flag.Int("index", 6, "lab index")
	lbs := flag.String("lb", "vipcast,metallb", "what to measure, one after the other in a fresh lab each: vipcast, metallb (v0.16.1 from bin/, native BGP)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	got := map[string]*result{}
	for _, lb := range strings.Split(*lbs, ",") {
		if lb != "vipcast" && lb != "metallb" {
			fmt.Fprintf(os.Stderr, "bgpfailover: -lb %q: vipcast or metallb\n", lb)
			os.Exit(2)
		}
		counts := *scale
		if lb == "metallb" {
			counts = *metallbScale
		}
		res, err := run(ctx, lb, *index, *trials, lab.RouterKind(*router), counts, *scaleWait)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bgpfailover (%s): %v\n", lb, err)
			os.Exit(1)
		}
		got[lb] = res
	}
	if v, m := got["vipcast"], got["metallb"]; v != nil && m != nil && *trials > 0 {
		sideBySide(v, m)
	}
}

type bench struct {
	ctx context.Context
	lab *lab.Lab
	web *benchlab.Web
	// mlb is MetalLB when it announces instead of vipcast.
	mlb *lab.MetalLB
	res *result
	// scaleWait bounds the wait for the scale part's VIPs in the router.
	scaleWait time.Duration
}

// result is what the side-by-side summary needs of one run.
type result struct {
	// p50 of the power cuts by setting name.
	p50 map[string]time.Duration
	// drain is the rolling restart without graceful restart: failed and sent requests.
	drainFailed, drainSent int
	// into is the time until count VIPs were in the router's kernel by count (0: not
	// within the wait).
	into map[int]time.Duration
}

// Power-cut settings.
const (
	cutBFD    = "power cut, BFD 300ms x3"
	cutHold9  = "power cut, hold 9s only"
	cutHold3  = "power cut, hold 3s only"
	mlbHold3s = 3 * time.Second
)

func run(ctx context.Context, lb string, index, trials int, router lab.RouterKind, scale string, scaleWait time.Duration) (*result, error) {
	root, err := lab.RepoRoot()
	if err != nil {
		return nil, err
	}
	l, err := lab.Up(ctx, lab.Config{Index: index, Nodes: 3, Router: router})
	if err != nil {
		return nil, err
	}
	defer l.Down(context.Background())
	b := &bench{ctx: ctx, lab: l, res: &result{p50: map[string]time.Duration{}, into: map[int]time.Duration{}}, scaleWait: scaleWait}
	if err := b.setup(root, lb == "metallb"); err != nil {
		fmt.Println(l.Logs(20))
		return nil, err
	}
	who := map[bool]string{false: "vipcast", true: "MetalLB v0.16.1 (native BGP, no BFD)"}[b.mlb != nil]
	fmt.Printf("BGP, %s, 3 announcing nodes, %s router, ECMP hashed by ports, probe every 10 ms (300 ms timeout) from the client\n", who, router)
	settings := []string{cutBFD, cutHold9}
	if b.mlb != nil {
		settings = []string{cutHold3, cutHold9}
	}
	for _, name := range settings {
		if trials == 0 {
			if err := b.peers(cutHold9); err != nil {
				return nil, err
			}
			break
		}
		if err := b.peers(name); err != nil {
			return nil, err
		}
		var spans []time.Duration
		failed, total := 0, 0
		for i := range trials {
			span, lost, n, err := b.powerCut(b.lab.Nodes[i%3])
			if err != nil {
				fmt.Println(l.Logs(20))
				return nil, fmt.Errorf("%s, trial %d: %w", name, i+1, err)
			}
			spans, failed, total = append(spans, span), failed+lost, total+n
		}
		slices.Sort(spans)
		b.res.p50[name] = benchlab.Pct(spans, 50)
		fmt.Printf("  %-24s  p50 %7s  p95 %7s  max %7s  (%d of %d requests failed in %d trials)\n", name,
			benchlab.Ms(benchlab.Pct(spans, 50)), benchlab.Ms(benchlab.Pct(spans, 95)), benchlab.Ms(spans[len(spans)-1]), failed, total, trials)
	}
	if trials > 0 {
		if err := b.rollingRestart(false); err != nil {
			return nil, err
		}
		if b.mlb == nil {
			if err := b.peers("graceful restart"); err != nil {
				return nil, err
			}
			if err := b.rollingRestart(true); err != nil {
				return nil, err
			}
		}
	}
	if scale == "" {
		return b.res, nil
	}
	return b.res, b.scale(scale)
}

// sideBySide prints vipcast's and MetalLB's figures from the same run and their ratios.
func sideBySide(v, m *result) {
	fmt.Println("Side by side, same lab, same run:")
	ratio := func(mv, vv time.Duration) string {
		if vv <= 0 || mv <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f×", float64(mv)/float64(vv))
	}
	fmt.Printf("  power cut p50, each at its fastest: vipcast (BFD) %s, MetalLB (hold 3 s) %s, MetalLB/vipcast %s\n",
		benchlab.Ms(v.p50[cutBFD]), benchlab.Ms(m.p50[cutHold3]), ratio(m.p50[cutHold3], v.p50[cutBFD]))
	fmt.Printf("  power cut p50, hold 9 s only (same setting): vipcast %s, MetalLB %s, MetalLB/vipcast %s\n",
		benchlab.Ms(v.p50[cutHold9]), benchlab.Ms(m.p50[cutHold9]), ratio(m.p50[cutHold9], v.p50[cutHold9]))
	fmt.Printf("  rolling restart, requests failed: vipcast %d of %d (drain), MetalLB %d of %d (it has no graceful restart)\n",
		v.drainFailed, v.drainSent, m.drainFailed, m.drainSent)
	for count, mt := range m.into {
		vt, ok := v.into[count]
		if !ok {
			continue
		}
		ms := "not within the wait"
		if mt > 0 {
			ms = benchlab.Ms(mt)
		}
		fmt.Printf("  %d VIPs into the router's kernel: vipcast %s, MetalLB %s, MetalLB/vipcast %s\n", count, benchlab.Ms(vt), ms, ratio(mt, vt))
	}
}

// metallbConfig is MetalLB's configuration for the bench: the same pool as vipcast's, a
// BGPAdvertisement and a BGPPeer to the router with a hold time.
func metallbConfig(router netip.Addr, hold time.Duration) string {
	return fmt.Sprintf(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgp, namespace: metallb-system}
spec: {addresses: [198.18.64.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec: {ipAddressPools: [bgp]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec: {myASN: %d, peerASN: %d, peerAddress: %s, holdTime: %s}
`, lab.NodeASN, lab.RouterASN, router, hold)
}

func (b *bench) setup(root string, metallb bool) error {
	var err error
	if metallb {
		// MetalLB's native BGP has no BFD (that is its FRR mode's).
		if err := b.lab.Router.Configure(b.ctx, b.lab.Router.Kind(), lab.RouterOptions{Static: true}); err != nil {
			return err
		}
		b.web, b.mlb, err = benchlab.StartWebMetalLB(b.ctx, b.lab, metallbConfig(b.lab.Router.IPv4, mlbHold3s))
		if err != nil {
			return err
		}
		return b.nextHops(3)
	}
	// Static: FRR 8.4.4 crashes when a dynamic neighbour's graceful-restart timer runs out.
	if err := b.lab.Router.Configure(b.ctx, b.lab.Router.Kind(), lab.RouterOptions{BFD: true, Static: true}); err != nil {
		return err
	}
	b.web, err = benchlab.StartWeb(b.ctx, b.lab, root,
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []v1alpha1.AddressRange{"198.18.64.0/24"}}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}})
	return err
}

// peers (re)creates the router's BGPPeer for a setting (a power-cut setting or "graceful
// restart") and waits for all three next hops.
func (b *bench) peers(setting string) error {
	if b.mlb != nil {
		return b.metallbPeer(setting)
	}
	bfd := setting == cutBFD
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: b.lab.Router.IPv4.String(),
		HoldTime: &metav1.Duration{Duration: 9 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second}}}
	if bfd {
		peer.Spec.BFD = &v1alpha1.BFDSettings{Enabled: true, ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3}
	}
	if setting == "graceful restart" {
		peer.Spec.GracefulRestart = &v1alpha1.GracefulRestartSettings{Enabled: true, RestartTime: &metav1.Duration{Duration: 60 * time.Second}}
	}
	if err := client.IgnoreNotFound(b.lab.Kube.Delete(b.ctx, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}})); err != nil {
		return err
	}
	if err := b.nextHops(0); err != nil {
		return err
	}
	if err := b.lab.Kube.Create(b.ctx, peer); err != nil {
		return err
	}
	if err := b.nextHops(3); err != nil || !bfd {
		return err
	}
	// The routes can come before BFD does: a power cut then is the hold timer's.
	return benchlab.Poll(b.ctx, 60*time.Second, func(ctx context.Context) error {
		for _, n := range b.lab.Nodes {
			var st v1alpha1.SpeakerStatus
			if err := b.lab.Kube.Get(ctx, client.ObjectKey{Name: n.Name}, &st); err != nil {
				return err
			}
			if len(st.Status.Sessions) != 1 || st.Status.Sessions[0].BFD != "Up" {
				return fmt.Errorf("%s: sessions %+v", n.Name, st.Status.Sessions)
			}
		}
		return nil
	})
}

// metallbPeer deletes MetalLB's BGPPeer, waits until the router has no route, and creates
// it again with the setting's hold time.
func (b *bench) metallbPeer(setting string) error {
	hold := mlbHold3s
	if setting == cutHold9 {
		hold = 9 * time.Second
	}
	if out, err := b.lab.Kubectl(b.ctx, "", "delete", "-n", lab.MetalLBNamespace, "bgppeers.metallb.io", "router"); err != nil {
		return fmt.Errorf("kubectl delete: %w\n%s", err, out)
	}
	if err := b.nextHops(0); err != nil {
		return err
	}
	if err := b.mlb.ApplyYAML(b.ctx, metallbConfig(b.lab.Router.IPv4, hold)); err != nil {
		return err
	}
	return b.nextHops(3)
}

// nextHops waits until the router forwards the VIP to n nodes.
func (b *bench) nextHops(n int, not ...*lab.Node) error {
	return benchlab.Poll(b.ctx, 90*time.Second, func(ctx context.Context) error {
		hops, err := b.lab.Router.NextHops(ctx, netip.PrefixFrom(b.web.VIP, 32))
		if err != nil {
			return err
		}
		for _, x := range not {
			if slices.Contains(hops, x.IPv4) {
				return fmt.Errorf("%s still a next hop", x.Name)
			}
		}
		if len(hops) != n {
			return fmt.Errorf("next hops %v", hops)
		}
		return nil
	})
}

// powerCut cuts a node's power while the client probes and returns how long requests kept
// failing, how many failed, and how many were sent.
func (b *bench) powerCut(n *lab.Node) (time.Duration, int, int, error) {
	if err := b.web.SetReady(b.ctx, n.Name, false); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(time.Second) // EndpointSlice controller and kube-proxy apply it
	probe := lab.StartProbe(b.lab.ClientNetns, lab.URL(b.web.VIP, 80), 10*time.Millisecond, 300*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	cut := time.Now()
	err := n.PowerOff(b.ctx)
	if err == nil {
		err = b.nextHops(2, n)
	}
	time.Sleep(500 * time.Millisecond)
	res := probe.Stop()
	if err := errors.Join(err, n.PowerOn(b.ctx), b.web.SetReady(b.ctx, n.Name, true)); err != nil {
		return 0, 0, 0, err
	}
	var span time.Duration
	for _, s := range res.Samples {
		if !s.OK() && s.Sent.After(cut) {
			span = max(span, s.Sent.Sub(cut))
		}
	}
	return span, res.Failed(), len(res.Samples), b.nextHops(3)
}

// rollingRestart stops and starts every speaker in turn, as a DaemonSet update would, while
// the client probes. Without graceful restart each speaker withdraws its routes before it
// exits (a drain) and announces them again when back; with it, the router keeps the routes
// (stale) throughout and its next hops never change. Requests in flight while the router's
// ECMP set changes can break whatever the speaker does (the flow is rehashed to a node
// without its conntrack entry): those are counted apart.
func (b *bench) rollingRestart(graceful bool) error {
	vip := netip.PrefixFrom(b.web.VIP, 32)
	changes := watchHops(b.ctx, b.lab.Router, vip)
	probe := lab.StartProbe(b.lab.ClientNetns, lab.URL(b.web.VIP, 80), 10*time.Millisecond, 300*time.Millisecond)
	start := time.Now()
	for _, n := range b.lab.Nodes {
		p := n.Process(b.speakerName())
		if err := p.Signal(syscall.SIGTERM); err != nil {
			return err
		}
		<-p.Exited()
		if !graceful {
			if err := b.nextHops(2, n); err != nil {
				return err
			}
		}
		if err := p.Start(); err != nil {
			return err
		}
		if err := b.nextHops(3); err != nil {
			return err
		}
		if graceful {
			// Back when its sessions are: the routes it sends replace the stale ones.
			if err := b.established(n); err != nil {
				return err
			}
		}
	}
	res := probe.Stop()
	hops := changes.stop()
	rehash := 0
	for _, s := range res.Samples {
		if !s.OK() && hops.during(s) {
			rehash++
		}
	}
	name := "drain (withdraw, then restart), no graceful restart"
	if b.mlb != nil {
		name = "stop (MetalLB closes its sessions), then restart"
	}
	if !graceful {
		b.res.drainFailed, b.res.drainSent = res.Failed(), len(res.Samples)
	}
	if graceful {
		name = "graceful restart (routes kept, stale)"
	}
	fmt.Printf("  rolling restart of 3 speakers, %s (%s): %d of %d requests failed (%d of them in flight across one of the router's %d next-hop changes), longest gap %s\n",
		name, time.Since(start).Round(100*time.Millisecond), res.Failed(), len(res.Samples), rehash, len(hops.at), benchlab.Ms(res.Longest()))
	return nil
}

// speakerName is the name of the announcing program on a node.
func (b *bench) speakerName() string {
	if b.mlb != nil {
		return "metallb-speaker"
	}
	return "speaker"
}

// established waits until n's speaker reports its session to the router Established.
func (b *bench) established(n *lab.Node) error {
	return benchlab.Poll(b.ctx, 60*time.Second, func(ctx context.Context) error {
		var st v1alpha1.SpeakerStatus
		if err := b.lab.Kube.Get(ctx, client.ObjectKey{Name: n.Name}, &st); err != nil {
			return err
		}
		if len(st.Status.Sessions) != 1 || st.Status.Sessions[0].State != "Established" || st.Status.Sessions[0].Advertised != 1 {
			return fmt.Errorf("%s: sessions %+v", n.Name, st.Status.Sessions)
		}
		return nil
	})
}

// hopChanges records when the router's next hops for a prefix changed: each between two
// looks 20 ms apart.
type hopChanges struct {
	at   [][2]time.Time
	done chan struct{}
	end  context.CancelFunc
}

func watchHops(ctx context.Context, r *lab.Router, prefix netip.Prefix) *hopChanges {
	ctx, cancel := context.WithCancel(ctx)
	h := &hopChanges{done: make(chan struct{}), end: cancel}
	go func() {
		defer close(h.done)
		var last []netip.Addr
		var lastAt time.Time
		for ctx.Err() == nil {
			hops, err := r.NextHops(ctx, prefix)
			now := time.Now()
			if err == nil {
				if !lastAt.IsZero() && !slices.Equal(hops, last) {
					h.at = append(h.at, [2]time.Time{lastAt, now})
				}
				last, lastAt = hops, now
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return h
}

func (h *hopChanges) stop() *hopChanges {
	h.end()
	<-h.done
	return h
}

// during tells whether a request was in flight across a change.
func (h *hopChanges) during(s lab.Sample) bool {
	end := s.Sent.Add(s.Took)
	return slices.ContainsFunc(h.at, func(c [2]time.Time) bool { return !c[0].After(end) && !c[1].Before(s.Sent) })
}

// scale times how long until every VIP of count Services is in the router's RIB (received
// from all three nodes) and in its kernel, from the moment a BGPAdvertisement selects them.
// The Services exist and have their addresses before; kube-proxy is stopped for this part
// so that three kube-proxies programming 10,000 Services do not share the two cores.
func (b *bench) scale(counts string) error {
	ctx, l := b.ctx, b.lab
	if err := l.Router.Configure(ctx, lab.FRR, lab.RouterOptions{}); err != nil {
		return err
	}
	if err := b.nextHops(3); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		if p := n.Process("kube-proxy"); p != nil {
			_ = p.Stop(10 * time.Second) // it exits with an error status on SIGTERM; gone either way
		}
	}
	// The lab's cluster-IP range (a /20) cannot hold 10,000 Services: a second ServiceCIDR.
	if err := l.Kube.Create(ctx, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "scale"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"198.18.96.0/19"}}}); err != nil {
		return err
	}
	if b.mlb != nil {
		if err := b.mlb.ApplyYAML(ctx, `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: scale, namespace: metallb-system}
spec: {addresses: [198.18.128.0/17], autoAssign: false}
`); err != nil {
			return err
		}
	} else if err := l.Kube.Create(ctx, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "scale"}, Spec: v1alpha1.IPAddressPoolSpec{
		Addresses: []v1alpha1.AddressRange{"198.18.128.0/17"}, AutoAssign: ptr(false)}}); err != nil {
		return err
	}
	made := 0
	for _, c := range strings.Split(counts, ",") {
		var count int
		if _, err := fmt.Sscan(c, &count); err != nil {
			return err
		}
		if err := b.services(made, count); err != nil {
			return err
		}
		made = count
		if err := b.timeInto(count); err != nil {
			return err
		}
	}
	return nil
}

// services creates Services s<from>…s<to-1> in the scale pool and waits until the first to
// have addresses.
func (b *bench) services(from, to int) error {
	ctx, l := b.ctx, b.lab
	start, cpu := time.Now(), b.speakerCPU()
	defer func() {
		fmt.Printf("  (set-up: %d Services created and given addresses in %s; the 3 speakers used %s of CPU meanwhile)\n",
			to-from, time.Since(start).Round(time.Second), (b.speakerCPU() - cpu).Round(100*time.Millisecond))
	}()
	pool := v1alpha1.AnnotationAddressPool
	if b.mlb != nil {
		pool = v1alpha1.MetalLBAddressPool
	}
	for i := from; i < to; i++ {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("s%05d", i),
			Annotations: map[string]string{pool: "scale"}}, Spec: corev1.ServiceSpec{
			// The web pods' selector: MetalLB announces only Services with a ready endpoint.
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
			// 10,000 Services do not fit into the node-port range.
			AllocateLoadBalancerNodePorts: ptr(false)}}
		if err := l.Kube.Create(ctx, svc); err != nil {
			return err
		}
	}
	return benchlab.Poll(ctx, 10*time.Minute, func(ctx context.Context) error {
		var list corev1.ServiceList
		if err := l.Kube.List(ctx, &list, client.InNamespace("default")); err != nil {
			return err
		}
		got := 0
		for _, s := range list.Items {
			if strings.HasPrefix(s.Name, "s") && len(s.Status.LoadBalancer.Ingress) > 0 {
				got++
			}
		}
		if got < to {
			return fmt.Errorf("%d of %d allocated", got, to)
		}
		return nil
	})
}

// timeInto creates the BGPAdvertisement for the scale pool, times until the router has
// count prefixes from every node in its RIB and as 3-way ECMP routes in its kernel, and
// deletes the advertisement again. When they are not all there within the bench's wait it
// prints how many were and goes on.
func (b *bench) timeInto(count int) error {
	ctx, l := b.ctx, b.lab
	time.Sleep(2 * time.Second) // the speakers' caches hold every Service
	ad := &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "scale"}, Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"scale"}}}
	const metallbAd = `apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: scale, namespace: metallb-system}
spec: {ipAddressPools: [scale]}
`
	start := time.Now()
	if b.mlb != nil {
		if err := b.mlb.ApplyYAML(ctx, metallbAd); err != nil {
			return err
		}
	} else if err := l.Kube.Create(ctx, ad); err != nil {
		return err
	}
	var rib, fib time.Duration
	most := 0 // the most prefixes seen from every node
	err := benchlab.Poll(ctx, b.scaleWait, func(ctx context.Context) error {
		if rib == 0 {
			got, err := b.received(ctx)
			most = max(most, got)
			if err != nil || got < count {
				return fmt.Errorf("RIB: %d of %d from every node (%w)", got, count, err)
			}
			rib = time.Since(start)
		}
		out, err := l.Router.Exec(ctx, "sh", "-c", `ip route show root 198.18.128.0/17 proto bgp | awk '/^[0-9]/{r++} /nexthop/{n++} END{print r+0, n+0}'`)
		var routes, hops int
		if _, serr := fmt.Sscan(strings.TrimSpace(out), &routes, &hops); err != nil || serr != nil || routes < count || hops < 3*count {
			return fmt.Errorf("kernel: %d routes, %d next hops, want %d and %d (%w)", routes, hops, count, 3*count, err)
		}
		fib = time.Since(start)
		return nil
	})
	switch {
	case ctx.Err() != nil:
		return err
	case err != nil:
		fmt.Printf("  %6d VIPs from 3 nodes: not all in the router after %s (at most %d from every node in its RIB): %v\n", count, b.scaleWait, most, err)
	default:
		b.res.into[count] = fib
		fmt.Printf("  %6d VIPs from 3 nodes: all in the router's RIB after %s, all in its kernel as 3-way ECMP after %s\n", count, benchlab.Ms(rib), benchlab.Ms(fib))
	}
	if b.mlb != nil {
		if out, err := l.Kubectl(ctx, "", "delete", "-n", lab.MetalLBNamespace, "bgpadvertisements.metallb.io", "scale"); err != nil {
			return fmt.Errorf("kubectl delete: %w\n%s", err, out)
		}
	} else if err := l.Kube.Delete(ctx, ad); err != nil {
		return err
	}
	return benchlab.Poll(ctx, 5*time.Minute, func(ctx context.Context) error {
		if got, err := b.received(ctx); err != nil || got > 0 {
			return fmt.Errorf("still %d (%w)", got, err)
		}
		return nil
	})
}

// speakerCPU is the CPU time the speakers have used so far (user + system, from /proc).
func (b *bench) speakerCPU() time.Duration {
	var total time.Duration
	for _, n := range b.lab.Nodes {
		p := n.Process(b.speakerName())
		if p == nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 12 {
			var u, s int64
			_, _ = fmt.Sscan(f[11], &u)
			_, _ = fmt.Sscan(f[12], &s)
			total += time.Duration(u+s) * time.Second / 100 // USER_HZ
		}
	}
	return total
}

// received is the fewest prefixes the router holds from any node (beyond the bench's one VIP).
func (b *bench) received(ctx context.Context) (int, error) {
	byPeer, err := b.lab.Router.ReceivedPrefixes(ctx, true)
	if err != nil {
		return 0, err
	}
	if len(byPeer) < 3 {
		return 0, fmt.Errorf("%d sessions", len(byPeer))
	}
	least := -1
	for _, n := range byPeer {
		if least < 0 || n-1 < least {
			least = n - 1
		}
	}
	return least, nil
}

func ptr[T any](v T) *T { return &v }
