// Command l2safety measures, from the wire, whether layer-2 speakers ever answer for an
// address two at a time. A claim watch on the router's fabric port asks who has the Service's
// address every 10 ms and records every frame that claims it.
//
// Part 1 is a rolling restart, as a DaemonSet update does it: each speaker in turn gets
// SIGTERM, is started again, and the next one goes once every speaker lists all nodes as
// members and is Ready. Per round it counts the client's failed requests (HTTP every 10 ms),
// the 10 ms slots in which two MACs claimed the address, the frames in those slots from a
// MAC other than the one that owned the address just before, and the owner changes.
//
// Part 2 cuts one node's memberlist off from the others for 5 s, so both sides claim the
// address, and times: the block until both claims show on the wire, the first two-MAC slot
// until a SpeakerStatus reports the conflict, and the unblock until the last two-MAC slot and
// until the router's neighbour entry holds the MAC of the owner SpeakerStatus names.
//
// It prints figures and never asserts them; it fails only when the lab cannot be set up or
// the speakers do not settle.
package main

import (
	"context"
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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
	"github.com/vipcast/vipcast/test/lab"
)

const (
	// probeEvery and claimEvery are the rates of the client's requests and of the router's
	// questions (a claim watch's slot is claimEvery long).
	probeEvery = 10 * time.Millisecond
	claimEvery = 10 * time.Millisecond
	// probeTimeout bounds one request.
	probeTimeout = 300 * time.Millisecond
	// statusEvery is how often Part 2 reads the SpeakerStatuses.
	statusEvery = 50 * time.Millisecond
	// partitionFor is how long Part 2 keeps a node's memberlist cut off.
	partitionFor = 5 * time.Second
	// leadIn runs the watches before the first action; tail keeps them running after the last
	// one, so a late claim still shows.
	leadIn = 300 * time.Millisecond
	tail   = 2 * time.Second
	// stopTimeout bounds a speaker's exit after SIGTERM; settleTimeout the wait for all
	// members and Ready; neighTimeout the wait for the router's neighbour entry.
	stopTimeout   = 30 * time.Second
	settleTimeout = 90 * time.Second
	neighTimeout  = 60 * time.Second
	// routerDev is the router's fabric interface.
	routerDev = "eth0"
	// conditionReady and conditionConflict are the SpeakerStatus condition types.
	conditionReady    = "Ready"
	conditionConflict = "Conflict"
)

func main() {
	lab.ServeChild()
	// The clients' warnings are not figures.
	ctrllog.SetLogger(logr.Discard())
	nodes := flag.Int("nodes", 3, "nodes in the lab")
	rounds := flag.Int("rounds", 10, "rolling restarts of every speaker (0 skips them)")
	trials := flag.Int("partition-trials", 5, "memberlist partitions (0 skips them)")
	index := flag.Int("index", 9, "lab index (1 is the e2e tests', 4 to 8 other benchmarks')")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *index, *nodes, *rounds, *trials); err != nil {
		fmt.Fprintln(os.Stderr, "l2safety:", err)
		os.Exit(1)
	}
}

type bench struct {
	ctx  context.Context
	lab  *lab.Lab
	web  *benchlab.Web
	vips []netip.Addr      // the Service's addresses, IPv4 first
	name map[string]string // node name by fabric MAC
}

func run(ctx context.Context, index, nodes, rounds, trials int) error {
	root, err := lab.RepoRoot()
	if err != nil {
		return err
	}
	l, err := lab.Up(ctx, lab.Config{Index: index, Nodes: nodes})
	if err != nil {
		return err
	}
	defer l.Down(context.Background())
	b := &bench{ctx: ctx, lab: l, name: map[string]string{}}
	for _, n := range l.Nodes {
		b.name[n.MAC] = n.Name
	}
	if err := b.setup(root); err != nil {
		fmt.Println(l.Logs(20))
		return err
	}
	if rounds > 0 {
		if err := b.rollingRestarts(rounds); err != nil {
			fmt.Println(l.Logs(20))
			return err
		}
	}
	if trials > 0 {
		if err := b.partitions(trials); err != nil {
			fmt.Println(l.Logs(20))
			return err
		}
	}
	return nil
}

// setup starts the controller, the speakers, the pool, the Service and its pods, and waits
// until the client reaches every address of the Service and one node announces each.
func (b *bench) setup(root string) error {
	ctx, l := b.ctx, b.lab
	var err error
	b.web, err = benchlab.StartWeb(ctx, l, root,
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []v1alpha1.AddressRange{"192.0.2.240/28"}}},
		&v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "l2"}})
	if err != nil {
		return err
	}
	var svc corev1.Service
	if err := l.Kube.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &svc); err != nil {
		return err
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			b.vips = append(b.vips, a)
		}
	}
	slices.SortFunc(b.vips, func(x, y netip.Addr) int { return x.Compare(y) })
	for _, vip := range b.vips {
		err := benchlab.Poll(ctx, 60*time.Second, func(ctx context.Context) error {
			_, err := lab.Get(ctx, l.ClientNetns, lab.URL(vip, 80), time.Second)
			return err
		})
		if err != nil {
			return fmt.Errorf("the client never reached %s: %w", vip, err)
		}
		if _, err := b.owner(vip); err != nil {
			return fmt.Errorf("%s is not announced by exactly one node: %w", vip, err)
		}
	}
	fmt.Printf("L2 safety, %d nodes; Service default/web at %s", len(l.Nodes), joinAddrs(b.vips))
	if !slices.ContainsFunc(b.vips, netip.Addr.Is6) {
		fmt.Print(" (IPv4 only: benchlab.StartWeb makes a single-stack Service and the pool is IPv4)")
	}
	fmt.Println()
	return nil
}

// owner waits for exactly one node to announce vip (by the SpeakerStatuses).
func (b *bench) owner(vip netip.Addr) (*lab.Node, error) {
	var got string
	err := benchlab.Poll(b.ctx, 30*time.Second, func(ctx context.Context) error {
		all, err := b.lab.Announcers(ctx, vip)
		if err != nil {
			return err
		}
		if len(all) != 1 {
			return fmt.Errorf("announced by %v", all)
		}
		got = all[0]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b.lab.Node(got), nil
}

// settle waits until every node's SpeakerStatus lists all nodes as members and is Ready.
// A node named in stale must also have written its status since it had that resourceVersion
// (a restarted speaker's first write), so an old report does not pass for a new one.
func (b *bench) settle(stale map[string]string) error {
	want := make([]string, 0, len(b.lab.Nodes))
	for _, n := range b.lab.Nodes {
		want = append(want, n.Name)
	}
	slices.Sort(want)
	return benchlab.Poll(b.ctx, settleTimeout, func(ctx context.Context) error {
		var list v1alpha1.SpeakerStatusList
		if err := b.lab.Kube.List(ctx, &list); err != nil {
			return err
		}
		if len(list.Items) != len(want) {
			return fmt.Errorf("%d SpeakerStatuses for %d nodes", len(list.Items), len(want))
		}
		for _, st := range list.Items {
			switch {
			case !slices.Equal(slices.Sorted(slices.Values(st.Status.Members)), want):
				return fmt.Errorf("%s sees %v", st.Name, st.Status.Members)
			case !meta.IsStatusConditionTrue(st.Status.Conditions, conditionReady):
				return fmt.Errorf("%s is not Ready", st.Name)
			case stale[st.Name] != "" && st.ResourceVersion == stale[st.Name]:
				return fmt.Errorf("%s has not reported since its restart", st.Name)
			}
		}
		return nil
	})
}

// statusVersion is the resourceVersion of a node's SpeakerStatus ("" when there is none).
func (b *bench) statusVersion(node string) (string, error) {
	var st v1alpha1.SpeakerStatus
	err := b.lab.Kube.Get(b.ctx, client.ObjectKey{Name: node}, &st)
	if client.IgnoreNotFound(err) != nil {
		return "", err
	}
	return st.ResourceVersion, nil
}

// restart stops a node's speaker with SIGTERM, starts it again and waits until every
// speaker has settled.
func (b *bench) restart(n *lab.Node) error {
	p := n.Process("speaker")
	if p == nil {
		return fmt.Errorf("%s runs no speaker", n.Name)
	}
	exited := p.Exited()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		return fmt.Errorf("the speaker on %s still runs %s after SIGTERM", n.Name, stopTimeout)
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
	rv, err := b.statusVersion(n.Name)
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	if err := b.settle(map[string]string{n.Name: rv}); err != nil {
		return fmt.Errorf("after restarting the speaker on %s: %w", n.Name, err)
	}
	return nil
}

// sleep waits d or until the run is interrupted.
func (b *bench) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

// watches are a client probe and a claim watch per address, run together.
type watches struct {
	probe  *lab.Prober
	claims []*lab.ClaimWatch
}

// watch starts the client's probe of the first address and a claim watch on the router's
// fabric port for each of vips.
func (b *bench) watch(vips []netip.Addr) (*watches, error) {
	w := &watches{}
	for _, vip := range vips {
		cw, err := lab.StartClaimWatch(b.lab.Router.Netns, routerDev, vip, claimEvery)
		if err != nil {
			w.stop()
			return nil, err
		}
		w.claims = append(w.claims, cw)
	}
	w.probe = lab.StartProbe(b.lab.ClientNetns, lab.URL(vips[0], 80), probeEvery, probeTimeout)
	return w, nil
}

// stop ends every watch (again: the same results) and returns what they saw.
func (w *watches) stop() (lab.ProbeResult, []lab.ClaimResult) {
	var pr lab.ProbeResult
	if w.probe != nil {
		pr = w.probe.Stop()
	}
	out := make([]lab.ClaimResult, 0, len(w.claims))
	for _, cw := range w.claims {
		out = append(out, cw.Stop())
	}
	return pr, out
}

// wire is what a claim watch tells about safety.
type wire struct {
	slots  []lab.Slot
	wrong  int      // frames in two-MAC slots from a MAC other than the owner before the slot
	owners []string // MAC of each span, in order
}

// changes is the number of owner changes (spans after the first).
func (w wire) changes() int { return max(len(w.owners)-1, 0) }

// readWire finds the two-MAC slots of a claim watch, the frames in them from a MAC other
// than the one whose span ran just before the slot, and the run of owners.
func readWire(r lab.ClaimResult) wire {
	spans := r.Spans()
	w := wire{slots: r.TwoMACSlots()}
	for _, s := range spans {
		w.owners = append(w.owners, s.MAC)
	}
	for _, slot := range w.slots {
		owner := ""
		for _, s := range spans {
			if !s.First.Before(slot.At) {
				break
			}
			owner = s.MAC
		}
		end := slot.At.Add(r.Every)
		for _, c := range r.Claims {
			if !c.At.Before(slot.At) && c.At.Before(end) && c.MAC != owner {
				w.wrong++
			}
		}
	}
	return w
}

// who names the node of a MAC (the MAC itself when it is no node's).
func (b *bench) who(mac string) string {
	if n, ok := b.name[mac]; ok {
		return n
	}
	return mac
}

// ownerRun prints the owners in order, or only their number when there are many.
func (b *bench) ownerRun(macs []string) string {
	const most = 8
	if len(macs) == 0 {
		return "nobody"
	}
	if len(macs) > most {
		return fmt.Sprintf("%d spans, starting with %s", len(macs), b.who(macs[0]))
	}
	names := make([]string, len(macs))
	for i, m := range macs {
		names[i] = b.who(m)
	}
	return strings.Join(names, " → ")
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, " and ")
}

// rollingRestarts restarts every speaker in turn, rounds times, and prints what the client
// and the wire saw in each round, then the totals.
func (b *bench) rollingRestarts(rounds int) error {
	fmt.Printf("Part 1: rolling restart (SIGTERM, wait for the exit, start, wait for all members and Ready; node by node), %d rounds;\n", rounds)
	fmt.Printf("  HTTP from the client every %s, claim watch every %s on the router's %s\n", probeEvery, claimEvery, routerDev)
	failed, sent := 0, 0
	perVIP := make([][]wire, len(b.vips))
	for i := range rounds {
		r, err := b.rollingRound()
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		pr := r.probe
		failed, sent = failed+pr.Failed(), sent+len(pr.Samples)
		slices.Sort(r.restarts)
		line := fmt.Sprintf("  round %2d: restart to settled p50 %s max %s, requests failed %d/%d", i+1,
			benchlab.Ms(benchlab.Pct(r.restarts, 50)), benchlab.Ms(r.restarts[len(r.restarts)-1]), pr.Failed(), len(pr.Samples))
		for j, c := range r.claims {
			w := readWire(c)
			perVIP[j] = append(perVIP[j], w)
			line += fmt.Sprintf("; %s: two-MAC slots %d, wrong-owner frames %d, owner changes %d (%s)",
				c.Addr, len(w.slots), w.wrong, w.changes(), b.ownerRun(w.owners))
		}
		fmt.Println(line)
	}
	fmt.Printf("  total over %d rounds: requests failed %d/%d\n", rounds, failed, sent)
	for j, vip := range b.vips {
		slots, wrong := 0, 0
		var changes []int
		for _, w := range perVIP[j] {
			slots, wrong = slots+len(w.slots), wrong+w.wrong
			changes = append(changes, w.changes())
		}
		slices.Sort(changes)
		fmt.Printf("  %s: two-MAC slots %d, wrong-owner frames %d, owner changes per round p50 %d max %d\n",
			vip, slots, wrong, changes[(len(changes)-1)/2], changes[len(changes)-1])
	}
	return nil
}

// round is what one rolling restart saw: the client's requests, each address's claims, and
// how long each restart took from SIGTERM until every speaker had settled.
type round struct {
	probe    lab.ProbeResult
	claims   []lab.ClaimResult
	restarts []time.Duration
}

// rollingRound restarts each node's speaker in turn with the watches running.
func (b *bench) rollingRound() (round, error) {
	var r round
	if err := b.settle(nil); err != nil {
		return r, err
	}
	w, err := b.watch(b.vips)
	if err != nil {
		return r, err
	}
	defer w.stop()
	if err := b.sleep(leadIn); err != nil {
		return r, err
	}
	for _, n := range b.lab.Nodes {
		start := time.Now()
		if err := b.restart(n); err != nil {
			return r, err
		}
		r.restarts = append(r.restarts, time.Since(start))
	}
	if err := b.sleep(tail); err != nil {
		return r, err
	}
	r.probe, r.claims = w.stop()
	return r, nil
}

// partition is what one partition trial measured; a zero time is "never".
type partition struct {
	victim, owner string
	blocked       time.Time // the block went in
	unblocked     time.Time // the block came out
	conflict      time.Time // a SpeakerStatus first reported a conflict
	reporter      string    // which one
	neigh         time.Time // the router's entry first held the status owner's MAC after the unblock
	neighOwner    string
	wire          wire
	every         time.Duration
	failed, sent  int
}

// partitions runs the partition trials and prints each and the percentiles.
func (b *bench) partitions(trials int) error {
	vip := b.vips[0]
	if len(b.lab.Nodes) < 2 {
		fmt.Println("Part 2: skipped, a partition needs two nodes")
		return nil
	}
	fmt.Printf("Part 2: partition, a node that does not own %s cut off from the others' memberlist for %s, %d trials;\n", vip, partitionFor, trials)
	fmt.Printf("  claim watch every %s on the router's %s, SpeakerStatuses read every %s, HTTP from the client every %s\n", claimEvery, routerDev, statusEvery, probeEvery)
	var results []partition
	for i := range trials {
		p, err := b.partitionTrial(vip)
		if err != nil {
			return fmt.Errorf("partition trial %d: %w", i+1, err)
		}
		fmt.Printf("  trial %d: %s\n", i+1, b.describe(p))
		results = append(results, p)
	}
	figure := func(label string, f func(p partition) (time.Duration, bool)) {
		var d []time.Duration
		for _, p := range results {
			if v, ok := f(p); ok {
				d = append(d, v)
			}
		}
		if len(d) == 0 {
			fmt.Printf("  %-46s never (0/%d trials)\n", label, len(results))
			return
		}
		slices.Sort(d)
		fmt.Printf("  %-46s p50 %7s  max %7s  (%d/%d trials)\n", label, benchlab.Ms(benchlab.Pct(d, 50)), benchlab.Ms(d[len(d)-1]), len(d), len(results))
	}
	figure("block → both sides claim (first two-MAC slot)", partition.bothClaim)
	figure("first two-MAC slot → conflict reported", partition.reported)
	figure("double claim: first → last two-MAC slot end", partition.doubleClaim)
	figure("unblock → last two-MAC slot ends (<0: before)", partition.lastSlot)
	figure("unblock → router's entry at status owner", partition.routerOwner)
	return nil
}

func (p partition) bothClaim() (time.Duration, bool) {
	if len(p.wire.slots) == 0 {
		return 0, false
	}
	return p.wire.slots[0].At.Sub(p.blocked), true
}

func (p partition) reported() (time.Duration, bool) {
	if len(p.wire.slots) == 0 || p.conflict.IsZero() {
		return 0, false
	}
	return p.conflict.Sub(p.wire.slots[0].At), true
}

// doubleClaim is how long both sides claimed: from the first two-MAC slot to the end of the
// last.
func (p partition) doubleClaim() (time.Duration, bool) {
	if len(p.wire.slots) == 0 {
		return 0, false
	}
	return p.wire.slots[len(p.wire.slots)-1].At.Add(p.every).Sub(p.wire.slots[0].At), true
}

func (p partition) lastSlot() (time.Duration, bool) {
	if len(p.wire.slots) == 0 {
		return 0, false
	}
	return p.wire.slots[len(p.wire.slots)-1].At.Add(p.every).Sub(p.unblocked), true
}

func (p partition) routerOwner() (time.Duration, bool) {
	if p.neigh.IsZero() {
		return 0, false
	}
	return p.neigh.Sub(p.unblocked), true
}

// describe prints one trial on a line.
func (b *bench) describe(p partition) string {
	at := func(d time.Duration, ok bool) string {
		if !ok {
			return "never"
		}
		return benchlab.Ms(d)
	}
	s := fmt.Sprintf("%s cut off (owner %s): both claim after %s", p.victim, p.owner, at(p.bothClaim()))
	if d, ok := p.reported(); ok {
		s += fmt.Sprintf(", conflict reported by %s %s after the first two-MAC slot", p.reporter, benchlab.Ms(d))
	} else if !p.conflict.IsZero() {
		s += fmt.Sprintf(", conflict reported by %s %s after the block", p.reporter, benchlab.Ms(p.conflict.Sub(p.blocked)))
	} else {
		s += ", no conflict reported"
	}
	s += fmt.Sprintf("; after the unblock: last two-MAC slot ends %s, router's entry at %s (status owner) %s",
		at(p.lastSlot()), p.neighOwner, at(p.routerOwner()))
	return s + fmt.Sprintf("; two-MAC slots %d, wrong-owner frames %d, owners %s, requests failed %d/%d",
		len(p.wire.slots), p.wire.wrong, b.ownerRun(p.wire.owners), p.failed, p.sent)
}

// partitionTrial cuts a node that does not own vip off from the others' memberlist for
// partitionFor, then lifts the cut and waits for the speakers to settle again.
func (b *bench) partitionTrial(vip netip.Addr) (partition, error) {
	if err := b.settle(nil); err != nil {
		return partition{}, err
	}
	if who := b.waitNoConflict(); who != "" {
		fmt.Printf("  (%s still reports a conflict from before; this trial's conflict time may be early)\n", who)
	}
	owner, err := b.owner(vip)
	if err != nil {
		return partition{}, err
	}
	victim := b.lab.Nodes[0]
	if victim == owner {
		victim = b.lab.Nodes[1]
	}
	others := slices.DeleteFunc(slices.Clone(b.lab.Nodes), func(n *lab.Node) bool { return n == victim })
	p := partition{victim: victim.Name, owner: owner.Name, every: claimEvery}

	w, err := b.watch([]netip.Addr{vip})
	if err != nil {
		return p, err
	}
	defer w.stop()
	if err := b.sleep(leadIn); err != nil {
		return p, err
	}
	poll := b.startConflictPoll()
	defer poll.stop()
	blocked := true
	defer func() {
		if blocked {
			_ = victim.Unblock(context.WithoutCancel(b.ctx))
		}
	}()
	if err := victim.BlockMemberlist(b.ctx, others...); err != nil {
		return p, err
	}
	p.blocked = time.Now()
	if err := b.sleep(partitionFor); err != nil {
		return p, err
	}
	if err := victim.Unblock(b.ctx); err != nil {
		return p, err
	}
	blocked, p.unblocked = false, time.Now()
	p.neigh, p.neighOwner = b.waitRouterOwner(vip)
	if err := b.settle(nil); err != nil {
		return p, fmt.Errorf("after the partition healed: %w", err)
	}
	if err := b.sleep(tail); err != nil {
		return p, err
	}
	pr, seen := w.stop()
	p.conflict, p.reporter = poll.stop()
	p.wire, p.failed, p.sent = readWire(seen[0]), pr.Failed(), len(pr.Samples)
	return p, nil
}

// conflictReporter names a node whose SpeakerStatus reports a conflict ("" when none does,
// or the statuses cannot be read).
func (b *bench) conflictReporter(ctx context.Context) string {
	var list v1alpha1.SpeakerStatusList
	if err := b.lab.Kube.List(ctx, &list); err != nil {
		return ""
	}
	for _, st := range list.Items {
		if len(st.Status.Conflicts) > 0 || meta.IsStatusConditionTrue(st.Status.Conditions, conditionConflict) {
			return st.Name
		}
	}
	return ""
}

// waitNoConflict waits for the conflicts of an earlier trial to age out of the statuses and
// returns the node still reporting one after settleTimeout ("" when none does).
func (b *bench) waitNoConflict() string {
	var who string
	_ = benchlab.Poll(b.ctx, settleTimeout, func(ctx context.Context) error {
		if who = b.conflictReporter(ctx); who != "" {
			return fmt.Errorf("%s reports a conflict", who)
		}
		return nil
	})
	return who
}

// conflictPoll reads the SpeakerStatuses every statusEvery until one reports a conflict.
type conflictPoll struct {
	cancel context.CancelFunc
	done   chan struct{}
	at     time.Time
	who    string
}

func (b *bench) startConflictPoll() *conflictPoll {
	ctx, cancel := context.WithCancel(b.ctx)
	c := &conflictPoll{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(statusEvery)
		defer t.Stop()
		for {
			if who := b.conflictReporter(ctx); who != "" {
				c.at, c.who = time.Now(), who
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return c
}

// stop ends the poll and says when a conflict was first seen, and where (zero: never).
func (c *conflictPoll) stop() (time.Time, string) {
	c.cancel()
	<-c.done
	return c.at, c.who
}

// waitRouterOwner waits until exactly one SpeakerStatus announces vip and the router's
// neighbour entry for vip holds that node's MAC, and returns when, and the owner. On
// timeout the time is zero and the string says what was seen last.
func (b *bench) waitRouterOwner(vip netip.Addr) (time.Time, string) {
	var owners []string
	var mac string
	err := benchlab.Poll(b.ctx, neighTimeout, func(ctx context.Context) error {
		var err error
		if owners, err = b.lab.Announcers(ctx, vip); err != nil {
			return err
		}
		mac = b.routerMAC(ctx, vip)
		if len(owners) != 1 || b.lab.Node(owners[0]).MAC != mac {
			return fmt.Errorf("router at %q, announced by %v", mac, owners)
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Sprintf("%s (status owners %v)", b.who(mac), owners)
	}
	return time.Now(), owners[0]
}

// routerMAC is the MAC the router's neighbour table holds for addr on its fabric port ("" when
// none).
func (b *bench) routerMAC(ctx context.Context, addr netip.Addr) string {
	out, err := b.lab.Router.Exec(ctx, "ip", "neigh", "show", addr.String(), "dev", routerDev)
	if err != nil {
		return ""
	}
	if f := strings.Fields(out); len(f) >= 3 && f[1] == "lladdr" {
		return f[2]
	}
	return ""
}
