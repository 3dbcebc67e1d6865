package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
)

// samplePause separates the steady part's timed Services.
const samplePause = time.Second

// steady puts M Services in place in a lab of 3 nodes, then measures: one more Service until
// announced (samples times), one speaker's CPU over an idle window, every speaker's and the
// controller's peak RSS, and the largest SpeakerStatus.
func steady(ctx context.Context, cfg *config, mode string, sum *summary) (err error) {
	e, err := up(ctx, cfg, 3, mode)
	if err != nil {
		return err
	}
	defer func() { e.down(err) }()
	m := cfg.steadyServices
	if err := e.bulk(ctx, "steady", m, false); err != nil {
		return err
	}
	sum.set("steady", "Services in place (M), 3 nodes", mode, fmt.Sprint(m))
	if err := e.idleCPU(ctx, sum); err != nil {
		return err
	}
	if err := e.latencies(ctx, sum); err != nil {
		return err
	}
	return e.footprint(ctx, sum)
}

// bulk creates n Services from several goroutines and waits until all are announced and the
// speakers are quiet (set-up, not measured; printed under the part's name). With
// speakersAfter the speakers are started only once every Service has its address.
func (e *env) bulk(ctx context.Context, part string, n int, speakersAfter bool) error {
	start := time.Now()
	logf("%s: creating %d Services from %d goroutines", e.mode, n, e.cfg.workers)
	if err := e.createParallel(ctx, n); err != nil {
		return err
	}
	created := time.Since(start)
	if err := e.waitAssigned(ctx, n); err != nil {
		return err
	}
	if speakersAfter {
		logf("%s: created and allocated in %s; starting the speakers", e.mode, time.Since(start).Round(time.Second))
		if err := e.startSpeakers(ctx); err != nil {
			return err
		}
	}
	logf("%s: created in %s; waiting until all are announced", e.mode, created.Round(time.Second))
	if _, _, err := e.allAnnounced(ctx, n); err != nil {
		return err
	}
	announced := time.Since(start)
	waited, quiet, err := e.quiet(ctx)
	if err != nil {
		return err
	}
	q := fmt.Sprintf("quiet (under %.0f%% of a core each over %s) %s later", quietShare*100, quietWindow, waited.Round(time.Second))
	if !quiet {
		q = fmt.Sprintf("still not quiet after %s; measuring anyway", waited.Round(time.Second))
	}
	fmt.Printf("%s, %s, %d nodes: set-up: %d Services created in %s, all announced %s after the first create, speakers %s\n",
		part, e.mode, len(e.lab.Nodes), n, created.Round(time.Second), announced.Round(time.Second), q)
	return nil
}

// idleCPU measures the speakers' and the controller's CPU over the idle window.
func (e *env) idleCPU(ctx context.Context, sum *summary) error {
	procs := append(e.speakers(), e.controller())
	logf("%s: idle window of %s", e.mode, e.cfg.idle)
	before := readUsage(procs)
	if err := sleep(ctx, e.cfg.idle); err != nil {
		return err
	}
	used, restarted := readUsage(procs).since(before)
	ctrl := used["controller"]
	delete(used, "controller")
	one, ok := used[e.lab.Nodes[0].Name]
	share := func(d time.Duration) string {
		return fmt.Sprintf("%s (%.2f%% of a core)", seconds(d), 100*d.Seconds()/e.cfg.idle.Seconds())
	}
	fmt.Printf("  idle %s: %s's speaker %s; all speakers: %s; the controller %s\n",
		e.cfg.idle, e.lab.Nodes[0].Name, share(one), perNode(used), share(ctrl))
	if !ok || len(restarted) > 0 {
		fmt.Printf("  restarted during the window (left out): %s\n", strings.Join(restarted, ", "))
		return nil
	}
	sum.set("steady", fmt.Sprintf("idle CPU of one speaker over %s", e.cfg.idle), e.mode, share(one))
	return nil
}

// latencies adds one Service at a time and prints p50 and p95 of the time from its create
// call until it is announced.
func (e *env) latencies(ctx context.Context, sum *summary) error {
	var first, all []time.Duration
	for i := range e.cfg.samples {
		f, a, err := e.latency(ctx, fmt.Sprintf("p%03d", i))
		if err != nil {
			return fmt.Errorf("sample %d: %w", i+1, err)
		}
		first, all = append(first, f), append(all, a)
		if err := sleep(ctx, samplePause); err != nil {
			return err
		}
	}
	slices.Sort(first)
	slices.Sort(all)
	pcts := func(d []time.Duration) string {
		return fmt.Sprintf("p50 %s, p95 %s", benchlab.Ms(benchlab.Pct(d, 50)), benchlab.Ms(benchlab.Pct(d, 95)))
	}
	how := fmt.Sprintf("its address is first claimed on the wire at the router (gratuitous ARP, or an answer to the router's ARP request asked every %s)", askPeriod(1))
	also := ""
	if e.mode == modeBGP {
		how = fmt.Sprintf("its prefix is in FRR's RIB (read every %s)", routePoll)
		also = fmt.Sprintf("; until it is there from all 3 nodes: %s", pcts(all))
	}
	fmt.Printf("  one more Service (%d times, %s apart), from the create call until %s: %s, max %s%s\n",
		len(first), samplePause, how, pcts(first), benchlab.Ms(first[len(first)-1]), also)
	sum.set("steady", fmt.Sprintf("one more Service → announced, p50 / p95 (%d)", len(first)), e.mode,
		fmt.Sprintf("%s / %s", benchlab.Ms(benchlab.Pct(first, 50)), benchlab.Ms(benchlab.Pct(first, 95))))
	return nil
}

// footprint prints the peak RSS of every speaker and of the controller, and the size of each
// SpeakerStatus as the API server returns it.
func (e *env) footprint(ctx context.Context, sum *summary) error {
	var rss []string
	var top int64
	for _, p := range append(e.speakers(), e.controller()) {
		b, err := peakRSS(p.p.Pid())
		if err != nil {
			return err
		}
		rss = append(rss, fmt.Sprintf("%s %s", p.name, mb(b)))
		if p.name == "controller" {
			sum.set("steady", "peak RSS (VmHWM) of the controller", e.mode, mb(b))
		} else {
			top = max(top, b)
		}
	}
	sum.set("steady", "peak RSS (VmHWM) of the largest speaker", e.mode, mb(top))
	sizes, largest, name, err := e.statusSizes(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("  peak RSS (VmHWM): %s\n", strings.Join(rss, ", "))
	fmt.Printf("  SpeakerStatus sizes (JSON from the API server): %s; the largest %s (%s)\n", sizes, kb(largest), name)
	sum.set("steady", "largest SpeakerStatus (JSON bytes)", e.mode, fmt.Sprintf("%s (%s)", kb(largest), name))
	return nil
}

// statusSizes reads every node's SpeakerStatus as JSON from the API server, raw.
func (e *env) statusSizes(ctx context.Context) (string, int, string, error) {
	var all []string
	largest, name := 0, ""
	for _, n := range e.lab.Nodes {
		b, err := e.cs.CoreV1().RESTClient().Get().AbsPath("/apis/vipcast.io/v1alpha1/speakerstatuses", n.Name).
			SetHeader("Accept", "application/json").DoRaw(ctx)
		if err != nil {
			return "", 0, "", fmt.Errorf("reading SpeakerStatus %s: %w", n.Name, err)
		}
		all = append(all, fmt.Sprintf("%s %s", n.Name, kb(len(b))))
		if len(b) > largest {
			largest, name = len(b), n.Name
		}
	}
	return strings.Join(all, ", "), largest, name, nil
}

// kb prints a size in bytes, and in kB (1,000 bytes).
func kb(b int) string { return fmt.Sprintf("%d bytes (%.1f kB)", b, float64(b)/1e3) }

// spread picks up to k addresses evenly over the sorted list.
func spread(addrs []netip.Addr, k int) []netip.Addr {
	slices.SortFunc(addrs, netip.Addr.Compare)
	if len(addrs) <= k {
		return addrs
	}
	out := make([]netip.Addr, 0, k)
	for i := range k {
		out = append(out, addrs[i*len(addrs)/k])
	}
	return out
}
