// Command l2failover measures layer-2 fail-over in the lab: the client-visible gap when the
// node announcing a Service's address loses power (every process SIGKILLed, link down) and
// when its speaker is stopped gracefully (SIGTERM), over many trials; then whether any
// address moves during a run with both cores kept busy. It prints p50 / p95 / max.
//
// Endpoints on the node about to fail are marked not ready first: dropping a dead node's
// endpoints is Kubernetes' job (node lifecycle, ~40 s), and this measures vipcast's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
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
	nodes := flag.Int("nodes", 3, "nodes in the lab")
	trials := flag.Int("trials", 20, "trials per kind of failure")
	busy := flag.Duration("busy", 2*time.Minute, "length of the run with both cores busy (0 skips it)")
	index := flag.Int("index", 5, "lab index")
	lbs := flag.String("lb", "vipcast,metallb", "what to measure, one after the other in a fresh lab each: vipcast, metallb (v0.16.1 from bin/, memberlist on)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p50s := map[string]map[string]time.Duration{}
	for _, lb := range strings.Split(*lbs, ",") {
		if lb != "vipcast" && lb != "metallb" {
			fmt.Fprintf(os.Stderr, "l2failover: -lb %q: vipcast or metallb\n", lb)
			os.Exit(2)
		}
		got, err := run(ctx, lb, *index, *nodes, *trials, *busy)
		if err != nil {
			fmt.Fprintf(os.Stderr, "l2failover (%s): %v\n", lb, err)
			os.Exit(1)
		}
		p50s[lb] = got
	}
	if v, m := p50s["vipcast"], p50s["metallb"]; v != nil && m != nil {
		fmt.Println("Side by side, same lab, same run (p50 of the client-visible gap):")
		for _, kind := range kinds {
			ratio := "-"
			if v[kind] > 0 {
				ratio = fmt.Sprintf("%.1f×", float64(m[kind])/float64(v[kind]))
			}
			fmt.Printf("  %-13s  vipcast %6s  MetalLB %6s  MetalLB/vipcast %s\n", kind, benchlab.Ms(v[kind]), benchlab.Ms(m[kind]), ratio)
		}
	}
}

// moveTimeout bounds the wait for the address to move and answer again: MetalLB on a
// loaded machine has been seen to need more than 30 s.
const moveTimeout = 90 * time.Second

// kinds are the failures measured.
var kinds = []string{"power cut", "graceful stop"}

type bench struct {
	ctx context.Context
	lab *lab.Lab
	web *benchlab.Web
	// metallb: MetalLB announces, not vipcast; owners are read from the wire.
	metallb bool
}

func run(ctx context.Context, lb string, index, nodes, trials int, busy time.Duration) (map[string]time.Duration, error) {
	root, err := lab.RepoRoot()
	if err != nil {
		return nil, err
	}
	l, err := lab.Up(ctx, lab.Config{Index: index, Nodes: nodes})
	if err != nil {
		return nil, err
	}
	defer l.Down(context.Background())
	b := &bench{ctx: ctx, lab: l, metallb: lb == "metallb"}
	if err := b.setup(root); err != nil {
		fmt.Println(l.Logs(20))
		return nil, err
	}
	name := map[bool]string{false: "vipcast", true: "MetalLB v0.16.1 (memberlist on, its defaults)"}[b.metallb]
	fmt.Printf("L2 fail-over, %s, %d nodes, %d trials each, probe every 10 ms from the client behind the router\n", name, nodes, trials)
	p50 := map[string]time.Duration{}
	for _, kind := range kinds {
		var gaps []time.Duration
		failed := 0
		for i := range trials {
			gap, lost, err := b.trial(kind)
			if err != nil {
				fmt.Println(l.Logs(20))
				return nil, fmt.Errorf("%s trial %d: %w", kind, i+1, err)
			}
			gaps = append(gaps, gap)
			failed += lost
		}
		slices.Sort(gaps)
		p50[kind] = benchlab.Pct(gaps, 50)
		fmt.Printf("  %-13s  p50 %6s  p95 %6s  max %6s  (requests failed: %d in %d trials)\n", kind,
			benchlab.Ms(p50[kind]), benchlab.Ms(benchlab.Pct(gaps, 95)), benchlab.Ms(gaps[len(gaps)-1]), failed, trials)
	}
	if busy > 0 {
		return p50, b.busyRun(busy)
	}
	return p50, nil
}

func (b *bench) setup(root string) error {
	ctx, l := b.ctx, b.lab
	var err error
	if b.metallb {
		b.web, _, err = benchlab.StartWebMetalLB(ctx, l, benchlab.MetalLBL2)
		if err != nil {
			return err
		}
		return benchlab.Poll(ctx, 60*time.Second, func(ctx context.Context) error {
			_, err := lab.Get(ctx, l.ClientNetns, lab.URL(b.web.VIP, 80), time.Second)
			return err
		})
	}
	b.web, err = benchlab.StartWeb(ctx, l, root,
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []v1alpha1.AddressRange{"192.0.2.240/28"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "l2"}})
	if err != nil {
		return err
	}
	return benchlab.Poll(ctx, 60*time.Second, func(ctx context.Context) error {
		_, err := lab.Get(ctx, l.ClientNetns, lab.URL(b.web.VIP, 80), time.Second)
		return err
	})
}

// owner waits for exactly one live announcer among the running nodes.
func (b *bench) owner(exclude string) (*lab.Node, error) {
	if b.metallb {
		return b.wireOwner(exclude)
	}
	var got string
	err := benchlab.Poll(b.ctx, moveTimeout, func(ctx context.Context) error {
		all, err := b.lab.Announcers(ctx, b.web.VIP)
		if err != nil {
			return err
		}
		all = slices.DeleteFunc(all, func(n string) bool { return n == exclude })
		if len(all) != 1 {
			return fmt.Errorf("announced by %v", all)
		}
		got = all[0]
		return nil
	})
	return b.lab.Node(got), err
}

// trial fails the owner one way, measures the gap and brings everything back.
func (b *bench) trial(kind string) (time.Duration, int, error) {
	old, err := b.owner("")
	if err != nil {
		return 0, 0, err
	}
	if err := b.web.SetReady(b.ctx, old.Name, false); err != nil {
		return 0, 0, err
	}
	time.Sleep(time.Second) // EndpointSlice controller and kube-proxy apply it
	probe := lab.StartProbe(b.lab.ClientNetns, lab.URL(b.web.VIP, 80), 10*time.Millisecond, 300*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if kind == "power cut" {
		err = old.PowerOff(b.ctx)
	} else {
		// A speaker stopping on a healthy node keeps its addresses for its restart; on a
		// node being drained it hands them over, which is what this measures.
		if err = b.cordon(old.Name, true); err == nil {
			err = old.Process(b.speakerName()).Signal(syscall.SIGTERM)
		}
	}
	if err != nil {
		probe.Stop()
		return 0, 0, err
	}
	_, ownerErr := b.owner(old.Name)
	reachErr := benchlab.Poll(b.ctx, moveTimeout, func(ctx context.Context) error {
		_, err := lab.Get(ctx, b.lab.ClientNetns, lab.URL(b.web.VIP, 80), time.Second)
		return err
	})
	time.Sleep(300 * time.Millisecond)
	res := probe.Stop()
	// Bring the node back and let it rejoin before the next trial.
	if kind == "power cut" {
		err = old.PowerOn(b.ctx)
	} else {
		<-old.Process(b.speakerName()).Exited()
		err = old.Process(b.speakerName()).Start()
	}
	if kind != "power cut" {
		err = errors.Join(err, b.cordon(old.Name, false))
	}
	if err := errors.Join(ownerErr, reachErr, err, b.web.SetReady(b.ctx, old.Name, true)); err != nil {
		return 0, 0, err
	}
	if err := b.settle(); err != nil {
		return 0, 0, err
	}
	return res.Longest(), res.Failed(), nil
}

// speakerName is the name of the announcing program on a node.
func (b *bench) speakerName() string {
	if b.metallb {
		return "metallb-speaker"
	}
	return "speaker"
}

// wireOwner waits until a node other than exclude answers the router's ARP request for
// the address (MetalLB reports no owner; the wire does).
func (b *bench) wireOwner(exclude string) (*lab.Node, error) {
	var got *lab.Node
	err := benchlab.PollEvery(b.ctx, 50*time.Millisecond, moveTimeout, func(ctx context.Context) error {
		out, _ := lab.Exec(ctx, b.lab.Router.Netns, "arping", "-c", "1", "-w", "1", "-I", "eth0", b.web.VIP.String())
		for _, mac := range lab.ArpingMACs(out) {
			for _, n := range b.lab.Nodes {
				if n.MAC == mac && n.Name != exclude {
					got = n
					return nil
				}
			}
		}
		return fmt.Errorf("no answer but from %s", exclude)
	})
	return got, err
}

// settle waits until the speakers agree again after a node came back: every SpeakerStatus
// lists every member; with MetalLB, which reports nothing, until the same node has answered
// for the address for 3 s (its memberlist takes a few seconds to take the node back, and
// the address may then move back to it).
func (b *bench) settle() error {
	if !b.metallb {
		return b.waitMembers(len(b.lab.Nodes))
	}
	time.Sleep(5 * time.Second)
	last, same := "", 0
	return benchlab.PollEvery(b.ctx, 500*time.Millisecond, 60*time.Second, func(context.Context) error {
		n, err := b.wireOwner("")
		if err != nil {
			return err
		}
		if n.Name == last {
			same++
		} else {
			last, same = n.Name, 0
		}
		if same < 6 {
			return fmt.Errorf("%s for %d checks", last, same)
		}
		return nil
	})
}

// cordon marks a node unschedulable or not, as kubectl cordon and uncordon do.
func (b *bench) cordon(node string, on bool) error {
	var n corev1.Node
	if err := b.lab.Kube.Get(b.ctx, client.ObjectKey{Name: node}, &n); err != nil {
		return err
	}
	patch := client.MergeFrom(n.DeepCopy())
	n.Spec.Unschedulable = on
	return b.lab.Kube.Patch(b.ctx, &n, patch)
}

// waitMembers waits until every speaker sees n members.
func (b *bench) waitMembers(n int) error {
	return benchlab.Poll(b.ctx, 60*time.Second, func(ctx context.Context) error {
		var list v1alpha1.SpeakerStatusList
		if err := b.lab.Kube.List(ctx, &list); err != nil {
			return err
		}
		for _, st := range list.Items {
			if len(st.Status.Members) != n {
				return fmt.Errorf("%s sees %v", st.Name, st.Status.Members)
			}
		}
		return nil
	})
}

// busyRun keeps both cores busy and counts how often the address changes owner and how many
// requests fail; both should be zero.
func (b *bench) busyRun(d time.Duration) error {
	var burners []*exec.Cmd
	for range 2 {
		c := exec.Command("sh", "-c", "while :; do :; done")
		if err := c.Start(); err != nil {
			return err
		}
		burners = append(burners, c)
	}
	defer func() {
		for _, c := range burners {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	first, err := b.owner("")
	if err != nil {
		return err
	}
	probe := lab.StartProbe(b.lab.ClientNetns, lab.URL(b.web.VIP, 80), 10*time.Millisecond, time.Second)
	moves := 0
	last := first.Name
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var all []string
		if b.metallb {
			if n, err := b.wireOwner(""); err == nil {
				all = []string{n.Name}
			}
		} else {
			all, _ = b.lab.Announcers(b.ctx, b.web.VIP)
		}
		if len(all) == 1 && all[0] != last {
			moves++
			last = all[0]
		}
	}
	res := probe.Stop()
	fmt.Printf("  busy %s, both cores spinning: address moved %d times, %d of %d requests failed, longest gap %s\n",
		d, moves, res.Failed(), len(res.Samples), benchlab.Ms(res.Longest()))
	return nil
}
