package membership

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/hashicorp/memberlist"
)

// Timers are the failure detector's settings.
type Timers struct {
	// ProbeInterval is how often each member probes a random other one.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe's ack may take before indirect probes start.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspected member has to refute before it is declared
	// dead: SuspicionMult × log10(members) × ProbeInterval, at least one interval each.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout Lifeguard starts from (it shrinks
	// towards the minimum as other members confirm the suspicion). With few nodes there is
	// little to confirm, so this is what a crash costs.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often state is gossiped.
	GossipInterval time.Duration
}

// FastTimers detect a dead speaker in well under a second on a LAN: a 100 ms probe with a
// 50 ms timeout, suspicion for 0.3 to 0.6 s, gossip every 50 ms. memberlist's own LAN
// defaults (1 s, 500 ms, ×4, up to ×6) take 3 to 6 seconds.
func FastTimers() Timers {
	return Timers{ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
		SuspicionMult: 3, SuspicionMaxTimeoutMult: 2, GossipInterval: 50 * time.Millisecond}
}

// Config starts a member.
type Config struct {
	// Node is this member's name: the node name.
	Node string
	// BindAddr and Port are where it listens (UDP and TCP) and what it advertises.
	BindAddr string
	Port     int
	// Key encrypts and authenticates gossip (16, 24 or 32 bytes); empty sends clear text.
	Key    []byte
	Timers Timers
	Log    logr.Logger
	// JoinTimeout bounds each dial of a peer while joining (memberlist's TCP timeout).
	JoinTimeout time.Duration
}

// Cluster is this speaker's view of the live speakers.
type Cluster struct {
	ml      *memberlist.Memberlist
	self    string
	log     logr.Logger
	changes chan struct{}

	mu    sync.Mutex
	alive map[string]bool
	meta  map[string][]byte // each live member's metadata, this one's included
	// departed holds the last metadata of members that left or died, until they return.
	departed map[string][]byte
	mine     []byte // this member's metadata
	// joined turns true the first time another member is seen alive, and stays true.
	joined bool
}

// MetaMaxSize is the most metadata a member can publish.
const MetaMaxSize = memberlist.MetaMaxSize

// Start runs a member alone; Join brings in the others.
func Start(cfg Config) (*Cluster, error) {
	if n := len(cfg.Key); n != 0 && n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("the memberlist key must be 16, 24 or 32 bytes, not %d", n)
	}
	c := &Cluster{log: cfg.Log, self: cfg.Node, changes: make(chan struct{}, 1), alive: map[string]bool{}, meta: map[string][]byte{}, departed: map[string][]byte{}}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Node
	mc.BindAddr, mc.BindPort = cfg.BindAddr, cfg.Port
	mc.AdvertiseAddr, mc.AdvertisePort = cfg.BindAddr, cfg.Port
	mc.SecretKey = cfg.Key
	mc.ProbeInterval, mc.ProbeTimeout = cfg.Timers.ProbeInterval, cfg.Timers.ProbeTimeout
	mc.SuspicionMult, mc.GossipInterval = cfg.Timers.SuspicionMult, cfg.Timers.GossipInterval
	mc.SuspicionMaxTimeoutMult = cfg.Timers.SuspicionMaxTimeoutMult
	// A dead member's state is gossiped for a while, a restarted one rejoins quickly.
	mc.GossipToTheDeadTime = 5 * time.Second
	mc.PushPullInterval = 10 * time.Second
	if cfg.JoinTimeout > 0 {
		mc.TCPTimeout = cfg.JoinTimeout
	}
	mc.Events = &events{c: c}
	mc.Delegate = &delegate{c: c}
	mc.Logger = log.New(&logWriter{log: cfg.Log}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Port)), err)
	}
	c.ml = ml
	return c, nil
}

// Join contacts the given members (host:port), all at once, and returns how many answered.
// Members already known are skipped; an unreachable one is not an error while one answered.
func (c *Cluster) Join(addrs []string) (int, error) {
	known := map[string]bool{}
	for _, m := range c.ml.Members() {
		known[m.Address()] = true
	}
	var todo []string
	for _, a := range addrs {
		if !known[a] {
			todo = append(todo, a)
		}
	}
	if len(todo) == 0 {
		return 0, nil
	}
	// memberlist dials one address after the other, each up to its TCP timeout: a few dead
	// nodes would hold up the join for seconds. Dial them in parallel instead.
	var wg sync.WaitGroup
	var mu sync.Mutex
	joined := 0
	var errs []error
	for _, a := range todo {
		wg.Go(func() {
			n, err := c.ml.Join([]string{a})
			mu.Lock()
			defer mu.Unlock()
			joined += n
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if joined > 0 {
		return joined, nil
	}
	return 0, errors.Join(errs...)
}

// Joined tells whether another member has ever been seen alive: the speaker has joined the
// cluster (it stays true when the others die later).
func (c *Cluster) Joined() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined
}

// SetMeta publishes this member's metadata (at most memberlist.MetaMaxSize bytes) to the
// others, waiting up to timeout for the update to be broadcast; when that takes longer it
// returns ErrMetaQueued, and the update still goes out with the next gossip.
func (c *Cluster) SetMeta(b []byte, timeout time.Duration) error {
	if len(b) > memberlist.MetaMaxSize {
		return fmt.Errorf("metadata of %d bytes exceeds %d", len(b), memberlist.MetaMaxSize)
	}
	c.mu.Lock()
	if bytes.Equal(c.mine, b) {
		c.mu.Unlock()
		return nil
	}
	before := c.mine
	c.mine = bytes.Clone(b)
	c.mu.Unlock()
	err := c.ml.UpdateNode(max(timeout, time.Millisecond))
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "timeout"):
		// Queued: it goes out with the next gossip.
		return fmt.Errorf("%w: %w", ErrMetaQueued, err)
	default:
		// Not sent: the next SetMeta tries again.
		c.mu.Lock()
		c.mine = before
		c.mu.Unlock()
		return err
	}
}

// ErrMetaQueued says the metadata update was not broadcast within the timeout; it goes out with
// the next gossip.
var ErrMetaQueued = errors.New("metadata update queued")

// Departed returns the last metadata of each member that left or died and has not returned.
func (c *Cluster) Departed() map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.departed)
}

// Meta returns the metadata of each live member.
func (c *Cluster) Meta() map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.meta)
}

// Members returns the live members' names (suspected members count as alive until they
// are declared dead).
func (c *Cluster) Members() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.alive)
}

// Changes receives a value after every change of Members (coalesced).
func (c *Cluster) Changes() <-chan struct{} { return c.changes }

// Leave tells the others this member is going, waiting up to timeout for the message to go
// out, so they take over at once instead of after failure detection.
func (c *Cluster) Leave(timeout time.Duration) error { return c.ml.Leave(timeout) }

// Shutdown stops the member without a word (after Leave, or as a crash would).
func (c *Cluster) Shutdown() error { return c.ml.Shutdown() }

func (c *Cluster) set(n *memberlist.Node, alive bool) {
	name := n.Name
	c.mu.Lock()
	changed := c.alive[name] != alive
	metaChanged := alive && !bytes.Equal(c.meta[name], n.Meta)
	if alive {
		c.alive[name] = true
		c.meta[name] = bytes.Clone(n.Meta)
		delete(c.departed, name)
		if name != c.self {
			c.joined = true
		}
	} else {
		delete(c.alive, name)
		delete(c.meta, name)
		c.departed[name] = bytes.Clone(n.Meta)
	}
	c.mu.Unlock()
	if changed {
		c.log.Info("Member changed", "member", name, "alive", alive)
	}
	if changed || metaChanged {
		select {
		case c.changes <- struct{}{}:
		default:
		}
	}
}

// events receives memberlist's membership events.
type events struct{ c *Cluster }

func (e *events) NotifyJoin(n *memberlist.Node)   { e.c.set(n, true) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.c.set(n, false) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.c.set(n, true) }

// delegate hands memberlist this member's metadata; it carries no user messages.
type delegate struct{ c *Cluster }

func (d *delegate) NodeMeta(limit int) []byte {
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	if len(d.c.mine) > limit {
		return nil
	}
	return bytes.Clone(d.c.mine)
}
func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// logWriter bridges memberlist's log lines ("[DEBUG] memberlist: ...") into logr: debug and
// info at V(1), warnings and errors at the default level.
type logWriter struct{ log logr.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	switch {
	case bytes.Contains(p, []byte("[ERR]")):
		w.log.Error(errors.New(line), "memberlist")
	case bytes.Contains(p, []byte("[WARN]")):
		w.log.Info("memberlist", "line", line)
	default:
		w.log.V(1).Info("memberlist", "line", line)
	}
	return len(p), nil
}
