package host

import (
	"context"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

const (
	// updateBuffer is how many netlink updates a subscription may hold unread.
	updateBuffer = 64
	// receiveBuffer is the socket buffer asked for each subscription, so that a burst of
	// changes (a bond with many VLANs re-created) overflows it less often; an overflow
	// ends the subscription and the watch opens it again.
	receiveBuffer = 1 << 20
	// retryFirst and retryMax bound the pause between failed attempts to subscribe again.
	retryFirst = 100 * time.Millisecond
	retryMax   = 5 * time.Second
)

// Watch sends a value on the returned channel after every link or address change. Values
// coalesce (the channel holds one), so a reader calls Links after each. When a netlink
// subscription fails it is opened again, with a pause that grows while that fails, and a
// value is sent once it is back since changes may have been missed. The channel is closed
// when ctx ends or the Host is closed.
func (h *Host) Watch(ctx context.Context) (<-chan struct{}, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	h.watches.Add(1)
	h.mu.Unlock()

	w := &watcher{h: h, out: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
	if err := w.open(); err != nil {
		w.closeSubscriptions()
		h.watches.Done()
		return nil, err
	}
	go w.run(ctx)
	return w.out, nil
}

// subscription is one netlink subscription: closing done ends it, and netlink then
// closes ch.
type subscription[T any] struct {
	ch   chan T
	done chan struct{}
}

// end stops the subscription and drains it until netlink closes it, so that netlink's
// reader is not left blocked on a send.
func (s *subscription[T]) end() {
	if s == nil {
		return
	}
	close(s.done)
	for range s.ch {
	}
}

// updates returns s's channel, or nil (never ready) when s is missing.
func updates[T any](s *subscription[T]) <-chan T {
	if s == nil {
		return nil
	}
	return s.ch
}

type watcher struct {
	h     *Host
	out   chan struct{}
	kick  chan struct{} // netlink reported an error: something may have been missed
	links *subscription[netlink.LinkUpdate]
	addrs *subscription[netlink.AddrUpdate]
}

func (w *watcher) run(ctx context.Context) {
	defer w.h.watches.Done()
	defer close(w.out)
	defer w.closeSubscriptions()

	retry := time.NewTimer(retryFirst)
	retry.Stop()
	delay := retryFirst
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.h.stop:
			return
		case <-w.kick:
			w.notify()
			continue
		case _, ok := <-updates(w.links):
			if ok {
				w.notify()
				continue
			}
			close(w.links.done)
			w.links = nil
		case _, ok := <-updates(w.addrs):
			if ok {
				w.notify()
				continue
			}
			close(w.addrs.done)
			w.addrs = nil
		case <-retry.C:
		}
		// A subscription ended, or the pause after a failed attempt is over: open what is
		// missing, or try again after a longer pause.
		if err := w.open(); err != nil {
			retry.Reset(delay)
			delay = min(2*delay, retryMax)
			continue
		}
		retry.Stop()
		delay = retryFirst
		w.notify()
	}
}

// open opens the subscriptions that are missing.
func (w *watcher) open() error {
	onError := func(error) {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	if w.links == nil {
		s := &subscription[netlink.LinkUpdate]{ch: make(chan netlink.LinkUpdate, updateBuffer), done: make(chan struct{})}
		err := w.h.subscribeLinks(s.ch, s.done, netlink.LinkSubscribeOptions{
			Namespace: &w.h.ns, ErrorCallback: onError, ReceiveBufferSize: receiveBuffer})
		if err != nil {
			close(s.done)
			return fmt.Errorf("subscribe to link changes: %w", err)
		}
		w.links = s
	}
	if w.addrs == nil {
		s := &subscription[netlink.AddrUpdate]{ch: make(chan netlink.AddrUpdate, updateBuffer), done: make(chan struct{})}
		err := w.h.subscribeAddrs(s.ch, s.done, netlink.AddrSubscribeOptions{
			Namespace: &w.h.ns, ErrorCallback: onError, ReceiveBufferSize: receiveBuffer})
		if err != nil {
			close(s.done)
			return fmt.Errorf("subscribe to address changes: %w", err)
		}
		w.addrs = s
	}
	return nil
}

func (w *watcher) closeSubscriptions() {
	w.links.end()
	w.addrs.end()
	w.links, w.addrs = nil, nil
}

// notify sends a value unless one is already waiting.
func (w *watcher) notify() {
	select {
	case w.out <- struct{}{}:
	default:
	}
}
