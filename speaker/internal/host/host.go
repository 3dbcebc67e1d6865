package host

import (
	"errors"
	"fmt"
	"path"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// ErrClosed is returned by a Host's methods after Close.
var ErrClosed = errors.New("host closed")

// dumpAttempts bounds how often a link or address dump interrupted by a concurrent change
// is read again before Links gives up.
const dumpAttempts = 3

// Host reads the links of one network namespace.
type Host struct {
	ns      netns.NsHandle // netns.None() for the caller's namespace: no setns, no capability
	nl      *netlink.Handle
	exclude []string

	// subscribeLinks and subscribeAddrs are netlink's; tests replace them.
	subscribeLinks func(chan<- netlink.LinkUpdate, <-chan struct{}, netlink.LinkSubscribeOptions) error
	subscribeAddrs func(chan<- netlink.AddrUpdate, <-chan struct{}, netlink.AddrSubscribeOptions) error

	mu      sync.RWMutex // held for reading while nl is in use, for writing to close
	closed  bool
	stop    chan struct{} // closed by Close: ends every watch
	watches sync.WaitGroup
}

// Open reads the caller's network namespace: the one the process's threads are in. It
// needs no capability. Links whose names are in exclude, or match one of its path.Match
// patterns, are never used.
func Open(exclude []string) (*Host, error) {
	return open(netns.None(), exclude)
}

// OpenIn reads the named network namespace at nsPath, such as "/var/run/netns/foo", with
// exclude as for Open. It enters the namespace to open its sockets, which needs
// CAP_SYS_ADMIN.
func OpenIn(nsPath string, exclude []string) (*Host, error) {
	if err := checkPatterns(exclude); err != nil {
		return nil, err
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	h, err := open(ns, exclude)
	if err != nil {
		_ = ns.Close()
		return nil, err
	}
	return h, nil
}

func open(ns netns.NsHandle, exclude []string) (*Host, error) {
	if err := checkPatterns(exclude); err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	return newHost(ns, nl, exclude), nil
}

func newHost(ns netns.NsHandle, nl *netlink.Handle, exclude []string) *Host {
	return &Host{
		ns:             ns,
		nl:             nl,
		exclude:        append([]string(nil), exclude...),
		subscribeLinks: netlink.LinkSubscribeWithOptions,
		subscribeAddrs: netlink.AddrSubscribeWithOptions,
		stop:           make(chan struct{}),
	}
}

func checkPatterns(patterns []string) error {
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("exclude pattern %q: %w", p, err)
		}
	}
	return nil
}

// Close ends every watch and releases the namespace and sockets. It waits for the watches
// to end; it may be called more than once.
func (h *Host) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.stop)
	h.mu.Unlock()
	h.watches.Wait()
	if h.nl != nil {
		h.nl.Close()
	}
	if h.ns.IsOpen() {
		_ = h.ns.Close()
	}
}

// Links returns the usable links sorted by name.
func (h *Host) Links() ([]Link, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return nil, ErrClosed
	}
	links, addrs, err := h.dump()
	if err != nil {
		return nil, err
	}
	return usable(links, addrs, h.exclude), nil
}

// dump reads every link and address, again when a concurrent change interrupted the dump.
func (h *Host) dump() ([]netlink.Link, []netlink.Addr, error) {
	for attempt := 1; ; attempt++ {
		links, err := h.nl.LinkList()
		if err == nil {
			var addrs []netlink.Addr
			if addrs, err = h.nl.AddrList(nil, netlink.FAMILY_ALL); err == nil {
				return links, addrs, nil
			}
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == dumpAttempts {
			return nil, nil, fmt.Errorf("list links and addresses: %w", err)
		}
	}
}
