package host

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// waitTimeout bounds every wait in these tests; generous, since a busy machine is slow.
const waitTimeout = 10 * time.Second

// fakeFeed stands in for one of netlink's subscribe functions.
type fakeFeed[T any] struct {
	mu       sync.Mutex
	failures int // how many of the next calls fail
	subs     []*fakeSub[T]
	calls    chan struct{} // one value per call
}

type fakeSub[T any] struct {
	ch      chan<- T
	onError func(error)
	once    sync.Once
	ended   chan struct{}
}

func newFakeFeed[T any]() *fakeFeed[T] {
	return &fakeFeed[T]{calls: make(chan struct{}, 100)}
}

func (f *fakeFeed[T]) subscribe(ch chan<- T, done <-chan struct{}, onError func(error)) error {
	f.mu.Lock()
	defer func() {
		f.mu.Unlock()
		f.calls <- struct{}{}
	}()
	if f.failures > 0 {
		f.failures--
		return errors.New("fake subscription refused")
	}
	s := &fakeSub[T]{ch: ch, onError: onError, ended: make(chan struct{})}
	f.subs = append(f.subs, s)
	go func() {
		<-done
		s.end(errors.New("fake socket closed"))
	}()
	return nil
}

// end fails the subscription as netlink does: the error callback, then the channel closes.
// With a nil error the callback is skipped, so that a notification can only come from the
// subscription opened again.
func (s *fakeSub[T]) end(err error) {
	s.once.Do(func() {
		if err != nil {
			s.onError(err)
		}
		close(s.ended) // first, so that a closed channel implies it
		close(s.ch)
	})
}

func (f *fakeFeed[T]) last(t *testing.T) *fakeSub[T] {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 {
		t.Fatal("no subscription")
	}
	return f.subs[len(f.subs)-1]
}

func (f *fakeFeed[T]) fail(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = n
}

func (f *fakeFeed[T]) waitCalls(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-f.calls:
		case <-time.After(waitTimeout):
			t.Fatalf("subscribe called %d times, want %d", i, n)
		}
	}
}

type fakes struct {
	links *fakeFeed[netlink.LinkUpdate]
	addrs *fakeFeed[netlink.AddrUpdate]
}

// fakeHost returns a Host whose subscriptions are fakes; it has no netlink handle.
func fakeHost(t *testing.T) (*Host, fakes) {
	t.Helper()
	f := fakes{links: newFakeFeed[netlink.LinkUpdate](), addrs: newFakeFeed[netlink.AddrUpdate]()}
	h := newHost(netns.None(), nil, nil)
	h.subscribeLinks = func(ch chan<- netlink.LinkUpdate, done <-chan struct{}, o netlink.LinkSubscribeOptions) error {
		return f.links.subscribe(ch, done, o.ErrorCallback)
	}
	h.subscribeAddrs = func(ch chan<- netlink.AddrUpdate, done <-chan struct{}, o netlink.AddrSubscribeOptions) error {
		return f.addrs.subscribe(ch, done, o.ErrorCallback)
	}
	t.Cleanup(h.Close)
	return h, f
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func wantNote(t *testing.T, c <-chan struct{}, after string) {
	t.Helper()
	select {
	case _, ok := <-c:
		if !ok {
			t.Fatalf("watch ended; want a notification after %s", after)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no notification within %v after %s", waitTimeout, after)
	}
}

func wantClosed(t *testing.T, c <-chan struct{}) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-c:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel still open")
		}
	}
}

func TestWatchNotifiesAndCoalesces(t *testing.T) {
	h, f := fakeHost(t)
	notes, err := h.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cap(notes) != 1 {
		t.Errorf("channel capacity %d, want 1", cap(notes))
	}
	f.links.last(t).ch <- netlink.LinkUpdate{}
	wantNote(t, notes, "a link update")
	f.addrs.last(t).ch <- netlink.AddrUpdate{}
	wantNote(t, notes, "an address update")
	f.links.last(t).onError(errors.New("a message that did not parse"))
	wantNote(t, notes, "an error that may hide a change")

	// Many updates unread leave one value, and nothing blocks.
	for range 3 * updateBuffer {
		f.links.last(t).ch <- netlink.LinkUpdate{}
	}
	wantNote(t, notes, "a burst of updates")
}

func TestWatchResubscribes(t *testing.T) {
	h, f := fakeHost(t)
	notes, err := h.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	f.links.waitCalls(t, 1)
	f.addrs.waitCalls(t, 1)

	first := f.links.last(t)
	drain(notes)
	first.end(nil)
	f.links.waitCalls(t, 1)
	wantNote(t, notes, "subscribing to links again")
	if f.links.last(t) == first {
		t.Fatal("no new link subscription")
	}
	f.links.last(t).ch <- netlink.LinkUpdate{}
	wantNote(t, notes, "an update on the new subscription")

	// Subscribing fails twice: the watch keeps trying, after a pause.
	f.addrs.fail(2)
	drain(notes)
	f.addrs.last(t).end(nil)
	f.addrs.waitCalls(t, 3)
	wantNote(t, notes, "subscribing to addresses again")
	f.addrs.last(t).ch <- netlink.AddrUpdate{}
	wantNote(t, notes, "an update on the new address subscription")
}

func TestWatchEnds(t *testing.T) {
	t.Run("with its context", func(t *testing.T) {
		h, f := fakeHost(t)
		ctx, cancel := context.WithCancel(t.Context())
		notes, err := h.Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		wantClosed(t, notes)
		for _, ended := range []chan struct{}{f.links.last(t).ended, f.addrs.last(t).ended} {
			select {
			case <-ended:
			default:
				t.Error("a subscription outlived its watch")
			}
		}
	})
	t.Run("when the host closes", func(t *testing.T) {
		h, _ := fakeHost(t)
		notes, err := h.Watch(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		wantClosed(t, notes)
		if _, err := h.Watch(t.Context()); !errors.Is(err, ErrClosed) {
			t.Errorf("Watch after Close: %v, want ErrClosed", err)
		}
		if _, err := h.Links(); !errors.Is(err, ErrClosed) {
			t.Errorf("Links after Close: %v, want ErrClosed", err)
		}
	})
}

func TestWatchFailsToStart(t *testing.T) {
	h, f := fakeHost(t)
	f.addrs.fail(1)
	if _, err := h.Watch(t.Context()); err == nil {
		t.Fatal("Watch succeeded without an address subscription")
	}
	select {
	case <-f.links.last(t).ended:
	case <-time.After(waitTimeout):
		t.Error("the link subscription outlived the failed Watch")
	}
	closed := make(chan struct{})
	go func() {
		h.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(waitTimeout):
		t.Fatal("Close waits for a watch that never started")
	}
}
