package app

import (
	"context"

	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

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
	recorder recorder.EventRecorder
	log      logr.Logger
	resync   time.Duration
	leave    time.Duration

	trigger chan struct{}
	joining atomic.Bool
	owned   map[netip.Addr]planner.Decision
	status  *statusWriter
	m       *metrics
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
// answering (no moment with two answers), then go.
func (s *speaker) stop() {
	start := time.Now()
	if err := s.cluster.Leave(s.leave); err != nil {
		s.log.Error(err, "Leaving the cluster failed")
	}
	s.ann.Close()
	_ = s.cluster.Shutdown()
	// Take back what SpeakerStatus claims, so nobody reads a stale announcement.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.status.write(ctx, nil, nil)
	s.log.Info("Stopped", "took", time.Since(start).String())
}

func (s *speaker) sync(ctx context.Context) {
	w, err := s.read(ctx)
	if err != nil {
		s.log.Error(err, "Reading the cluster state failed")
		return
	}
	decisions := planner.L2(w.Input())
	mine := map[netip.Addr]planner.Decision{}
	want := map[netip.Addr][]string{}
	self := nodeOf(w.Nodes, s.node)
	for _, d := range planner.For(decisions, s.node) {
		ifs := s.interfaces(d, self)
		if len(ifs) == 0 {
			continue
		}
		d.Interfaces, d.OnNodeInterface = ifs, false
		mine[d.Addr], want[d.Addr] = d, ifs
	}
	if err := s.ann.Apply(want); err != nil {
		s.log.Error(err, "Applying the layer-2 plan failed")
	}
	s.events(w.Services, mine)
	s.owned = mine
	s.m.observe(len(mine), len(w.Members))
	s.status.write(ctx, mine, w.Members)
	s.joinPeers(w.Nodes)
}

// read lists what the plan needs from the informer caches.
func (s *speaker) read(ctx context.Context) (planner.Objects, error) {
	w := planner.Objects{LBClass: s.lbClass, Members: s.cluster.Members(), BadAdvertisement: func(name string, err error) {
		s.log.Error(err, "Ignoring an L2Advertisement with a bad selector", "l2Advertisement", name)
	}}
	var svcs corev1.ServiceList
	var slices discoveryv1.EndpointSliceList
	var nodes corev1.NodeList
	var pools v1alpha1.IPAddressPoolList
	var ads v1alpha1.L2AdvertisementList
	for _, l := range []client.ObjectList{&svcs, &slices, &nodes, &pools, &ads} {
		if err := s.client.List(ctx, l); err != nil {
			return w, err
		}
	}
	w.Services, w.Slices, w.Nodes, w.Pools, w.L2 = svcs.Items, slices.Items, nodes.Items, pools.Items, ads.Items
	return w, nil
}

// interfaces resolves a decision's interfaces on this node: the listed ones that exist here,
// and for OnNodeInterface the one holding the node's address of the family.
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
	slices.Sort(out)
	return slices.Compact(out)
}

// events tells each Service when this node starts or stops announcing its address.
func (s *speaker) events(svcs []corev1.Service, mine map[netip.Addr]planner.Decision) {
	byKey := map[string]*corev1.Service{}
	for i := range svcs {
		byKey[svcs[i].Namespace+"/"+svcs[i].Name] = &svcs[i]
	}
	for addr, d := range mine {
		if _, had := s.owned[addr]; had {
			continue
		}
		s.m.takeovers.Inc()
		for _, k := range d.Services {
			if svc := byKey[k]; svc != nil {
				s.recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonAnnouncing, "Announce",
					"%s announced over L2 from %s on %s", addr, s.node, strings.Join(d.Interfaces, ", "))
			}
		}
	}
	for addr, d := range s.owned {
		if _, has := mine[addr]; has {
			continue
		}
		for _, k := range d.Services {
			if svc := byKey[k]; svc != nil {
				s.recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonStoppedAnnouncing, "Withdraw",
					"%s no longer announced from %s", addr, s.node)
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
