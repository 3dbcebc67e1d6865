package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
	"github.com/vipcast/vipcast/test/lab"
)

// creation creates N Services one by one in a lab of 3 nodes and measures the time from the
// first create until every Service is announced, and the CPU the speakers and the
// controller used meanwhile.
func creation(ctx context.Context, cfg *config, mode string, sum *summary) (err error) {
	e, err := up(ctx, cfg, 3, mode)
	if err != nil {
		return err
	}
	defer func() { e.down(err) }()
	n := cfg.creationServices
	s := startSampler(ctx, append(e.speakers(), e.controller()))
	defer s.end()
	logf("creation, %s: creating %d Services one by one", mode, n)
	start, err := e.createSequential(ctx, n)
	if err != nil {
		return err
	}
	created := time.Since(start)
	logf("creation, %s: created in %s; waiting until all are announced", mode, created.Round(time.Millisecond))
	end, how, err := e.allAnnounced(ctx, n)
	if err != nil {
		return err
	}
	// The sampler reads every samplePeriod: wait for its first reading after the end.
	if err := sleep(ctx, 2*samplePeriod); err != nil {
		return err
	}
	used, restarted := s.at(end).since(s.first())
	speakers := used
	ctrl := speakers["controller"]
	delete(speakers, "controller")
	took := end.Sub(start)

	fmt.Printf("creation, %s: %d Services created one by one (one client, each create waiting only for its answer) in %s; all announced %s after the first create (%s)\n",
		mode, n, benchlab.Ms(created), benchlab.Ms(took), how)
	fmt.Printf("  CPU from the first create until then: the 3 speakers %s (%s), the controller %s (CPU read every %s)\n",
		seconds(total(speakers)), perNode(speakers), seconds(ctrl), samplePeriod)
	if len(restarted) > 0 {
		fmt.Printf("  restarted during the run (their CPU is left out): %s\n", strings.Join(restarted, ", "))
	}
	sum.set("creation", "Services created one by one (N), 3 nodes", mode, fmt.Sprintf("%d in %s", n, benchlab.Ms(created)))
	sum.set("creation", "first create → last Service announced", mode, benchlab.Ms(took))
	sum.set("creation", "speakers' CPU (3 together)", mode, seconds(total(speakers)))
	sum.set("creation", "controller CPU", mode, seconds(ctrl))
	return nil
}

// allAnnounced waits until the n bulk Services are all announced and returns when the last
// one was, and how that was told.
func (e *env) allAnnounced(ctx context.Context, n int) (time.Time, string, error) {
	if e.mode == modeBGP {
		at, err := e.waitRIB(ctx, n)
		return at, fmt.Sprintf("all %d prefixes in FRR's RIB from each of the 3 nodes, its summary read every %s", n, ribPoll), err
	}
	if _, err := e.addressOf(ctx, bulkName(n-1)); err != nil {
		return time.Time{}, "", err
	}
	if err := e.waitAssigned(ctx, n); err != nil {
		return time.Time{}, "", err
	}
	byName, err := e.addresses(ctx)
	if err != nil {
		return time.Time{}, "", err
	}
	addrs := make([]netip.Addr, 0, n)
	for i := range n {
		a, ok := byName[bulkName(i)]
		if !ok {
			return time.Time{}, "", fmt.Errorf("no address on Service %s", bulkName(i))
		}
		addrs = append(addrs, a)
	}
	w, err := e.waitClaimed(ctx, addrs)
	return w.last, fmt.Sprintf("the last of the %d addresses first claimed on the wire, seen from the router's fabric port: %s", n, w), err
}

// perNode prints each speaker's CPU in node order.
func perNode(used map[string]time.Duration) string {
	var parts []string
	for i := 1; i <= lab.MaxNodes; i++ {
		if c, ok := used[fmt.Sprintf("node-%d", i)]; ok {
			parts = append(parts, fmt.Sprintf("node-%d %s", i, seconds(c)))
		}
	}
	return strings.Join(parts, ", ")
}
