package e2e

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vipcast/vipcast/test/lab"
)

// hopWatch records when the router's next hops for a prefix change, polling them every
// few milliseconds. A change of the ECMP set rehashes flows: a TCP connection whose packets
// straddle it can land on a node without its conntrack entry and break, whatever the
// speakers do. Tests use it to tell such losses from losses the speakers cause.
type hopWatch struct {
	stop context.CancelFunc
	done chan struct{}

	mu      sync.Mutex
	changes [][2]time.Time // each change happened between these two polls
}

const hopPoll = 5 * time.Millisecond

func watchNextHops(ctx context.Context, prefix netip.Prefix) *hopWatch {
	ctx, stop := context.WithCancel(ctx)
	w := &hopWatch{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var last []netip.Addr
		var lastAt time.Time
		for ctx.Err() == nil {
			hops, err := cluster.Router.NextHops(ctx, prefix)
			now := time.Now()
			if err == nil {
				if !lastAt.IsZero() && !slices.Equal(hops, last) {
					w.mu.Lock()
					w.changes = append(w.changes, [2]time.Time{lastAt, now})
					w.mu.Unlock()
				}
				last, lastAt = hops, now
			}
			time.Sleep(hopPoll)
		}
	}()
	return w
}

// Stop ends the watch and returns how many changes it saw.
func (w *hopWatch) Stop() int {
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.changes)
}

// split sorts failed requests into those in flight while the next hops changed (the
// router's rehash) and the others.
func (w *hopWatch) split(samples []lab.Sample) (rehash, other []lab.Sample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range samples {
		if s.OK() {
			continue
		}
		end := s.Sent.Add(s.Took)
		if slices.ContainsFunc(w.changes, func(c [2]time.Time) bool { return !c[0].After(end) && !c[1].Before(s.Sent) }) {
			rehash = append(rehash, s)
		} else {
			other = append(other, s)
		}
	}
	return rehash, other
}
