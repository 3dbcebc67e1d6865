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

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
	"github.com/vipcast/vipcast/test/lab"
)

func main() {
	lab.ServeChild()
	trials := flag.Int("trials", 20, "power cuts per setting (0: only the scale part)")
	router := flag.String("router", "bird", "router daemon for the fail-over part: bird or frr (the scale part always uses FRR)")
	scale := flag.String("scale", "1000,10000", "numbers of VIPs to time into the router (empty skips)")
	index := flag.Int("index", 6, "lab index")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *index, *trials, lab.RouterKind(*router), *scale); err != nil {
		fmt.Fprintln(os.Stderr, "bgpfailover:", err)
		os.Exit(1)
	}
}

type bench struct {
	ctx context.Context
	lab *lab.Lab
	web *benchlab.Web
}

func run(ctx context.Context, index, trials int, router lab.RouterKind, scale string) error {
	root, err := lab.RepoRoot()
	if err != nil {
		return err
	}
	l, err := lab.Up(ctx, lab.Config{Index: index, Nodes: 3, Router: router})
	if err != nil {
		return err
	}
	defer l.Down(context.Background())
	b := &bench{ctx: ctx, lab: l}
	if err := b.setup(root); err != nil {
		fmt.Println(l.Logs(20))
		return err
	}
	fmt.Printf("BGP, 3 announcing nodes, %s router, ECMP hashed by ports, probe every 10 ms (300 ms timeout) from the client\n", router)
	for _, bfd := range []bool{true, false} {
		if trials == 0 {
			if err := b.peers(false); err != nil {
				return err
			}
			break
		}
		if err := b.peers(bfd); err != nil {
			return err
		}
		var spans []time.Duration
		failed, total := 0, 0
		for i := range trials {
			span, lost, n, err := b.powerCut(b.lab.Nodes[i%3])
			if err != nil {
				fmt.Println(l.Logs(20))
				return fmt.Errorf("trial %d: %w", i+1, err)
			}
			spans, failed, total = append(spans, span), failed+lost, total+n
		}
		slices.Sort(spans)
		name := "power cut, BFD 300ms x3"
		if !bfd {
			name = "power cut, hold 9s only"
		}
		fmt.Printf("  %-24s  p50 %7s  p95 %7s  max %7s  (%d of %d requests failed in %d trials)\n", name,
			benchlab.Ms(benchlab.Pct(spans, 50)), benchlab.Ms(benchlab.Pct(spans, 95)), benchlab.Ms(spans[len(spans)-1]), failed, total, trials)
	}
	if trials > 0 {
		if err := b.rollingRestart(false); err != nil {
			return err
		}
		if err := b.peers(false, true); err != nil {
			return err
		}
		if err := b.rollingRestart(true); err != nil {
			return err
		}
	}
	if scale == "" {
		return nil
	}
	return b.scale(scale)
}

func (b *bench) setup(root string) error {
	// Static: FRR 8.4.4 crashes when a dynamic neighbour's graceful-restart timer runs out.
	if err := b.lab.Router.Configure(b.ctx, b.lab.Router.Kind(), lab.RouterOptions{BFD: true, Static: true}); err != nil {
		return err
	}
	var err error
	b.web, err = benchlab.StartWeb(b.ctx, b.lab, root,
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []v1alpha1.AddressRange{"198.18.64.0/24"}}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"bgp"}}})
	return err
}

// peers (re)creates the router's BGPPeer with or without BFD and graceful restart and waits
// for all three next hops.
func (b *bench) peers(bfd bool, gr ...bool) error {
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: b.lab.Router.IPv4.String(),
		HoldTime: &metav1.Duration{Duration: 9 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second}}}
	if bfd {
		peer.Spec.BFD = &v1alpha1.BFDSettings{Enabled: true, ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3}
	}
	if len(gr) > 0 && gr[0] {
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
		p := n.Process("speaker")
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
	if graceful {
		name = "graceful restart (routes kept, stale)"
	}
	fmt.Printf("  rolling restart of 3 speakers, %s (%s): %d of %d requests failed (%d of them in flight across one of the router's %d next-hop changes), longest gap %s\n",
		name, time.Since(start).Round(100*time.Millisecond), res.Failed(), len(res.Samples), rehash, len(hops.at), benchlab.Ms(res.Longest()))
	return nil
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
	if err := l.Kube.Create(ctx, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "scale"}, Spec: v1alpha1.IPAddressPoolSpec{
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
	for i := from; i < to; i++ {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("s%05d", i),
			Annotations: map[string]string{v1alpha1.AnnotationAddressPool: "scale"}}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
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
// deletes the advertisement again.
func (b *bench) timeInto(count int) error {
	ctx, l := b.ctx, b.lab
	time.Sleep(2 * time.Second) // the speakers' caches hold every Service
	ad := &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "scale"}, Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"scale"}}}
	start := time.Now()
	if err := l.Kube.Create(ctx, ad); err != nil {
		return err
	}
	var rib, fib time.Duration
	err := benchlab.Poll(ctx, 10*time.Minute, func(ctx context.Context) error {
		if rib == 0 {
			got, err := b.received(ctx)
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
	if err != nil {
		return err
	}
	fmt.Printf("  %6d VIPs from 3 nodes: all in the router's RIB after %s, all in its kernel as 3-way ECMP after %s\n", count, benchlab.Ms(rib), benchlab.Ms(fib))
	if err := l.Kube.Delete(ctx, ad); err != nil {
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
		p := n.Process("speaker")
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
