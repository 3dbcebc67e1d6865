package app

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/speaker/internal/layer2"
	"github.com/vipcast/vipcast/speaker/internal/membership"
)

// Event reasons the speaker writes on Services.
const (
	ReasonAnnouncing        = "Announcing"
	ReasonStoppedAnnouncing = "StoppedAnnouncing"
)

// speaker recomputes its plan whenever anything it reads changes, and applies it.
type speaker struct {
	node     string
	lbClass  string
	port     int
	client   client.Client
	cluster  *membership.Cluster
	ann      *layer2.Announcer
	recorder events.EventRecorder
	log      logr.Logger
	resync   time.Duration
	leave    time.Duration
	exclude  []string // interface patterns never answered on

	bgp     *bgpSide
	trigger chan struct{}
	joining atomic.Bool
	owned   map[annKey]announcement
	// members is the set of live members at the last plan; a change re-announces what this
	// node owns.
	members map[string]bool
	status  *statusWriter
	m       *metrics
}

// annKey is one address announced one way.
type annKey struct {
	addr netip.Addr
	mode v1alpha1.AnnouncementMode
}

// announcement is how this node announces an address.
type announcement struct {
	mode       v1alpha1.AnnouncementMode
	services   []string
	interfaces []string // L2
	peers      []string // BGP: the established sessions carrying it
	prefix     string   // BGP: the aggregate, when wider than the address
}

func (a announcement) describe(node string) string {
	if a.mode == v1alpha1.ModeBGP {
		return fmt.Sprintf("over BGP from %s to %s", node, strings.Join(a.peers, ", "))
	}
	return fmt.Sprintf("over L2 from %s on %s", node, strings.Join(a.interfaces, ", "))
}

// membersChanged reports whether the set of live members differs (nil: no plan yet).
func membersChanged(before, now map[string]bool) bool {
	return before == nil || !maps.Equal(before, now)
}

// poke asks for a new plan (coalesced).
func (s *speaker) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Start runs the plan loop until ctx ends, then leaves the cluster and stops answering.
func (s *speaker) Start(ctx context.Context) error {
	tick := time.NewTicker(s.resync)
	defer tick.Stop()
	s.sync(ctx)
	for {
		select {
		case <-ctx.Done():
			s.stop()
			return nil
		case <-s.trigger:
		case <-s.cluster.Changes():
		case <-tick.C:
		}
		s.sync(ctx)
	}
}

// stop is the graceful exit: leave first, so the others take over at once, then stop
// answering (no moment with two answers), withdraw the BGP routes and wait until the
// routers were sent the withdrawals (unless graceful restart keeps them), then go.
func (s *speaker) stop() {
	start := time.Now()
	if err := s.cluster.Leave(s.leave); err != nil {
		s.log.Error(err, "Leaving the cluster failed")
	}
	s.ann.Close()
	_ = s.cluster.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.bgp.stop(ctx)
	// Take back what SpeakerStatus claims, so nobody reads a stale announcement.
	s.status.write(ctx, nil, nil, nil)
	s.log.Info("Stopped", "took", time.Since(start).String())
}

func (s *speaker) sync(ctx context.Context) {
	w, err := s.read(ctx)
	if err != nil {
		s.log.Error(err, "Reading the cluster state failed")
		return
	}
	in := w.Input()
	mine := map[annKey]announcement{}
	want := map[netip.Addr][]string{}
	self := nodeOf(w.Nodes, s.node)
	for _, d := range planner.For(planner.L2(in), s.node) {
		ifs := s.interfaces(d, self)
		if len(ifs) == 0 {
			continue
		}
		want[d.Addr] = ifs
		mine[annKey{d.Addr, v1alpha1.ModeL2}] = announcement{mode: v1alpha1.ModeL2, services: d.Services, interfaces: ifs}
	}
	if err := s.ann.Apply(want); err != nil {
		s.log.Error(err, "Applying the layer-2 plan failed")
	}
	if membersChanged(s.members, w.Members) {
		if s.members != nil {
			s.ann.Reannounce()
		}
		s.members = maps.Clone(w.Members)
	}
	b := s.bgp.sync(ctx, w, in, self)
	for addr, a := range b.announced {
		mine[annKey{addr, v1alpha1.ModeBGP}] = a
	}
	s.events(w.Services, mine)
	s.owned = mine
	s.m.observe(len(want), len(w.Members), b)
	s.status.write(ctx, mine, sessionStatuses(b.sessions), w.Members)
	s.joinPeers(w.Nodes)
}

// read lists what the plan needs from the informer caches.
func (s *speaker) read(ctx context.Context) (planner.Objects, error) {
	w := planner.Objects{LBClass: s.lbClass, Members: s.cluster.Members(), BadAdvertisement: func(name string, err error) {
		s.log.Error(err, "Ignoring an advertisement or BGPPeer with a bad selector", "name", name)
	}}
	var svcs corev1.ServiceList
	var slices discoveryv1.EndpointSliceList
	var nodes corev1.NodeList
	var pools v1alpha1.IPAddressPoolList
	var ads v1alpha1.L2AdvertisementList
	var bgpAds v1alpha1.BGPAdvertisementList
	var peers v1alpha1.BGPPeerList
	for _, l := range []client.ObjectList{&svcs, &slices, &nodes, &pools, &ads, &bgpAds, &peers} {
		if err := s.client.List(ctx, l); err != nil {
			return w, err
		}
	}
	w.Services, w.Slices, w.Nodes, w.Pools, w.L2 = svcs.Items, slices.Items, nodes.Items, pools.Items, ads.Items
	w.BGP, w.Peers = bgpAds.Items, peers.Items
	return w, nil
}

// interfaces resolves a decision's interfaces on this node: the listed ones that exist here,
// and for OnNodeInterface the one holding the node's address of the family; none that
// --exclude-interfaces names.
func (s *speaker) interfaces(d planner.Decision, self *corev1.Node) []string {
	var out []string
	for _, name := range d.Interfaces {
		if _, err := net.InterfaceByName(name); err == nil {
			out = append(out, name)
		}
	}
	if d.OnNodeInterface {
		if name := interfaceHolding(nodeAddress(self, d.Addr.Is4())); name != "" {
			out = append(out, name)
		}
	}
	out = slices.DeleteFunc(out, func(name string) bool { return excluded(s.exclude, name) })
	slices.Sort(out)
	return slices.Compact(out)
}

// excluded tells whether an interface name matches one of the patterns (path.Match syntax,
// checked at start-up).
func excluded(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// events tells each Service when this node starts or stops announcing its address.
func (s *speaker) events(svcs []corev1.Service, mine map[annKey]announcement) {
	byKey := map[string]*corev1.Service{}
	for i := range svcs {
		byKey[svcs[i].Namespace+"/"+svcs[i].Name] = &svcs[i]
	}
	for k, a := range mine {
		if _, had := s.owned[k]; had {
			continue
		}
		s.m.takeovers.Inc()
		for _, name := range a.services {
			if svc := byKey[name]; svc != nil {
				s.recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonAnnouncing, "Announce", "%s announced %s", k.addr, a.describe(s.node))
			}
		}
	}
	for k, a := range s.owned {
		if _, has := mine[k]; has {
			continue
		}
		for _, name := range a.services {
			if svc := byKey[name]; svc != nil {
				s.recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonStoppedAnnouncing, "Withdraw",
					"%s no longer announced over %s from %s", k.addr, k.mode, s.node)
			}
		}
	}
}

// joinPeers contacts the speakers of nodes not yet in the cluster, one attempt at a time,
// in the background.
func (s *speaker) joinPeers(nodes []corev1.Node) {
	members := s.cluster.Members()
	var addrs []string
	for i := range nodes {
		n := &nodes[i]
		if n.Name == s.node || members[n.Name] {
			continue
		}
		if a := nodeAddress(n, true); a.IsValid() {
			addrs = append(addrs, net.JoinHostPort(a.String(), strconv.Itoa(s.port)))
		} else if a := nodeAddress(n, false); a.IsValid() {
			addrs = append(addrs, net.JoinHostPort(a.String(), strconv.Itoa(s.port)))
		}
	}
	if len(addrs) == 0 || !s.joining.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.joining.Store(false)
		if n, err := s.cluster.Join(addrs); err != nil {
			s.log.V(1).Info("Some speakers did not answer", "joined", n, "error", err.Error())
		}
	}()
}

func nodeOf(nodes []corev1.Node, name string) *corev1.Node {
	for i := range nodes {
		if nodes[i].Name == name {
			return &nodes[i]
		}
	}
	return nil
}

// nodeAddress is the node's first InternalIP of a family.
func nodeAddress(n *corev1.Node, v4 bool) netip.Addr {
	if n == nil {
		return netip.Addr{}
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() == v4 {
			return ip
		}
	}
	return netip.Addr{}
}

// interfaceHolding names the local interface that has addr.
func interfaceHolding(addr netip.Addr) string {
	if !addr.IsValid() {
		return ""
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifi := range ifs {
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr() == addr {
				return ifi.Name
			}
		}
	}
	return ""
}
