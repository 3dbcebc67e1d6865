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
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
	"github.com/vipcast/vipcast/test/lab"
)

func main() {
	lab.ServeChild()
	nodes := flag.Int("nodes", 3, "nodes in the lab")
	trials := flag.Int("trials", 20, "trials per kind of failure")
	busy := flag.Duration("busy", 2*time.Minute, "length of the run with both cores busy (0 skips it)")
	index := flag.Int("index", 5, "lab index")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *index, *nodes, *trials, *busy); err != nil {
		fmt.Fprintln(os.Stderr, "l2failover:", err)
		os.Exit(1)
	}
}

type bench struct {
	ctx context.Context
	lab *lab.Lab
	web *benchlab.Web
}

func run(ctx context.Context, index, nodes, trials int, busy time.Duration) error {
	root, err := lab.RepoRoot()
	if err != nil {
		return err
	}
	l, err := lab.Up(ctx, lab.Config{Index: index, Nodes: nodes})
	if err != nil {
		return err
	}
	defer l.Down(context.Background())
	b := &bench{ctx: ctx, lab: l}
	if err := b.setup(root); err != nil {
		fmt.Println(l.Logs(20))
		return err
	}
	fmt.Printf("L2 fail-over, %d nodes, %d trials each, probe every 10 ms from the client behind the router\n", nodes, trials)
	for _, kind := range []string{"power cut", "graceful stop"} {
		var gaps []time.Duration
		failed := 0
		for i := range trials {
			gap, lost, err := b.trial(kind)
			if err != nil {
				return fmt.Errorf("%s trial %d: %w", kind, i+1, err)
			}
			gaps = append(gaps, gap)
			failed += lost
		}
		slices.Sort(gaps)
		fmt.Printf("  %-13s  p50 %6s  p95 %6s  max %6s  (requests failed: %d in %d trials)\n", kind,
			benchlab.Ms(benchlab.Pct(gaps, 50)), benchlab.Ms(benchlab.Pct(gaps, 95)), benchlab.Ms(gaps[len(gaps)-1]), failed, trials)
	}
	if busy > 0 {
		return b.busyRun(busy)
	}
	return nil
}

func (b *bench) setup(root string) error {
	ctx, l := b.ctx, b.lab
	var err error
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
	var got string
	err := benchlab.Poll(b.ctx, 30*time.Second, func(ctx context.Context) error {
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
			err = old.Process("speaker").Signal(syscall.SIGTERM)
		}
	}
	if err != nil {
		probe.Stop()
		return 0, 0, err
	}
	_, ownerErr := b.owner(old.Name)
	reachErr := benchlab.Poll(b.ctx, 30*time.Second, func(ctx context.Context) error {
		_, err := lab.Get(ctx, b.lab.ClientNetns, lab.URL(b.web.VIP, 80), time.Second)
		return err
	})
	time.Sleep(300 * time.Millisecond)
	res := probe.Stop()
	// Bring the node back and let it rejoin before the next trial.
	if kind == "power cut" {
		err = old.PowerOn(b.ctx)
	} else {
		<-old.Process("speaker").Exited()
		err = old.Process("speaker").Start()
	}
	if kind != "power cut" {
		err = errors.Join(err, b.cordon(old.Name, false))
	}
	if err := errors.Join(ownerErr, reachErr, err, b.web.SetReady(b.ctx, old.Name, true)); err != nil {
		return 0, 0, err
	}
	if err := b.waitMembers(len(b.lab.Nodes)); err != nil {
		return 0, 0, err
	}
	return res.Longest(), res.Failed(), nil
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
		all, err := b.lab.Announcers(b.ctx, b.web.VIP)
		if err == nil && len(all) == 1 && all[0] != last {
			moves++
			last = all[0]
		}
	}
	res := probe.Stop()
	fmt.Printf("  busy %s, both cores spinning: address moved %d times, %d of %d requests failed, longest gap %s\n",
		d, moves, res.Failed(), len(res.Samples), benchlab.Ms(res.Longest()))
	return nil
}
