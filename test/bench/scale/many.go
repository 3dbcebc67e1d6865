package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
	"github.com/vipcast/vipcast/test/lab"
)

const (
	// cutTimeout bounds the wait for a powered-off node's addresses and members to move.
	cutTimeout = 2 * time.Minute
	// ownerCheck bounds the check, before the cut, that the sample answers from the victim.
	ownerCheck = 30 * time.Second
	// backPause lets a node that came back settle before the next cut.
	backPause = 2 * time.Second
)

// many runs K speakers with S Services over L2, counts the API requests in steady state,
// cuts one node's power and times its addresses' and its membership's move; then the same
// fail-over with 3 nodes and one Service, for comparison.
func many(ctx context.Context, cfg *config, sum *summary) error {
	if err := manySpeakers(ctx, cfg, sum); err != nil {
		return err
	}
	return compareCuts(ctx, cfg, sum)
}

func manySpeakers(ctx context.Context, cfg *config, sum *summary) (err error) {
	// The Services are created before the speakers start: K speakers planning every one of
	// them as it comes would slow the set-up, which is not what is measured.
	e, err := upWith(ctx, cfg, cfg.speakers, modeL2, false)
	if err != nil {
		return err
	}
	defer func() { e.down(err) }()
	if err := e.bulk(ctx, "many", cfg.manyServices, true); err != nil {
		return err
	}
	k, s := cfg.speakers, cfg.manyServices
	sum.set("many", "speakers (K) / Services over L2 (S)", modeL2, fmt.Sprintf("%d / %d", k, s))

	logf("many: counting API requests for %s", cfg.apiWindow)
	server, speakers, split, err := e.apiRate(ctx, cfg.apiWindow)
	if err != nil {
		return err
	}
	fmt.Printf("  API requests in steady state over %s: at the API server %.2f/s from every client together (apiserver_request_total has no client label; by verb and resource: %s); the %d speakers' own count (rest_client_requests_total) %.2f/s, %.3f/s each\n",
		cfg.apiWindow, server, split, k, speakers, speakers/float64(k))
	sum.set("many", fmt.Sprintf("API requests/s in steady state, all clients (apiserver_request_total, %s)", cfg.apiWindow), modeL2, fmt.Sprintf("%.2f/s", server))
	sum.set("many", fmt.Sprintf("API requests/s of the %d speakers (their rest_client_requests_total)", k), modeL2, fmt.Sprintf("%.2f/s", speakers))

	var p50s, conv, dead []time.Duration
	for i := range cfg.cuts {
		victim := e.lab.Nodes[len(e.lab.Nodes)-1-i]
		res, err := e.cutAndReturn(ctx, victim)
		if err != nil {
			return fmt.Errorf("cut %d (%s): %w", i+1, victim.Name, err)
		}
		p50s = append(p50s, benchlab.Pct(res.moves, 50))
		conv = append(conv, res.gone[len(res.gone)-1])
		dead = append(dead, benchlab.Pct(res.dead, 50))
	}
	slices.Sort(p50s)
	slices.Sort(conv)
	slices.Sort(dead)
	fmt.Printf("  over the %d cuts: median of the per-cut p50s until claimed elsewhere %s (%s); memberlist declared the node dead, median of the per-cut p50s %s; every SpeakerStatus dropped it, median %s\n",
		cfg.cuts, benchlab.Ms(benchlab.Pct(p50s, 50)), msList(p50s), benchlab.Ms(benchlab.Pct(dead, 50)), benchlab.Ms(benchlab.Pct(conv, 50)))
	sum.set("many", fmt.Sprintf("power cut → node's addresses answered elsewhere, median of %d cuts' p50s (%d sampled per cut)", cfg.cuts, cfg.sample), modeL2, benchlab.Ms(benchlab.Pct(p50s, 50)))
	sum.set("many", "power cut → memberlist declares the node dead (the speakers' logs), median of the cuts' p50s", modeL2, benchlab.Ms(benchlab.Pct(dead, 50)))
	sum.set("many", "power cut → every other SpeakerStatus drops it from members, median of the cuts", modeL2, benchlab.Ms(benchlab.Pct(conv, 50)))
	return nil
}

// cutAndReturn cuts a node's power, prints what moved and when, and brings it back.
func (e *env) cutAndReturn(ctx context.Context, victim *lab.Node) (cutResult, error) {
	sample, owned, err := e.ownedSample(ctx, victim)
	if err != nil {
		return cutResult{}, err
	}
	var st v1alpha1.SpeakerStatus
	if err := e.lab.Kube.Get(ctx, client.ObjectKey{Name: victim.Name}, &st); err != nil {
		return cutResult{}, err
	}
	cut, err := e.powerCut(ctx, victim, sample)
	if err != nil {
		return cut, err
	}
	if len(cut.moves) < cut.sample || len(cut.gone) < cut.others {
		return cut, fmt.Errorf("not everything moved within %s: %s; %s", cutTimeout, cut.movesLine(), cut.membersLine())
	}
	if len(cut.dead) == 0 {
		return cut, fmt.Errorf("no speaker's log says %s died (Member changed … alive=false)", victim.Name)
	}
	fmt.Printf("  power cut of %s (it announced %d addresses; %d sampled, each checked to answer from its MAC first):\n", victim.Name, owned, len(sample))
	fmt.Printf("    until claimed by another node's MAC (asked every %s, gratuitous ARP seen too): %s\n", askPeriod(len(sample)), cut.movesLine())
	fmt.Printf("    until memberlist declared it dead, per other speaker (its log): %s\n", cut.deadLine())
	fmt.Printf("    until every other SpeakerStatus has dropped %s from its members (watched): %s\n", victim.Name, cut.membersLine())
	if err := victim.PowerOn(ctx); err != nil {
		return cut, err
	}
	if err := e.settle(ctx, "", map[string]string{victim.Name: st.ResourceVersion}); err != nil {
		return cut, fmt.Errorf("after %s came back: %w", victim.Name, err)
	}
	return cut, sleep(ctx, backPause)
}

func msList(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = benchlab.Ms(d)
	}
	return strings.Join(out, ", ")
}

// ownedSample lists the addresses a node's SpeakerStatus says it announces and picks a
// sample of them that answer from its MAC now.
func (e *env) ownedSample(ctx context.Context, n *lab.Node) ([]netip.Addr, int, error) {
	var st v1alpha1.SpeakerStatus
	if err := e.lab.Kube.Get(ctx, client.ObjectKey{Name: n.Name}, &st); err != nil {
		return nil, 0, err
	}
	var owned []netip.Addr
	for _, set := range st.Status.Announced {
		if set.Mode != v1alpha1.ModeL2 {
			continue
		}
		addrs, err := addrset.Decode(set.Addresses)
		if err != nil {
			return nil, 0, fmt.Errorf("%s's SpeakerStatus: %w", n.Name, err)
		}
		for _, addr := range addrs {
			if addr.Is4() {
				owned = append(owned, addr)
			}
		}
	}
	sample := spread(owned, e.cfg.sample)
	if len(sample) == 0 {
		return nil, 0, fmt.Errorf("%s announces nothing", n.Name)
	}
	e.arp.Forget(sample...)
	e.arp.Ask("", sample...)
	first, err := e.claimedBy(ctx, sample, "", ownerCheck)
	if err != nil {
		return nil, 0, err
	}
	mine := slices.DeleteFunc(slices.Clone(sample), func(a netip.Addr) bool { return first[a].MAC != n.MAC })
	if len(mine) < len(sample) {
		fmt.Printf("  (%d of the %d sampled addresses of %s did not answer from its MAC; left out)\n", len(sample)-len(mine), len(sample), n.Name)
	}
	if len(mine) == 0 {
		return nil, 0, fmt.Errorf("none of %s's sampled addresses answers from its MAC", n.Name)
	}
	return mine, len(owned), nil
}

// cutResult is what a power cut moved, and when.
type cutResult struct {
	sample int
	moves  []time.Duration
	gone   []time.Duration // per other node, when its status dropped the victim
	dead   []time.Duration // per other node, when its speaker logged the victim dead
	others int
}

func (c cutResult) deadLine() string {
	if len(c.dead) == 0 {
		return fmt.Sprintf("none of %d", c.others)
	}
	d := c.dead
	return fmt.Sprintf("first %s, p50 %s, last %s (%d of %d)", benchlab.Ms(d[0]), benchlab.Ms(benchlab.Pct(d, 50)), benchlab.Ms(d[len(d)-1]), len(d), c.others)
}

func (c cutResult) movesLine() string {
	if len(c.moves) == 0 {
		return fmt.Sprintf("none of %d within %s", c.sample, cutTimeout)
	}
	d := c.moves
	return fmt.Sprintf("p50 %s, p95 %s, max %s (%d of %d within %s)", benchlab.Ms(benchlab.Pct(d, 50)), benchlab.Ms(benchlab.Pct(d, 95)),
		benchlab.Ms(d[len(d)-1]), len(d), c.sample, cutTimeout)
}

func (c cutResult) converged() string {
	if len(c.gone) < c.others {
		return fmt.Sprintf("not within %s (%d of %d)", cutTimeout, len(c.gone), c.others)
	}
	return benchlab.Ms(c.gone[len(c.gone)-1])
}

func (c cutResult) membersLine() string {
	if len(c.gone) == 0 {
		return fmt.Sprintf("none of %d within %s", c.others, cutTimeout)
	}
	return fmt.Sprintf("all %s (first %s, p50 %s; %d of %d)", c.converged(), benchlab.Ms(c.gone[0]), benchlab.Ms(benchlab.Pct(c.gone, 50)), len(c.gone), c.others)
}

// powerCut cuts a node's power and times until each sampled address is claimed by another
// MAC and until every other speaker's status has dropped the node from its members.
func (e *env) powerCut(ctx context.Context, n *lab.Node, sample []netip.Addr) (cutResult, error) {
	res := cutResult{sample: len(sample), others: len(e.lab.Nodes) - 1}
	mw, err := e.watchMembers(ctx, n.Name)
	if err != nil {
		return res, err
	}
	defer mw.stop()
	e.arp.Forget(sample...)
	cut := time.Now()
	if err := n.PowerOff(ctx); err != nil {
		return res, err
	}
	e.arp.Ask(n.MAC, sample...)
	claims, err := e.claimedBy(ctx, sample, n.MAC, cutTimeout)
	if err != nil {
		return res, err
	}
	for _, c := range claims {
		res.moves = append(res.moves, c.At.Sub(cut))
	}
	slices.Sort(res.moves)
	gone, err := mw.wait(ctx, res.others, cutTimeout)
	if err != nil {
		return res, err
	}
	for _, at := range gone {
		res.gone = append(res.gone, at.Sub(cut))
	}
	slices.Sort(res.gone)
	res.dead, err = e.deaths(n.Name, cut)
	return res, err
}

// deaths reads every other speaker's log for the first "Member changed" line that says
// node is no longer alive, logged after since, and returns how long after since each was.
func (e *env) deaths(node string, since time.Time) ([]time.Duration, error) {
	var out []time.Duration
	for _, n := range e.lab.Nodes {
		if n.Name == node {
			continue
		}
		at, err := memberDied(e.lab.Process(n.Name+"/speaker").Log, node, since)
		if err != nil {
			return nil, err
		}
		if !at.IsZero() {
			out = append(out, at.Sub(since))
		}
	}
	slices.Sort(out)
	return out, nil
}

// memberDied returns the time of the first line of a speaker's log (JSON, times in RFC 3339
// with nanoseconds) after since that logs member as no longer alive; zero when there is none.
func memberDied(path, member string, since time.Time) (time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"Member changed"`)) {
			continue
		}
		var l struct {
			TS     string `json:"ts"`
			Member string `json:"member"`
			Alive  *bool  `json:"alive"`
		}
		if json.Unmarshal(line, &l) != nil || l.Member != member || l.Alive == nil || *l.Alive {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, l.TS)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s: time %q: %w", path, l.TS, err)
		}
		if at.After(since) {
			return at, nil
		}
	}
	return time.Time{}, sc.Err()
}

// memberWatch watches the SpeakerStatuses and records, per node, when its status first
// listed its members without one node.
type memberWatch struct {
	stop func()
	mu   sync.Mutex
	gone map[string]time.Time
	err  error
}

func (e *env) watchMembers(ctx context.Context, node string) (*memberWatch, error) {
	wc, err := client.NewWithWatch(e.lab.Rest, client.Options{Scheme: lab.Scheme})
	if err != nil {
		return nil, err
	}
	w, err := wc.Watch(ctx, &v1alpha1.SpeakerStatusList{})
	if err != nil {
		return nil, err
	}
	mw := &memberWatch{stop: w.Stop, gone: map[string]time.Time{}}
	go func() {
		for ev := range w.ResultChan() {
			st, ok := ev.Object.(*v1alpha1.SpeakerStatus)
			if !ok || st.Name == node || slices.Contains(st.Status.Members, node) {
				continue
			}
			mw.mu.Lock()
			if _, seen := mw.gone[st.Name]; !seen {
				mw.gone[st.Name] = time.Now()
			}
			mw.mu.Unlock()
		}
		mw.mu.Lock()
		mw.err = errors.New("the SpeakerStatus watch ended")
		mw.mu.Unlock()
	}()
	return mw, nil
}

// wait waits until n statuses have dropped the node, or timeout, and returns when each did.
func (mw *memberWatch) wait(ctx context.Context, n int, timeout time.Duration) ([]time.Time, error) {
	var out []time.Time
	err := benchlab.PollEvery(ctx, pollFast, timeout, func(context.Context) error {
		mw.mu.Lock()
		defer mw.mu.Unlock()
		out = out[:0]
		for _, at := range mw.gone {
			out = append(out, at)
		}
		if len(out) >= n {
			return nil
		}
		if mw.err != nil {
			return mw.err
		}
		return fmt.Errorf("%d of %d", len(out), n)
	})
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	mw.mu.Lock()
	defer mw.mu.Unlock()
	if err != nil && mw.err != nil {
		return out, mw.err
	}
	return out, nil
}

// compareCuts times the same fail-over in a lab of 3 nodes with one Service: the owner's
// power is cut cfg.compareCuts times (it comes back between cuts).
func compareCuts(ctx context.Context, cfg *config, sum *summary) (err error) {
	e, err := up(ctx, cfg, 3, modeL2)
	if err != nil {
		return err
	}
	defer func() { e.down(err) }()
	name := bulkName(0)
	if err := e.fast.Create(ctx, service(name)); err != nil {
		return err
	}
	addr, err := e.addressOf(ctx, name)
	if err != nil {
		return err
	}
	if _, err := e.waitClaimed(ctx, []netip.Addr{addr}); err != nil {
		return err
	}
	var moved []time.Duration
	for i := range cfg.compareCuts {
		d, err := e.cutOwner(ctx, addr)
		if err != nil {
			return fmt.Errorf("comparison cut %d: %w", i+1, err)
		}
		moved = append(moved, d)
	}
	slices.Sort(moved)
	fmt.Printf("many, comparison: 3 nodes, one Service (%s): power cut of its owner, until claimed by another node's MAC (asked every %s, gratuitous ARP seen too), %d cuts: p50 %s, max %s\n",
		addr, askPeriod(1), len(moved), benchlab.Ms(benchlab.Pct(moved, 50)), benchlab.Ms(moved[len(moved)-1]))
	sum.set("many", fmt.Sprintf("for comparison: 3 nodes, 1 Service, the same fail-over, p50 (%d cuts)", len(moved)), modeL2, benchlab.Ms(benchlab.Pct(moved, 50)))
	return nil
}

// cutOwner cuts the power of the node announcing addr, times until another MAC claims it,
// and brings the node back.
func (e *env) cutOwner(ctx context.Context, addr netip.Addr) (time.Duration, error) {
	owner, err := e.owner(ctx, addr)
	if err != nil {
		return 0, err
	}
	e.arp.Forget(addr)
	cut := time.Now()
	if err := owner.PowerOff(ctx); err != nil {
		return 0, err
	}
	e.arp.Ask(owner.MAC, addr)
	claims, err := e.claimedBy(ctx, []netip.Addr{addr}, owner.MAC, cutTimeout)
	if err != nil {
		return 0, err
	}
	c, ok := claims[addr]
	if !ok {
		return 0, fmt.Errorf("%s not claimed by another MAC within %s of the cut of %s", addr, cutTimeout, owner.Name)
	}
	var st v1alpha1.SpeakerStatus
	if err := e.lab.Kube.Get(ctx, client.ObjectKey{Name: owner.Name}, &st); err != nil {
		return 0, err
	}
	if err := owner.PowerOn(ctx); err != nil {
		return 0, err
	}
	if err := e.settle(ctx, "", map[string]string{owner.Name: st.ResourceVersion}); err != nil {
		return 0, fmt.Errorf("after %s came back: %w", owner.Name, err)
	}
	return c.At.Sub(cut), sleep(ctx, backPause)
}

// owner waits until exactly one SpeakerStatus announces addr and that node answers for it
// on the wire, and returns it.
func (e *env) owner(ctx context.Context, addr netip.Addr) (*lab.Node, error) {
	var n *lab.Node
	err := benchlab.Poll(ctx, e.cfg.timeout, func(ctx context.Context) error {
		all, err := e.lab.Announcers(ctx, addr)
		if err != nil {
			return err
		}
		if len(all) != 1 {
			return fmt.Errorf("%s announced by %v", addr, all)
		}
		n = e.lab.Node(all[0])
		return nil
	})
	if err != nil {
		return nil, err
	}
	e.arp.Forget(addr)
	e.arp.Ask("", addr)
	first, err := e.claimedBy(ctx, []netip.Addr{addr}, "", ownerCheck)
	if err != nil {
		return nil, err
	}
	if c, ok := first[addr]; !ok || c.MAC != n.MAC {
		return nil, fmt.Errorf("%s: SpeakerStatus says %s (%s), the wire %q", addr, n.Name, n.MAC, c.MAC)
	}
	return n, nil
}
