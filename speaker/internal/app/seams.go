package app

import (
	"context"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/speaker/internal/host"
)

// The speaker's parts, as the plan loop uses them: real ones in Run, fakes in unit tests.

// l2Applier owns addresses on interfaces (layer2.Announcer).
type l2Applier interface {
	// Apply makes want (address → interfaces) the owned set.
	Apply(want map[netip.Addr][]string) error
	// Update changes the owned set for the addresses in changes only (no interfaces: not
	// owned); with recheck it first looks whether an interface changed, and stale asks for
	// an Apply of the whole set instead.
	Update(changes map[netip.Addr][]string, recheck bool) (stale bool, err error)
	// Owned is what it answers for now, on which interfaces.
	Owned() map[netip.Addr][]string
	// Reannounce sends the gratuitous burst again for everything owned.
	Reannounce()
	// Close stops answering for everything.
	Close()
}

// bgpApplier runs the node's BGP sessions and routes (bgpSide).
type bgpApplier interface {
	// sync applies the plan: the sessions of w's peers, routes toward them.
	sync(ctx context.Context, w planner.Objects, in planner.Input, p bgpPlan, self *corev1.Node) bgpResult
	// stop ends the sessions; restart: the node stays (graceful restart may keep its routes).
	stop(ctx context.Context, restart bool)
}

// cluster is the speakers' membership (membership.Cluster).
type cluster interface {
	// Members are the live members' names, this one's included.
	Members() map[string]bool
	// Meta is each live member's metadata.
	Meta() map[string][]byte
	// Departed is the last metadata of each member that left or died and has not returned.
	Departed() map[string][]byte
	// Joined tells whether another member was ever seen alive.
	Joined() bool
	// Join contacts peers (host:port) and returns how many answered.
	Join(addrs []string) (int, error)
	// SetMeta publishes this member's metadata.
	SetMeta(b []byte, timeout time.Duration) error
	// Changes receives a value after every change of the members or their metadata.
	Changes() <-chan struct{}
	Leave(timeout time.Duration) error
	Shutdown() error
}

// hostLinks are the interfaces this node can answer on (host.Host).
type hostLinks interface {
	Links() ([]host.Link, error)
}

// bgpPlan is what the plan says this node announces over BGP.
type bgpPlan struct {
	// full: the plan was made anew since the last sync; routes are then all routes, sorted
	// by prefix. Otherwise changed are the prefixes whose route (route) may have changed.
	full    bool
	routes  func() []planner.Route
	changed []netip.Prefix
	route   func(netip.Prefix) (planner.Route, bool)
	// holders names the Services holding an address, sorted.
	holders func(netip.Addr) []string
}
