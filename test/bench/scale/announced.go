package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
	"github.com/vipcast/vipcast/test/lab"
)

const (
	// pollFast is the period of the waits that time one Service.
	pollFast = 5 * time.Millisecond
	// pollClaims is how often the wait for many addresses reads the ARP watch.
	pollClaims = 100 * time.Millisecond
	// askAfter is how long an address may go without a gratuitous ARP before the router asks
	// for it (the owner announces each new address with a burst of them; the watch's socket
	// can miss some when thousands come at once).
	askAfter = 2 * time.Second
	// ribPoll is the period of the reads of FRR's summary while many prefixes come in.
	ribPoll = 250 * time.Millisecond
	// routePoll is the period of the reads of FRR's RIB for one prefix.
	routePoll = 10 * time.Millisecond
)

// askPeriod is how often each of n addresses asked for together is asked again.
func askPeriod(n int) time.Duration {
	return time.Duration(max((n+arpPerTick-1)/arpPerTick, 1)) * arpEvery
}

// wire is what the ARP watch said about a set of addresses.
type wire struct {
	// last is the latest of their first claims: when the last of them was announced.
	last time.Time
	// replies counts the first claims that were answers to the router's questions (the
	// others were gratuitous); asked counts the addresses asked for.
	replies, asked int
}

func (w wire) String() string {
	return fmt.Sprintf("%d first seen in a reply to the router's ARP request, the others by gratuitous ARP; %d asked for after %s without one", w.replies, w.asked, askAfter)
}

// waitClaimed waits until every address has been claimed on the wire, seen from the
// router's fabric port, asking for those still silent askAfter into the wait.
func (e *env) waitClaimed(ctx context.Context, addrs []netip.Addr) (wire, error) {
	start := time.Now()
	pending := addrs
	asked := map[netip.Addr]bool{}
	err := benchlab.PollEvery(ctx, pollClaims, e.cfg.timeout, func(context.Context) error {
		var still []netip.Addr
		for _, a := range pending {
			if _, ok := e.arp.First(a, ""); !ok {
				still = append(still, a)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Since(start) >= askAfter {
			var fresh []netip.Addr
			for _, a := range pending {
				if !asked[a] {
					asked[a] = true
					fresh = append(fresh, a)
				}
			}
			e.arp.Ask("", fresh...)
		}
		return fmt.Errorf("%d of %d addresses not claimed on the wire", len(pending), len(addrs))
	})
	res := wire{asked: len(asked)}
	if err != nil {
		return res, err
	}
	for _, a := range addrs {
		c, _ := e.arp.First(a, "")
		if c.At.After(res.last) {
			res.last = c.At
		}
		if c.Kind == lab.ClaimReply {
			res.replies++
		}
	}
	return res, nil
}

// waitRIB waits until FRR holds at least n prefixes from every node and returns when it saw
// that (at most ribPoll late).
func (e *env) waitRIB(ctx context.Context, n int) (time.Time, error) {
	var at time.Time
	err := benchlab.PollEvery(ctx, ribPoll, e.cfg.timeout, func(ctx context.Context) error {
		byPeer, err := e.lab.Router.ReceivedPrefixes(ctx, true)
		if err != nil {
			return err
		}
		if len(byPeer) < len(e.lab.Nodes) {
			return fmt.Errorf("%d sessions for %d nodes", len(byPeer), len(e.lab.Nodes))
		}
		for peer, got := range byPeer {
			if got < n {
				return fmt.Errorf("%d of %d prefixes from %s", got, n, peer)
			}
		}
		at = time.Now()
		return nil
	})
	return at, err
}

// latency creates one more Service and times, from the create call, until its address is
// announced: claimed on the wire (L2), or in FRR's RIB from one node and from all (BGP).
func (e *env) latency(ctx context.Context, name string) (first, all time.Duration, err error) {
	start := time.Now()
	if err := e.fast.Create(ctx, service(name)); err != nil {
		return 0, 0, err
	}
	addr, err := e.addressOf(ctx, name)
	if err != nil {
		return 0, 0, err
	}
	if e.mode == modeL2 {
		e.arp.Ask("", addr)
		var c lab.Claim
		err := benchlab.PollEvery(ctx, time.Millisecond, e.cfg.timeout, func(context.Context) error {
			var ok bool
			if c, ok = e.arp.First(addr, ""); !ok {
				return fmt.Errorf("%s not claimed on the wire", addr)
			}
			return nil
		})
		return c.At.Sub(start), c.At.Sub(start), err
	}
	prefix := netip.PrefixFrom(addr, 32)
	err = benchlab.PollEvery(ctx, routePoll, e.cfg.timeout, func(ctx context.Context) error {
		paths, err := e.lab.Router.Paths(ctx, prefix)
		if err != nil {
			return err
		}
		if len(paths) > 0 && first == 0 {
			first = time.Since(start)
		}
		if len(paths) < len(e.lab.Nodes) {
			return fmt.Errorf("%s: %d paths in FRR", prefix, len(paths))
		}
		all = time.Since(start)
		return nil
	})
	return first, all, err
}

// claimedBy waits until every address is claimed by a MAC other than except ("": any) and
// returns each one's first such claim; after timeout, the addresses never claimed are left
// out (not an error).
func (e *env) claimedBy(ctx context.Context, addrs []netip.Addr, except string, timeout time.Duration) (map[netip.Addr]lab.Claim, error) {
	out := map[netip.Addr]lab.Claim{}
	err := benchlab.PollEvery(ctx, pollFast, timeout, func(context.Context) error {
		for _, a := range addrs {
			if c, ok := e.arp.First(a, except); ok {
				out[a] = c
			}
		}
		if len(out) < len(addrs) {
			return fmt.Errorf("%d of %d addresses claimed", len(out), len(addrs))
		}
		return nil
	})
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return out, err
	}
	return out, nil
}
