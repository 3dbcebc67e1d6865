package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

// migrateLabIndex is the lab of the migration test: a fresh API server where MetalLB runs
// first.
const migrateLabIndex = 9

// migrateServices is how many Services MetalLB serves before the move.
const migrateServices = 20

// TestMigrationFromMetalLB: MetalLB v0.16.1 (bin/metallb-controller, bin/metallb-speaker,
// memberlist on) serves 20 Services over layer 2 (l2) or BGP to the router, 3-way ECMP (bgp)
// while the client probes each every 100 ms (a new connection each); then the README's steps
// under "Moving from MetalLB" run as written (the plugin's migrate, the chart's install with
// vipcast started as the chart says, MetalLB removed once vipcast's speakers are Ready, the
// apply). Every Service keeps its EXTERNAL-IP, none is ever seen without one, vipcast
// allocates each from the migrated pool and announces it, and the failed requests, the
// client's longest gap and who announced two of the addresses, in turn (L2: claims on the
// wire; BGP: the router's next hops), are printed.
func TestMigrationFromMetalLB(t *testing.T) {
	for _, mode := range []string{"l2", "bgp"} {
		t.Run(mode, func(t *testing.T) { testMigrationFromMetalLB(t, mode) })
	}
}

// metalLBConfig is MetalLB's configuration in the migration test: a pool on the fabric,
// announced over L2 or to the router over BGP.
func metalLBConfig(mode string, router netip.Addr) string {
	if mode == "l2" {
		return `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: fabric
  namespace: metallb-system
spec:
  addresses: [192.0.2.200-192.0.2.230]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: fabric
  namespace: metallb-system
spec:
  ipAddressPools: [fabric]
`
	}
	return fmt.Sprintf(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: fabric
  namespace: metallb-system
spec:
  addresses: [203.0.113.200-203.0.113.230]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  name: fabric
  namespace: metallb-system
spec:
  ipAddressPools: [fabric]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  name: router
  namespace: metallb-system
spec:
  myASN: %d
  peerASN: %d
  peerAddress: %s
  holdTime: 9s
`, lab.NodeASN, lab.RouterASN, router)
}

func testMigrationFromMetalLB(t *testing.T, mode string) {
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	l := lab.UpForTest(t, lab.Config{Index: migrateLabIndex, Nodes: 3, BareAPI: true})
	h := &chartRun{t: t, l: l, root: root, home: t.TempDir()}
	mlb := startMetalLB(t, h, metalLBConfig(mode, l.Router.IPv4))

	if err := l.Kube.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Deploy(t.Context(), lab.Workload{Namespace: "shop", Name: "web", Labels: map[string]string{"app": "web"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	single := corev1.IPFamilyPolicySingleStack
	for i := range migrateServices {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("web-%d", i)}, Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"}, IPFamilyPolicy: &single, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}}}
		if i%2 == 1 { // half of them name MetalLB's pool, as many real ones do
			svc.Annotations = map[string]string{"metallb.io/address-pool": "fabric"}
		}
		if err := l.Kube.Create(t.Context(), svc); err != nil {
			t.Fatal(err)
		}
	}
	addrs := map[string]netip.Addr{}
	eventually(t, 90*time.Second, "MetalLB gives every Service an address", func(ctx context.Context) error {
		var list corev1.ServiceList
		if err := l.Kube.List(ctx, &list, client.InNamespace("shop")); err != nil {
			return err
		}
		for _, s := range list.Items {
			if in := s.Status.LoadBalancer.Ingress; len(in) == 1 {
				addrs[s.Name] = netip.MustParseAddr(in[0].IP)
			}
		}
		if len(addrs) != migrateServices {
			return fmt.Errorf("%d of %d", len(addrs), migrateServices)
		}
		return nil
	})
	for name, a := range addrs {
		eventually(t, 60*time.Second, fmt.Sprintf("the client reaches %s (%s) through MetalLB", a, name), func(ctx context.Context) error {
			_, err := getFrom(ctx, l.ClientNetns, a, 80, time.Second)
			return err
		})
	}
	watched := watchAddresses(t, l, addrs)
	probes := map[string]*lab.Prober{}
	for name, a := range addrs {
		probes[name] = lab.StartProbe(l.ClientNetns, lab.URL(a, 80), 100*time.Millisecond, time.Second)
	}
	// The probes settle first: 20 of them starting together on two cores time out now and then.
	time.Sleep(3 * time.Second)
	start := time.Now()
	// Who announces two of the addresses, in turn, for the log: L2, who claims them on the
	// router's wire (the router asks every 50 ms); BGP, the router's next hops.
	var claims []*lab.ClaimWatch
	var hops []*hopLog
	for _, name := range []string{"web-0", "web-1"} {
		if mode == "bgp" {
			hops = append(hops, logNextHops(t, l, addrs[name]))
			continue
		}
		w, err := lab.StartClaimWatch(l.Router.Netns, "eth0", addrs[name], 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Stop() })
		claims = append(claims, w)
	}

	// The README's steps, as written.
	work := t.TempDir()
	for _, argv := range readmeCommands(t, filepath.Join(root, "README.md"), "## Moving from MetalLB") {
		t.Logf("%.1fs: %s", time.Since(start).Seconds(), strings.Join(argv, " "))
		switch {
		case argv[0] == "kubectl" && len(argv) > 1 && argv[1] == "vipcast":
			migratePlugin(t, h, work, argv[2:])
		case argv[0] == "helm" && argv[1] == "install":
			h.run(argv...)
			h.startPrograms(h.manifest())
		case argv[0] == "helm" && argv[1] == "uninstall" && argv[2] == "metallb":
			// The README's step before: every node's speaker Ready.
			speakersReadyIn(t, l)
			t.Logf("%.1fs: every vipcast speaker Ready", time.Since(start).Seconds())
			// MetalLB runs here as programs the test started, not from its chart: removing
			// it is stopping them and deleting its namespace, as the uninstall would.
			mlb.remove()
		default:
			for i, a := range argv {
				if a == "vipcast.yaml" {
					argv[i] = filepath.Join(work, a)
				}
			}
			t.Logf("%s", h.run(argv...))
		}
	}
	allAnnounced(t, l)
	t.Logf("%.1fs: every Service announced by vipcast", time.Since(start).Seconds())
	time.Sleep(3 * time.Second) // the probes run on with vipcast alone
	var longest time.Duration
	var worst string
	failed := 0
	end := time.Now()
	for name, p := range probes {
		res := p.Stop()
		for _, x := range res.Samples {
			if !x.OK() && !x.Sent.Before(start) {
				failed++
			}
		}
		for _, g := range res.Gaps() {
			if g.Recovered() && g.To.Before(start) {
				continue // before the migration began
			}
			t.Logf("%s (%s): %d requests failed from %.2fs to %.2fs", name, addrs[name], g.Failed, g.From.Sub(start).Seconds(), g.To.Sub(start).Seconds())
			if g.Recovered() && g.Length() > longest {
				longest, worst = g.Length(), name
			}
			if !g.Recovered() && end.Sub(g.From) > time.Second {
				t.Errorf("%s (%s) unreachable since %.2fs", name, addrs[name], g.From.Sub(start).Seconds())
			}
		}
	}
	for _, w := range claims {
		r := w.Stop()
		var spans []string
		for _, sp := range r.Spans() {
			who := sp.MAC
			for _, n := range l.Nodes {
				if n.MAC == sp.MAC {
					who = n.Name
				}
			}
			spans = append(spans, fmt.Sprintf("%s×%d [%.2fs–%.2fs]", who, sp.Claims, sp.First.Sub(start).Seconds(), sp.Last.Sub(start).Seconds()))
		}
		t.Logf("%s claimed in turn by: %s", r.Addr, strings.Join(spans, " → "))
	}
	for _, w := range hops {
		t.Logf("%s: the router's next hops in turn: %s", w.addr, strings.Join(w.stop(l, start), " → "))
	}
	t.Logf("migration from MetalLB (%s): %d Services, %d requests failed in all from the first step, longest gap %s (%s)", mode, migrateServices, failed, longest.Round(time.Millisecond), worst)
	for _, e := range watched.stop() {
		t.Error(e)
	}
	// Each address is now vipcast's, allocated from the migrated pool of the same name.
	var list corev1.ServiceList
	if err := l.Kube.List(t.Context(), &list, client.InNamespace("shop")); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		if a := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionIPAllocated); a == nil || !strings.Contains(a.Message, "from IPAddressPool fabric") {
			t.Errorf("%s: %+v, want its address from the migrated pool fabric", s.Name, a)
		}
	}
}

// speakersReadyIn waits until every node of l has a Ready SpeakerStatus.
func speakersReadyIn(t *testing.T, l *lab.Lab) {
	t.Helper()
	eventually(t, 60*time.Second, "every vipcast speaker Ready", func(ctx context.Context) error {
		var list v1alpha1.SpeakerStatusList
		if err := l.Kube.List(ctx, &list); err != nil {
			return err
		}
		ready := 0
		for _, s := range list.Items {
			if c := meta.FindStatusCondition(s.Status.Conditions, "Ready"); c != nil && c.Status == metav1.ConditionTrue {
				ready++
			}
		}
		if ready != len(l.Nodes) {
			return fmt.Errorf("%d of %d Ready", ready, len(l.Nodes))
		}
		return nil
	})
}

// allAnnounced waits until every Service of shop has vipcast's address and is announced.
func allAnnounced(t *testing.T, l *lab.Lab) {
	t.Helper()
	eventually(t, 120*time.Second, "vipcast announces every Service", func(ctx context.Context) error {
		var list corev1.ServiceList
		if err := l.Kube.List(ctx, &list, client.InNamespace("shop")); err != nil {
			return err
		}
		for _, s := range list.Items {
			c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAnnounced)
			a := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionIPAllocated)
			if c == nil || c.Status != metav1.ConditionTrue || a == nil || a.Status != metav1.ConditionTrue {
				return fmt.Errorf("%s: allocated %+v, announced %+v", s.Name, a, c)
			}
		}
		return nil
	})
}

// migratePlugin runs "kubectl vipcast ARGS > FILE" with bin/kubectl-vipcast.
func migratePlugin(t *testing.T, h *chartRun, work string, args []string) {
	t.Helper()
	out := ""
	if i := slices.Index(args, ">"); i >= 0 && i+1 < len(args) {
		out, args = filepath.Join(work, args[i+1]), args[:i]
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, "kubectl-vipcast"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.l.Kubeconfig)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl vipcast %s: %v\n%s%s", strings.Join(args, " "), err, b, stderr.String())
	}
	t.Logf("kubectl vipcast %s:\n%s%s", strings.Join(args, " "), b, stderr.String())
	if out != "" {
		if err := os.WriteFile(out, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// metalLB is MetalLB running in the lab, removed by the README's uninstall step.
type metalLB struct {
	h *chartRun
	m *lab.MetalLB
}

func startMetalLB(t *testing.T, h *chartRun, config string) *metalLB {
	t.Helper()
	crds, err := lab.MetalLBCRDs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m, err := h.l.StartMetalLB(t.Context(), crds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	if err := m.ApplyYAML(t.Context(), config); err != nil {
		t.Fatal(err)
	}
	return &metalLB{h: h, m: m}
}

// remove stops MetalLB and deletes its namespace, as an uninstall that does not wait does:
// it returns once the speakers have exited; the controller stops in the background.
func (m *metalLB) remove() {
	rest, err := m.m.Uninstall()
	if err != nil {
		m.h.t.Logf("stopping MetalLB's speakers: %v", err)
	}
	m.h.t.Cleanup(func() {
		if err := rest(); err != nil {
			m.h.t.Logf("stopping MetalLB: %v", err)
		}
	})
	m.h.run("kubectl", "delete", "namespace", lab.MetalLBNamespace, "--wait=false")
}

// addressWatch records every moment a Service is seen without the address it started with.
type addressWatch struct {
	w      watch.Interface
	done   chan struct{}
	mu     sync.Mutex
	errors []string
}

func watchAddresses(t *testing.T, l *lab.Lab, want map[string]netip.Addr) *addressWatch {
	t.Helper()
	wc, err := client.NewWithWatch(l.Rest, client.Options{Scheme: lab.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	var list corev1.ServiceList
	w, err := wc.Watch(t.Context(), &list, client.InNamespace("shop"))
	if err != nil {
		t.Fatal(err)
	}
	a := &addressWatch{w: w, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			in := s.Status.LoadBalancer.Ingress
			if ev.Type == watch.Deleted || len(in) != 1 || in[0].IP != want[s.Name].String() {
				a.mu.Lock()
				a.errors = append(a.errors, fmt.Sprintf("%s at %s: %s, ingress %v, want %s", s.Name, time.Now().Format("15:04:05.000"), ev.Type, in, want[s.Name]))
				a.mu.Unlock()
			}
		}
	}()
	return a
}

func (a *addressWatch) stop() []string {
	a.w.Stop()
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.errors
}

// hopLog records the router's next hops for an address, each set with when it was first
// and last seen (looked at every 50 ms).
type hopLog struct {
	addr netip.Addr
	mu   sync.Mutex
	sets []hopSet
	end  context.CancelFunc
	done chan struct{}
}

type hopSet struct {
	hops        []netip.Addr
	first, last time.Time
}

func logNextHops(t *testing.T, l *lab.Lab, addr netip.Addr) *hopLog {
	ctx, cancel := context.WithCancel(t.Context())
	w := &hopLog{addr: addr, end: cancel, done: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-w.done })
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			hops, err := l.Router.NextHops(ctx, netip.PrefixFrom(addr, 32))
			now := time.Now()
			if err == nil {
				w.mu.Lock()
				if n := len(w.sets); n > 0 && slices.Equal(w.sets[n-1].hops, hops) {
					w.sets[n-1].last = now
				} else {
					w.sets = append(w.sets, hopSet{hops: hops, first: now, last: now})
				}
				w.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return w
}

// stop ends the watch and describes the sets seen, nodes by name, times from start.
func (w *hopLog) stop(l *lab.Lab, start time.Time) []string {
	w.end()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, s := range w.sets {
		var names []string
		for _, h := range s.hops {
			name := h.String()
			for _, n := range l.Nodes {
				if n.IPv4 == h {
					name = n.Name
				}
			}
			names = append(names, name)
		}
		if len(names) == 0 {
			names = []string{"none"}
		}
		out = append(out, fmt.Sprintf("%s [%.2fs–%.2fs]", strings.Join(names, "+"), s.first.Sub(start).Seconds(), s.last.Sub(start).Seconds()))
	}
	return out
}
