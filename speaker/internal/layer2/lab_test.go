package layer2_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/vipcast/vipcast/speaker/internal/layer2"
	"github.com/vipcast/vipcast/test/lab"
)

// labIndex keeps this package's lab apart from the others'.
const labIndex = 4

var (
	vip4 = netip.MustParseAddr("192.0.2.240")
	vip6 = netip.MustParseAddr("2001:db8::240")
)

func TestMain(m *testing.M) {
	lab.ServeChild()
	os.Exit(m.Run())
}

// upLab brings up a two-node lab with a pod on each node behind a Service whose
// LoadBalancer status holds the test addresses (written by hand: no controller here).
func upLab(t *testing.T) *lab.Lab {
	t.Helper()
	if os.Getenv("VIPCAST_LAB") != "1" {
		t.Skip("the lab tests need root and VIPCAST_LAB=1 (make test sets it)")
	}
	l := lab.UpForTest(t, lab.Config{Index: labIndex, Nodes: 2})
	ctx := t.Context()
	if _, err := l.Deploy(ctx, lab.Workload{Namespace: "default", Name: "web", Labels: map[string]string{"app": "web"}, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	dual := corev1.IPFamilyPolicyRequireDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"}, IPFamilyPolicy: &dual,
			Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
	if err := l.Kube.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	vip := corev1.LoadBalancerIPModeVIP
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: vip4.String(), IPMode: &vip}, {IP: vip6.String(), IPMode: &vip}}
	if err := l.Kube.Status().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	return l
}

// announcerOn starts an announcer inside a node's namespace.
func announcerOn(t *testing.T, n *lab.Node) (*layer2.Announcer, func(map[netip.Addr][]string)) {
	t.Helper()
	a := layer2.New(testr.New(t), nil)
	t.Cleanup(a.Close)
	apply := func(want map[netip.Addr][]string) {
		t.Helper()
		if err := lab.InNetns(n.Netns, func() error { return a.Apply(want) }); err != nil {
			t.Fatal(err)
		}
	}
	return a, apply
}

func neighbourMAC(ctx context.Context, l *lab.Lab, addr netip.Addr) string {
	out, _ := l.Router.Exec(ctx, "ip", "neigh", "show", addr.String(), "dev", "eth0")
	if f := strings.Fields(out); len(f) >= 3 && f[1] == "lladdr" {
		return f[2]
	}
	return ""
}

// reachedThrough waits until the client reaches addr and the router resolves it to mac.
func reachedThrough(t *testing.T, l *lab.Lab, addr netip.Addr, mac string) {
	t.Helper()
	eventually(t, fmt.Sprintf("the router resolves %s to %s", addr, mac), func(ctx context.Context) error {
		if _, err := lab.Get(ctx, l.ClientNetns, lab.URL(addr, 80), time.Second); err != nil {
			return err
		}
		if got := neighbourMAC(ctx, l, addr); got != mac {
			return fmt.Errorf("at %q", got)
		}
		return nil
	})
}

func eventually(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	var last error
	if err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		last = f(ctx)
		return last == nil, nil
	}); err != nil {
		t.Fatalf("%s: %v", what, last)
	}
}

func TestAnnouncerInTheLab(t *testing.T) {
	l := upLab(t)
	ctx := t.Context()
	n1, n2 := l.Nodes[0], l.Nodes[1]
	a1, apply1 := announcerOn(t, n1)
	_, apply2 := announcerOn(t, n2)
	both := map[netip.Addr][]string{vip4: {"eth0"}, vip6: {"eth0"}}
	apply1(both)

	// The client reaches both addresses through the router, which resolves them to node-1.
	for _, vip := range []netip.Addr{vip4, vip6} {
		eventually(t, fmt.Sprintf("the client reaches %s", vip), func(ctx context.Context) error {
			_, err := lab.Get(ctx, l.ClientNetns, lab.URL(vip, 80), time.Second)
			return err
		})
		if got := neighbourMAC(ctx, l, vip); got != n1.MAC {
			t.Errorf("the router has %s at %q, want node-1's %s", vip, got, n1.MAC)
		}
	}
	// Exactly one MAC answers ARP.
	out, err := l.Router.Exec(ctx, "arping", "-c", "3", "-w", "3", "-I", "eth0", vip4.String())
	if err != nil {
		t.Fatalf("arping: %v\n%s", err, out)
	}
	if macs := lab.ArpingMACs(out); len(macs) != 3 || macs[0] != n1.MAC || macs[1] != n1.MAC || macs[2] != n1.MAC {
		t.Errorf("3 ARP requests should get 3 replies, all from %s; got %v:\n%s", n1.MAC, macs, out)
	}
	if a1.Stats.ARPReplies.Load() == 0 || a1.Stats.NDPAdvertisements.Load() == 0 || a1.Stats.Gratuitous.Load() == 0 {
		t.Errorf("stats: %d ARP replies, %d NDP advertisements, %d gratuitous", a1.Stats.ARPReplies.Load(), a1.Stats.NDPAdvertisements.Load(), a1.Stats.Gratuitous.Load())
	}

	// Hand over to node-2: node-1 stops answering at once; node-2's gratuitous burst moves
	// the router's caches, and the client keeps going.
	probe := lab.StartProbe(l.ClientNetns, lab.URL(vip4, 80), 10*time.Millisecond, 500*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	apply1(nil)
	apply2(both)
	for _, vip := range []netip.Addr{vip4, vip6} {
		eventually(t, fmt.Sprintf("the router moves %s to node-2", vip), func(ctx context.Context) error {
			if got := neighbourMAC(ctx, l, vip); got != n2.MAC {
				return fmt.Errorf("at %q", got)
			}
			return nil
		})
	}
	time.Sleep(300 * time.Millisecond)
	res := probe.Stop()
	t.Logf("hand-over: %d requests, %d failed, longest gap %s", len(res.Samples), res.Failed(), res.Longest())
	if res.Samples[len(res.Samples)-1].Err != nil {
		t.Errorf("the client lost the address after the hand-over: %v", res.Samples[len(res.Samples)-1].Err)
	}
	if a1.Owned()[vip4] != nil {
		t.Error("node-1 still owns the address it gave up")
	}
}

// A node that claimed an address while it could not see the owner (a speaker that had not
// joined yet) leaves the router with its MAC after it lets go; the owner's Reannounce, sent
// when the members change, puts the router right, long before the entry would age out.
func TestReannounceCorrectsAStaleNeighbour(t *testing.T) {
	l := upLab(t)
	ctx := t.Context()
	n1, n2 := l.Nodes[0], l.Nodes[1]
	a1, apply1 := announcerOn(t, n1)
	_, apply2 := announcerOn(t, n2)
	one := map[netip.Addr][]string{vip4: {"eth0"}}
	apply1(one)
	reachedThrough(t, l, vip4, n1.MAC)
	// node-2 claims it too, as a speaker alone in its cluster would, then lets go.
	apply2(one)
	eventually(t, "node-2's claim reaches the router", func(ctx context.Context) error {
		if got := neighbourMAC(ctx, l, vip4); got != n2.MAC {
			return fmt.Errorf("at %q", got)
		}
		return nil
	})
	time.Sleep(2500 * time.Millisecond) // node-2's burst is over
	apply2(nil)
	sent := a1.Stats.Gratuitous.Load()
	if err := lab.InNetns(n1.Netns, func() error { a1.Reannounce(); return nil }); err != nil {
		t.Fatal(err)
	}
	// The first gratuitous packet goes out at once; the router's reachable entry would
	// otherwise keep node-2's MAC for 15 s or more.
	deadline := time.Now().Add(5 * time.Second)
	for neighbourMAC(ctx, l, vip4) != n1.MAC {
		if time.Now().After(deadline) {
			t.Fatalf("the router still has %s at %q 5 s after node-1 re-announced it", vip4, neighbourMAC(ctx, l, vip4))
		}
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "a new burst counted", func(context.Context) error {
		if a1.Stats.Gratuitous.Load() <= sent {
			return fmt.Errorf("%d gratuitous packets, as before", a1.Stats.Gratuitous.Load())
		}
		return nil
	})
}

// Another MAC claiming an owned address (a split cluster, a device configured by hand) is
// heard, reported with its MAC and defended with one announcement, RFC 5227 style.
func TestConflictDetectedAndDefended(t *testing.T) {
	l := upLab(t)
	n1, n2 := l.Nodes[0], l.Nodes[1]
	heard := make(chan layer2.Conflict, 64)
	a1 := layer2.New(testr.New(t), func(c layer2.Conflict) {
		select {
		case heard <- c:
		default:
		}
	})
	t.Cleanup(a1.Close)
	both := map[netip.Addr][]string{vip4: {"eth0"}, vip6: {"eth0"}}
	if err := lab.InNetns(n1.Netns, func() error { return a1.Apply(both) }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // node-1's own burst is over
	_, apply2 := announcerOn(t, n2)
	apply2(both)
	got := map[netip.Addr]layer2.Conflict{}
	timeout := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case c := <-heard:
			if _, seen := got[c.Addr]; !seen {
				got[c.Addr] = c
			}
		case <-timeout:
			t.Fatalf("conflicts heard: %+v; want both addresses claimed by node-2", got)
		}
	}
	for _, vip := range []netip.Addr{vip4, vip6} {
		c := got[vip]
		if c.MAC.String() != n2.MAC || c.Interface != "eth0" || !c.Defended {
			t.Errorf("%s: %+v, want node-2's %s on eth0, defended", vip, c, n2.MAC)
		}
	}
	if n, d := a1.Stats.Conflicts.Load(), a1.Stats.Defences.Load(); n < 2 || d < 2 {
		t.Errorf("%d conflicting claims and %d defences counted", n, d)
	}
	// node-2's burst goes on; node-1 defends each address once per interval, not each claim.
	time.Sleep(2500 * time.Millisecond)
	if d := a1.Stats.Defences.Load(); d != 2 {
		t.Errorf("%d defences within one defence interval, want 2 (one per address)", d)
	}
}

// A responder follows its interface: after a MAC change, the next Apply reopens it and
// announces the address again from the new MAC, and the router follows.
func TestResponderFollowsAChangedMAC(t *testing.T) {
	l := upLab(t)
	n1 := l.Nodes[0]
	_, apply1 := announcerOn(t, n1)
	one := map[netip.Addr][]string{vip4: {"eth0"}}
	apply1(one)
	reachedThrough(t, l, vip4, n1.MAC)
	const newMAC = "02:00:00:00:04:99"
	setMAC := func(mac string) error {
		out, err := exec.Command("ip", "-n", n1.Netns, "link", "set", "dev", "eth0", "address", mac).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	if err := setMAC(newMAC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := setMAC(n1.MAC); err != nil {
			t.Error(err)
		}
	})
	apply1(one)
	eventually(t, "the router moves to the new MAC", func(ctx context.Context) error {
		if got := neighbourMAC(ctx, l, vip4); got != newMAC {
			return fmt.Errorf("at %q", got)
		}
		if _, err := lab.Get(ctx, l.ClientNetns, lab.URL(vip4, 80), time.Second); err != nil {
			return err
		}
		return nil
	})
}
