package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

// speakerCondition reads a condition of a node's SpeakerStatus (nil when absent).
func speakerCondition(ctx context.Context, node, typ string) (*metav1.Condition, error) {
	var st v1alpha1.SpeakerStatus
	if err := cluster.Kube.Get(ctx, client.ObjectKey{Name: node}, &st); err != nil {
		return nil, err
	}
	return meta.FindStatusCondition(st.Status.Conditions, typ), nil
}

// allReady waits until every speaker is Ready and sees every node.
func allReady(t *testing.T) {
	t.Helper()
	eventually(t, 60*time.Second, "every speaker Ready with all members", speakersReady)
}

// speakersReady tells whether every speaker is Ready and sees every node.
func speakersReady(ctx context.Context) error {
	var list v1alpha1.SpeakerStatusList
	if err := cluster.Kube.List(ctx, &list); err != nil {
		return err
	}
	if len(list.Items) != len(cluster.Nodes) {
		return fmt.Errorf("%d SpeakerStatuses", len(list.Items))
	}
	for _, st := range list.Items {
		c := meta.FindStatusCondition(st.Status.Conditions, "Ready")
		if c == nil || c.Status != metav1.ConditionTrue || len(st.Status.Members) != len(cluster.Nodes) {
			return fmt.Errorf("%s: members %v, Ready %+v", st.Name, st.Status.Members, c)
		}
	}
	return nil
}

// readyAfterCleanup waits, in a cleanup (the test's context is gone), for every speaker to
// be Ready again.
func readyAfterCleanup(t *testing.T) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		return speakersReady(ctx) == nil, nil
	})
	if err != nil {
		t.Errorf("the speakers are not all Ready after the test: %v", speakersReady(context.Background()))
	}
}

// webEverywhere deploys web on every node behind a dual-stack L2 Service in a namespace of
// the test's, and waits until the client reaches its IPv4 address.
func webEverywhere(t *testing.T) (ns string, svc *corev1.Service, v4, v6 netip.Addr) {
	t.Helper()
	ns = namespace(t)
	deploy(t, ns, "web", "node-1", "node-2", "node-3")
	svc, v4, v6 = l2Service(t, ns, "web", nil)
	reach(t, v4)
	return ns, svc, v4, v6
}

// otherNodes names the nodes but n.
func otherNodes(n *lab.Node) []string {
	var out []string
	for _, o := range cluster.Nodes {
		if o != n {
			out = append(out, o.Name)
		}
	}
	return out
}

// macNode names the node of a fabric MAC, for messages.
func macNode(mac string) string {
	for _, n := range cluster.Nodes {
		if n.MAC == mac {
			return n.Name
		}
	}
	return mac
}

// watchBoth starts a claim watch on the router's wire for each address.
func watchBoth(t *testing.T, addrs ...netip.Addr) []*lab.ClaimWatch {
	t.Helper()
	var out []*lab.ClaimWatch
	for _, a := range addrs {
		w, err := lab.StartClaimWatch(cluster.Router.Netns, "eth0", a, 10*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Stop() })
		out = append(out, w)
	}
	return out
}

// noOverlap fails the test for every 10 ms slot in which two MACs claimed the address.
func noOverlap(t *testing.T, r lab.ClaimResult) {
	t.Helper()
	slots := r.TwoMACSlots()
	for i, s := range slots {
		if i == 5 {
			t.Errorf("... %d more", len(slots)-5)
			break
		}
		var who []string
		for _, m := range s.MACs {
			who = append(who, macNode(m))
		}
		t.Errorf("%s: two claimants in the slot at %s: %v", r.Addr, s.At.Sub(r.Start).Round(time.Millisecond), who)
	}
}

// A rolling restart of every speaker, as a DaemonSet update does it: the others hold each
// restarting speaker's addresses, so no address moves, no request fails and no two MACs
// ever answer for an address in the same 10 ms.
func TestRollingRestartOnTheWire(t *testing.T) {
	_, _, v4, v6 := webEverywhere(t)
	reach(t, v6)
	allReady(t)
	probe4 := lab.StartProbe(cluster.ClientNetns, lab.URL(v4, 80), 10*time.Millisecond, 500*time.Millisecond)
	probe6 := lab.StartProbe(cluster.ClientNetns, lab.URL(v6, 80), 10*time.Millisecond, 500*time.Millisecond)
	watches := watchBoth(t, v4, v6)
	time.Sleep(300 * time.Millisecond)
	for _, n := range cluster.Nodes {
		sp := n.Process("speaker")
		if err := sp.Stop(10 * time.Second); err != nil {
			t.Fatalf("stopping %s's speaker: %v", n.Name, err)
		}
		time.Sleep(500 * time.Millisecond) // the pod is replaced: a moment without a speaker
		if err := sp.Start(); err != nil {
			t.Fatal(err)
		}
		allReady(t)
		owner(t, v4) // one node announces each address again
		owner(t, v6)
	}
	for i, p := range []*lab.Prober{probe4, probe6} {
		res := p.Stop()
		w := watches[i].Stop()
		t.Logf("%s: %d requests, %d failed; on the wire: %s", w.Addr, len(res.Samples), res.Failed(), w)
		for _, x := range res.Samples {
			if x.Err != nil {
				t.Logf("%s: request sent at %s failed after %s: %v", w.Addr, x.Sent.Sub(w.Start).Round(time.Millisecond), x.Took.Round(time.Millisecond), x.Err)
			}
		}
		for _, g := range res.Gaps() {
			t.Errorf("%s: %d requests failed from %s to %s", w.Addr, g.Failed, g.From.Sub(w.Start).Round(time.Millisecond), g.To.Sub(w.Start).Round(time.Millisecond))
		}
		noOverlap(t, w)
		var spans []string
		for _, s := range w.Spans() {
			spans = append(spans, fmt.Sprintf("%s×%d [%s–%s]", macNode(s.MAC), s.Claims, s.First.Sub(w.Start).Round(time.Millisecond), s.Last.Sub(w.Start).Round(time.Millisecond)))
		}
		t.Logf("%s owners in turn: %s", w.Addr, strings.Join(spans, " → "))
		if owners := w.ByMAC(); len(owners) != 1 {
			t.Errorf("%s moved between %d MACs during the rolling restart", w.Addr, len(owners))
		}
	}
}

// A speaker that can reach no other speaker (its memberlist port blocked) announces nothing
// while the others live, and says why; unblocked, it joins.
func TestUnjoinableSpeakerAnnouncesNothing(t *testing.T) {
	_, _, v4, _ := webEverywhere(t)
	allReady(t)
	n := cluster.Node("node-3")
	sp := n.Process("speaker")
	if err := sp.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.BlockMemberlist(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Unblock(context.Background()); err != nil {
			t.Error(err)
		}
	})
	w := watchBoth(t, v4)[0]
	if err := sp.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "node-3 Ready=False, Joining", func(ctx context.Context) error {
		c, err := speakerCondition(ctx, "node-3", "Ready")
		if err == nil && (c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Joining") {
			err = fmt.Errorf("Ready %+v", c)
		}
		return err
	})
	// Well past the join timeout (10 s): still nothing from node-3.
	time.Sleep(12 * time.Second)
	res := w.Stop()
	if got := res.ByMAC()[n.MAC]; got > 0 {
		t.Errorf("node-3, which never joined, claimed %s %d times", v4, got)
	}
	if nodes, err := cluster.Announcers(t.Context(), v4); err != nil || slices.Contains(nodes, "node-3") || len(nodes) != 1 {
		t.Errorf("announced by %v (%v)", nodes, err)
	}
	c, err := speakerCondition(t.Context(), "node-3", "Ready")
	if err != nil || c == nil || c.Reason != "Joining" || !strings.Contains(c.Message, "node-1") {
		t.Errorf("node-3's Ready after the join timeout: %+v (%v)", c, err)
	}
	if err := n.Unblock(t.Context()); err != nil {
		t.Fatal(err)
	}
	allReady(t)
}

// A partition makes both sides claim the address: the conflict is reported (Event, metric,
// condition); after healing one MAC answers and the router holds the owner's.
func TestPartitionConflict(t *testing.T) {
	_, _, v4, v6 := webEverywhere(t)
	allReady(t)
	own := owner(t, v4)
	own6 := owner(t, v6)
	// Cut off a node that owns neither address (three nodes, two addresses: there is one):
	// alone, it claims everything, and the owners, on the side the controller sees alive,
	// keep the addresses and report the conflict.
	var cut *lab.Node
	var others []*lab.Node
	for _, n := range cluster.Nodes {
		if n != own && n != own6 && cut == nil {
			cut = n
		} else {
			others = append(others, n)
		}
	}
	if err := cut.BlockMemberlist(t.Context(), others...); err != nil {
		t.Fatal(err)
	}
	healed := false
	t.Cleanup(func() {
		if !healed {
			_ = cut.Unblock(context.Background())
		}
	})
	// The cut-off speaker claims what it now thinks is its own; the first defence it hears
	// makes it yield the rest, so which addresses were claimed twice depends on the timing
	// and on the other tests' Services: look for any claim by the cut-off node's MAC.
	var reporter, ip string
	eventually(t, 30*time.Second, "a conflict with "+cut.Name+" reported in a SpeakerStatus", func(ctx context.Context) error {
		var list v1alpha1.SpeakerStatusList
		if err := cluster.Kube.List(ctx, &list); err != nil {
			return err
		}
		for _, st := range list.Items {
			if st.Name == cut.Name || !meta.IsStatusConditionTrue(st.Status.Conditions, "Conflict") {
				continue
			}
			for _, x := range st.Status.Conflicts {
				if x.MAC == cut.MAC && x.Node == cut.Name {
					reporter, ip = st.Name, x.IP
					t.Logf("%s reports %s also claimed by %s", st.Name, x.IP, x.Node)
					return nil
				}
			}
		}
		return fmt.Errorf("no conflict with %s reported", cut.Name)
	})
	eventually(t, 30*time.Second, "an AddressConflict Event on the Service holding "+ip, func(ctx context.Context) error {
		var svcs corev1.ServiceList
		if err := cluster.Kube.List(ctx, &svcs); err != nil {
			return err
		}
		holders := map[string]bool{}
		for _, s := range svcs.Items {
			for _, in := range s.Status.LoadBalancer.Ingress {
				if in.IP == ip {
					holders[s.Namespace+"/"+s.Name] = true
				}
			}
		}
		var evs eventsv1.EventList
		if err := cluster.Kube.List(ctx, &evs); err != nil {
			return err
		}
		for _, e := range evs.Items {
			// A repeat within minutes is counted in the first Event's series, which keeps
			// the first note: any AddressConflict Event on the holder will do.
			if e.Reason == "AddressConflict" && holders[e.Regarding.Namespace+"/"+e.Regarding.Name] {
				t.Logf("Event on %s/%s: %s", e.Regarding.Namespace, e.Regarding.Name, e.Note)
				return nil
			}
		}
		return fmt.Errorf("%d Events, no AddressConflict on %v", len(evs.Items), holders)
	})
	eventually(t, 30*time.Second, "the conflict counted by "+reporter, func(ctx context.Context) error {
		body, err := lab.Get(ctx, cluster.Node(reporter).Netns, "http://127.0.0.1:7474/metrics", time.Second)
		if err == nil && !strings.Contains(body, `vipcast_speaker_address_conflicts_total{claimant="speaker"}`) {
			err = errors.New("not counted")
		}
		return err
	})
	eventually(t, 30*time.Second, "the Announced condition of the Service holding "+ip+" shows the conflict", func(ctx context.Context) error {
		var svcs corev1.ServiceList
		if err := cluster.Kube.List(ctx, &svcs); err != nil {
			return err
		}
		for _, s := range svcs.Items {
			for _, in := range s.Status.LoadBalancer.Ingress {
				if in.IP != ip {
					continue
				}
				if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAnnounced); c == nil || c.Reason != "Conflict" {
					return fmt.Errorf("%s/%s: Announced %+v", s.Namespace, s.Name, c)
				}
				return nil
			}
		}
		return fmt.Errorf("no Service holds %s", ip)
	})
	if err := cut.Unblock(t.Context()); err != nil {
		t.Fatal(err)
	}
	healed = true
	allReady(t)
	final := owner(t, v4)
	eventually(t, 30*time.Second, "the router holds the owner's MAC", func(ctx context.Context) error {
		if got := routerMAC(ctx, v4); got != final.MAC {
			return fmt.Errorf("at %s, the owner is %s", macNode(got), final.Name)
		}
		return nil
	})
	w := watchBoth(t, v4)[0]
	time.Sleep(time.Second)
	res := w.Stop()
	if macs := res.ByMAC(); len(macs) != 1 || macs[final.MAC] == 0 {
		t.Errorf("after healing, claims by %v; want only %s's %s", macs, final.Name, final.MAC)
	}
	reach(t, v4)
}

// A device that is no speaker claiming an address: the owner names its MAC in an Event.
func TestForeignDeviceConflict(t *testing.T) {
	ns, svc, v4, _ := webEverywhere(t)
	own := owner(t, v4)
	dev, err := cluster.AddDevice(t.Context(), "rogue", 91)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.RemoveDevice(context.Background(), dev) })
	ctx := t.Context()
	if out, err := lab.Exec(ctx, dev.Netns, "ip", "addr", "add", v4.String()+"/32", "dev", "eth0"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// It announces the address as a host configured by hand does.
	// (No reply is expected to an unsolicited ARP: arping's exit status says nothing here.)
	out, _ := lab.Exec(ctx, dev.Netns, "arping", "-U", "-c", "2", "-i", "eth0", "-S", v4.String(), v4.String())
	t.Logf("the device announced %s: %s", v4, strings.TrimSpace(out))
	eventually(t, 30*time.Second, "an Event naming the device's MAC", func(ctx context.Context) error {
		var evs eventsv1.EventList
		if err := cluster.Kube.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "AddressConflict" && e.Regarding.Name == svc.Name && strings.Contains(e.Note, dev.MAC) && strings.Contains(e.Note, "no speaker") {
				return nil
			}
		}
		return fmt.Errorf("%d Events, none naming %s", len(evs.Items), dev.MAC)
	})
	eventually(t, 30*time.Second, own.Name+"'s Conflict condition names the device", func(ctx context.Context) error {
		c, err := speakerCondition(ctx, own.Name, "Conflict")
		if err == nil && (c == nil || c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, dev.MAC)) {
			err = fmt.Errorf("Conflict %+v", c)
		}
		return err
	})
}

// The owner's interface changes under it: re-created with a new MAC (and index), the router
// moves to the new MAC; a link down hands the address to another node; up again, all is well.
func TestOwnerInterfaceChanges(t *testing.T) {
	_, _, v4, _ := webEverywhere(t)
	allReady(t)
	own := owner(t, v4)
	ctx := t.Context()
	const newMAC = "02:00:00:00:09:99"
	recreate := func(ctx context.Context, mac string) error {
		if err := own.RecreateLink(ctx, mac); err != nil {
			return err
		}
		// The kernel tells the neighbours of the node's own address's new MAC, as hosts are
		// set up to (a fresh link starts with the defaults).
		out, err := lab.Exec(ctx, own.Netns, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.arp_notify=1", "net.ipv6.conf.eth0.ndisc_notify=1")
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		// arp_notify speaks on the next link up: bounce the new link once.
		for _, state := range []bool{false, true} {
			if err := own.SetLink(ctx, state); err != nil {
				return err
			}
		}
		return nil
	}
	if err := recreate(ctx, newMAC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := recreate(context.Background(), own.MAC); err != nil {
			t.Error(err)
		}
		readyAfterCleanup(t)
	})
	eventually(t, 30*time.Second, "the router moves "+v4.String()+" to the new MAC and the client gets answers", func(ctx context.Context) error {
		if got := routerMAC(ctx, v4); got != newMAC {
			return fmt.Errorf("at %s", got)
		}
		_, err := getFrom(ctx, cluster.ClientNetns, v4, 80, time.Second)
		return err
	})
	allReady(t)
	// Link down: another node takes over.
	if err := own.SetLink(ctx, false); err != nil {
		t.Fatal(err)
	}
	up := func(ctx context.Context) error { return own.SetLink(ctx, true) }
	t.Cleanup(func() { _ = up(context.Background()) })
	others := otherNodes(own)
	next := owner(t, v4, others...)
	eventually(t, 30*time.Second, "the client gets answers from "+next.Name, func(ctx context.Context) error {
		_, err := getFrom(ctx, cluster.ClientNetns, v4, 80, time.Second)
		return err
	})
	if err := up(ctx); err != nil {
		t.Fatal(err)
	}
	allReady(t)
	reach(t, v4)
}

// The node the election prefers has the interface excluded: another node announces the
// address, and the excluded interface is not in its SpeakerStatus.
func TestExcludedInterfaceGoesElsewhere(t *testing.T) {
	_, _, v4, _ := webEverywhere(t)
	allReady(t)
	own := owner(t, v4)
	sp := own.Process("speaker")
	argv := slices.Clone(sp.Argv)
	if err := sp.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	sp.Argv = append(slices.Clone(argv), "--exclude-interfaces=eth0")
	t.Cleanup(func() {
		_ = sp.Stop(10 * time.Second)
		sp.Argv = argv
		if err := sp.Start(); err != nil {
			t.Error(err)
		}
		readyAfterCleanup(t)
	})
	if err := sp.Start(); err != nil {
		t.Fatal(err)
	}
	allReady(t)
	others := otherNodes(own)
	next := owner(t, v4)
	if !slices.Contains(others, next.Name) {
		t.Fatalf("%s announces %s with its only interface excluded", next.Name, v4)
	}
	var st v1alpha1.SpeakerStatus
	if err := cluster.Kube.Get(t.Context(), client.ObjectKey{Name: own.Name}, &st); err != nil {
		t.Fatal(err)
	}
	for _, i := range st.Status.Interfaces {
		if i.Name == "eth0" {
			t.Errorf("%s reports eth0, which it excludes", own.Name)
		}
	}
	reach(t, v4)
}
