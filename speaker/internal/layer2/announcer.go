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
	// defended is when each owned address was last defended; deferred marks those with a
	// defence due at the end of the interval (a claim came while defending was held back).
	defended map[owned]time.Time
	deferred map[owned]bool
	// users counts the addresses owned on each interface.
	users map[string]int
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
		gen: map[owned]uint64{}, defended: map[owned]time.Time{}, deferred: map[owned]bool{}, users: map[string]int{}}
}

// conflict handles a claim by mac for addr seen on iface: counted, defended with one
// announcement unless the address was defended less than DefendInterval ago (then once more
// when the interval ends, so the claimant's later announcements do not have the last word),
// and reported.
func (a *Announcer) conflict(r *responder, addr netip.Addr, mac net.HardwareAddr) {
	a.Stats.Conflicts.Add(1)
	c := Conflict{Addr: addr, MAC: mac, Interface: r.ifi.Name, At: time.Now()}
	k := owned{addr, r.ifi.Name}
	a.mu.Lock()
	mine := a.owned[addr][r.ifi.Name] && a.ifaces[r.ifi.Name] == r
	switch last := a.defended[k]; {
	case !mine:
	case c.At.Sub(last) >= DefendInterval:
		a.defended[k] = c.At
		c.Defended = true
	case !a.deferred[k]:
		a.deferred[k] = true
		time.AfterFunc(last.Add(DefendInterval).Sub(c.At), func() { a.defendLater(r, k) })
	}
	a.mu.Unlock()
	if c.Defended {
		a.defend(r, addr)
	}
	if a.onConflict != nil {
		a.onConflict(c)
	}
}

// defendLater sends the defence held back during the interval, if the address is still
// owned there.
func (a *Announcer) defendLater(r *responder, k owned) {
	a.mu.Lock()
	due := a.deferred[k] && a.owned[k.addr][k.iface] && a.ifaces[k.iface] == r
	delete(a.deferred, k)
	if due {
		a.defended[k] = time.Now()
	}
	a.mu.Unlock()
	if due {
		a.defend(r, k.addr)
	}
}

func (a *Announcer) defend(r *responder, addr netip.Addr) {
	if err := r.announce(addr); err != nil {
		r.sendFailed(err, "Cannot defend an address", addr)
		return
	}
	a.Stats.Defences.Add(1)
	a.Stats.Gratuitous.Add(1)
}

// dropStale closes the responders whose interface is gone, was re-created (another index),
// changed its MAC or is down, and forgets what they owned: Apply then reopens them on the
// interface as it is now and announces the addresses again. now are the interfaces as they
// are (nil: they could not be read, and nothing is dropped). Called with a.mu held.
func (a *Announcer) dropStale(now map[string]net.Interface) (dropped bool) {
	for name, r := range a.ifaces {
		cur, ok := now[name]
		if ok && cur.Index == r.ifi.Index && bytes.Equal(cur.HardwareAddr, r.ifi.HardwareAddr) && cur.Flags&net.FlagUp != 0 {
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
		delete(a.users, name)
		dropped = true
		go r.close()
	}
	return dropped
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
	// One read of the interfaces, before taking the lock the responders answer under.
	now := interfacesNow()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("announcer closed")
	}
	if now != nil {
		a.dropStale(now)
	}
	// Drop first: stop answering for what is no longer ours.
	for addr := range a.owned {
		if _, keep := want[addr]; !keep {
			a.set(addr, nil)
		}
	}
	var errs []error
	for addr, names := range want {
		errs = append(errs, a.set(addr, names)...)
	}
	a.closeUnused()
	return errors.Join(errs...)
}

// Update changes what is owned for the addresses in changes only (no interface: not owned),
// as Apply would for the whole set. With recheck (the caller does not know that the host's
// interfaces stayed as they were: reading them is a netlink dump, long on a node with a veth
// per pod), when an interface changed since the last Apply or Update (another index or MAC,
// or down), its addresses are dropped and nothing is changed: stale tells the caller to
// Apply the whole set, which reopens it.
func (a *Announcer) Update(changes map[netip.Addr][]string, recheck bool) (stale bool, err error) {
	var now map[string]net.Interface
	if recheck {
		now = interfacesNow()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false, errors.New("announcer closed")
	}
	if now != nil && a.dropStale(now) {
		return true, nil
	}
	var errs []error
	for addr, names := range changes {
		errs = append(errs, a.set(addr, names)...)
	}
	a.closeUnused()
	return false, errors.Join(errs...)
}

// set makes addr owned on names (none: not owned), dropping first. Called with a.mu held.
func (a *Announcer) set(addr netip.Addr, names []string) []error {
	if ifs := a.owned[addr]; ifs != nil {
		for name := range ifs {
			if !slices.Contains(names, name) {
				delete(ifs, name)
				delete(a.gen, owned{addr, name})
				delete(a.defended, owned{addr, name})
				a.users[name]--
				a.ifaces[name].leave(addr)
			}
		}
		if len(ifs) == 0 {
			delete(a.owned, addr)
		}
	}
	var errs []error
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
		a.users[name]++
		a.next++
		a.gen[owned{addr, name}] = a.next
		go a.burst(r, addr, name, a.next)
	}
	return errs
}

// interfacesNow lists the host's interfaces by name (nil when they cannot be read).
func interfacesNow() map[string]net.Interface {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := make(map[string]net.Interface, len(ifs))
	for _, i := range ifs {
		out[i.Name] = i
	}
	return out
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
	for n, r := range a.ifaces {
		if a.users[n] <= 0 {
			delete(a.users, n)
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
	a.deferred = map[owned]bool{}
	a.users = map[string]int{}
	ifaces := a.ifaces
	a.ifaces = map[string]*responder{}
	a.mu.Unlock()
	for _, r := range ifaces {
		r.close()
	}
}
