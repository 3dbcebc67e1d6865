package membership

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"maps"
	"net"
	"strconv"
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
}

// Cluster is this speaker's view of the live speakers.
type Cluster struct {
	ml      *memberlist.Memberlist
	log     logr.Logger
	changes chan struct{}

	mu    sync.Mutex
	alive map[string]bool
}

// Start runs a member alone; Join brings in the others.
func Start(cfg Config) (*Cluster, error) {
	if n := len(cfg.Key); n != 0 && n != 16 && n != 24 && n != 32 {
		return nil, fmt.Errorf("the memberlist key must be 16, 24 or 32 bytes, not %d", n)
	}
	c := &Cluster{log: cfg.Log, changes: make(chan struct{}, 1), alive: map[string]bool{}}
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
	mc.Events = &events{c: c}
	mc.Logger = log.New(&logWriter{log: cfg.Log}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Port)), err)
	}
	c.ml = ml
	return c, nil
}

// Join contacts the given members (host:port) and returns how many answered. Members
// already known are skipped; an unreachable one is not an error while one answered.
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
	return c.ml.Join(todo)
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

func (c *Cluster) set(name string, alive bool) {
	c.mu.Lock()
	changed := c.alive[name] != alive
	if alive {
		c.alive[name] = true
	} else {
		delete(c.alive, name)
	}
	c.mu.Unlock()
	if changed {
		c.log.Info("Member changed", "member", name, "alive", alive)
		select {
		case c.changes <- struct{}{}:
		default:
		}
	}
}

// events receives memberlist's membership events.
type events struct{ c *Cluster }

func (e *events) NotifyJoin(n *memberlist.Node)   { e.c.set(n.Name, true) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.c.set(n.Name, false) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.c.set(n.Name, true) }

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
