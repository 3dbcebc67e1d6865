package layer2

import (
	"bytes"
	"errors"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Stats counts what the announcer saw and sent.
type Stats struct {
	ARPRequests, ARPReplies             atomic.Uint64 // requests for owned addresses, replies sent
	NDPSolicitations, NDPAdvertisements atomic.Uint64 // the same for NDP
	Gratuitous                          atomic.Uint64 // gratuitous ARP / unsolicited NA sent
	Dropped                             atomic.Uint64 // frames that could not be read or parsed
	NotForUs                            atomic.Uint64 // frames addressed to another host's MAC
	SendErrors                          atomic.Uint64 // replies and announcements that could not be sent
	Conflicts                           atomic.Uint64 // claims by another MAC for an owned address
	Defences                            atomic.Uint64 // announcements sent to defend an owned address
}

// DefendInterval is how often an owned address is defended against another claimant at most
// (RFC 5227's DEFEND_INTERVAL): two defenders cannot flood the link.
var DefendInterval = 10 * time.Second

// Conflict is another MAC claiming an address this node owns: an ARP packet whose sender is
// the address, or a neighbour advertisement for it.
type Conflict struct {
	Addr      netip.Addr
	MAC       net.HardwareAddr
	Interface string
	At        time.Time
	// Defended is true when this claim was answered with an announcement.
	Defended bool
}

// Burst is when gratuitous announcements go out after taking an address over: at once, then
// again in case the first ones were lost or a neighbour was busy.
var Burst = []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, time.Second, 2 * time.Second}

// Announcer owns addresses on interfaces. Apply gives it the full desired set; it changes
// only what differs, stops answering for a dropped address at once, and announces a new one
// with a Burst of gratuitous packets.
type Announcer struct {
	Stats      Stats
	log        logr.Logger
	onConflict func(Conflict)

	mu     sync.RWMutex
	owned  map[netip.Addr]map[string]bool // address → interfaces
	ifaces map[string]*responder
	gen    map[owned]uint64 // bumped on every take-over, so an old burst stops
	next   uint64
	closed bool
	// defended is when each owned address was last defended.
	defended map[owned]time.Time
}

// owned is one address on one interface.
type owned struct {
	addr  netip.Addr
	iface string
}

// New makes an announcer that owns nothing yet. onConflict (may be nil) hears of every
// claim by another MAC for an owned address; it must not block.
func New(log logr.Logger, onConflict func(Conflict)) *Announcer {
	return &Announcer{log: log, onConflict: onConflict, owned: map[netip.Addr]map[string]bool{}, ifaces: map[string]*responder{},
		gen: map[owned]uint64{}, defended: map[owned]time.Time{}}
}

// conflict handles a claim by mac for addr seen on iface: counted, defended with one
// announcement unless the address was defended less than DefendInterval ago, and reported.
func (a *Announcer) conflict(r *responder, addr netip.Addr, mac net.HardwareAddr) {
	a.Stats.Conflicts.Add(1)
	c := Conflict{Addr: addr, MAC: mac, Interface: r.ifi.Name, At: time.Now()}
	k := owned{addr, r.ifi.Name}
	a.mu.Lock()
	if a.owned[addr][r.ifi.Name] && a.ifaces[r.ifi.Name] == r && c.At.Sub(a.defended[k]) >= DefendInterval {
		a.defended[k] = c.At
		c.Defended = true
	}
	a.mu.Unlock()
	if c.Defended {
		if err := r.announce(addr); err != nil {
			r.sendFailed(err, "Cannot defend an address", addr)
		} else {
			a.Stats.Defences.Add(1)
			a.Stats.Gratuitous.Add(1)
		}
	}
	if a.onConflict != nil {
		a.onConflict(c)
	}
}

// dropStale closes the responders whose interface is gone, was re-created (another index),
// changed its MAC or is down, and forgets what they owned: Apply then reopens them on the
// interface as it is now and announces the addresses again. Called with a.mu held.
func (a *Announcer) dropStale() {
	for name, r := range a.ifaces {
		cur, err := net.InterfaceByName(name)
		if err == nil && cur.Index == r.ifi.Index && bytes.Equal(cur.HardwareAddr, r.ifi.HardwareAddr) && cur.Flags&net.FlagUp != 0 {
			continue
		}
		a.log.Info("Interface changed; reopening", "interface", name)
		for addr, ifs := range a.owned {
			if ifs[name] {
				delete(ifs, name)
				delete(a.gen, owned{addr, name})
				delete(a.defended, owned{addr, name})
				if len(ifs) == 0 {
					delete(a.owned, addr)
				}
			}
		}
		delete(a.ifaces, name)
		go r.close()
	}
}

func (a *Announcer) ownsOn(iface string) func(netip.Addr) bool {
	return func(addr netip.Addr) bool {
		a.mu.RLock()
		defer a.mu.RUnlock()
		return a.owned[addr][iface]
	}
}

// Owned returns the addresses owned now and their interfaces.
func (a *Announcer) Owned() map[netip.Addr][]string {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make(map[netip.Addr][]string, len(a.owned))
	for addr, ifs := range a.owned {
		out[addr] = slices.Sorted(maps.Keys(ifs))
	}
	return out
}

// Apply makes want (address → interface names) the owned set. An interface that cannot be
// opened is reported in the error; the addresses on the other interfaces are applied.
func (a *Announcer) Apply(want map[netip.Addr][]string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("announcer closed")
	}
	var errs []error
	a.dropStale()
	// Drop first: stop answering for what is no longer ours.
	for addr, ifs := range a.owned {
		for name := range ifs {
			if !slices.Contains(want[addr], name) {
				delete(ifs, name)
				delete(a.gen, owned{addr, name})
				delete(a.defended, owned{addr, name})
				a.ifaces[name].leave(addr)
			}
		}
		if len(ifs) == 0 {
			delete(a.owned, addr)
		}
	}
	for addr, names := range want {
		for _, name := range names {
			if a.owned[addr][name] {
				continue
			}
			r, err := a.responder(name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if err := r.join(addr); err != nil {
				errs = append(errs, err)
			}
			if a.owned[addr] == nil {
				a.owned[addr] = map[string]bool{}
			}
			a.owned[addr][name] = true
			a.next++
			a.gen[owned{addr, name}] = a.next
			go a.burst(r, addr, name, a.next)
		}
	}
	a.closeUnused()
	return errors.Join(errs...)
}

// Reannounce sends a new Burst of gratuitous packets for every address owned: after a
// change of members, a neighbour may hold the MAC of a node that claimed an address while it
// could not see this one (a speaker that had not joined yet, a healed partition), and only
// the owner's announcement corrects it. Older bursts stop.
func (a *Announcer) Reannounce() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for addr, ifs := range a.owned {
		for name := range ifs {
			r := a.ifaces[name]
			if r == nil {
				continue
			}
			a.next++
			a.gen[owned{addr, name}] = a.next
			go a.burst(r, addr, name, a.next)
		}
	}
}

// responder returns the open responder of an interface, opening it on first use. Called
// with a.mu held.
func (a *Announcer) responder(name string) (*responder, error) {
	if r := a.ifaces[name]; r != nil {
		return r, nil
	}
	r, err := openResponder(name, a.ownsOn(name), a.conflict, &a.Stats, a.log)
	if err != nil {
		return nil, err
	}
	a.ifaces[name] = r
	return r, nil
}

func (a *Announcer) closeUnused() {
	used := map[string]bool{}
	for _, ifs := range a.owned {
		for n := range ifs {
			used[n] = true
		}
	}
	for n, r := range a.ifaces {
		if !used[n] {
			delete(a.ifaces, n)
			go r.close()
		}
	}
}

// burst sends the gratuitous announcements of one take-over, stopping when the address is
// dropped or taken over again.
func (a *Announcer) burst(r *responder, addr netip.Addr, iface string, gen uint64) {
	start := time.Now()
	for _, at := range Burst {
		time.Sleep(time.Until(start.Add(at)))
		a.mu.RLock()
		current := a.gen[owned{addr, iface}] == gen
		a.mu.RUnlock()
		if !current {
			return
		}
		if err := r.announce(addr); err != nil {
			r.sendFailed(err, "Cannot send a gratuitous announcement", addr)
			continue
		}
		a.Stats.Gratuitous.Add(1)
	}
}

// Close stops answering for everything and closes the sockets.
func (a *Announcer) Close() {
	a.mu.Lock()
	a.closed = true
	a.owned = map[netip.Addr]map[string]bool{}
	a.gen = map[owned]uint64{}
	a.defended = map[owned]time.Time{}
	ifaces := a.ifaces
	a.ifaces = map[string]*responder{}
	a.mu.Unlock()
	for _, r := range ifaces {
		r.close()
	}
}
