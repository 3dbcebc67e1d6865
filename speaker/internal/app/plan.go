package app

import (
	"context"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/internal/poolset"
)

// sliceServiceIndex indexes EndpointSlices by their Service's namespace/name.
const sliceServiceIndex = "vipcast.service"

// changes are the Services whose plan may have changed since the last plan, as the
// informers tell them. A nil *changes knows nothing: every plan reads every Service.
type changes struct {
	mu   sync.Mutex
	all  bool
	keys map[string]bool
}

// service notes a change of the Service namespace/name (or of its EndpointSlices).
func (c *changes) service(key string) {
	if c == nil || key == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = map[string]bool{}
	}
	c.keys[key] = true
}

// everything asks the next plan to read every Service again.
func (c *changes) everything() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = true
}

// take returns and forgets what changed.
func (c *changes) take() (all bool, keys []string) {
	if c == nil {
		return true, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	all, c.all = c.all, false
	for k := range c.keys {
		keys = append(keys, k)
	}
	c.keys = nil
	return all, keys
}

// giveBack returns what a failed plan took, for the next one.
func (c *changes) giveBack(all bool, keys []string) {
	if all {
		c.everything()
	}
	for _, k := range keys {
		c.service(k)
	}
}

// plan is the plan kept between syncs: made in full for a cluster (members, nodes, links,
// pools, advertisements, peers), then updated Service by Service while that cluster stays
// the same.
type plan struct {
	base planner.Input // without Services
	snap *poolset.Snapshot
	l2   *planner.L2Plan
	bgp  *planner.BGPPlan
	// bgpTaken: the BGP side has taken this plan (takeBGP); bgpChanged are the prefixes
	// rebuilt since.
	bgpTaken   bool
	bgpChanged map[netip.Prefix]bool
}

// sameCluster tells whether two inputs differ only in their Services.
func sameCluster(a, b planner.Input) bool {
	return reflect.DeepEqual(a.Members, b.Members) && reflect.DeepEqual(a.Nodes, b.Nodes) && reflect.DeepEqual(a.Links, b.Links) &&
		reflect.DeepEqual(a.L2, b.L2) && reflect.DeepEqual(a.BGP, b.BGP) && reflect.DeepEqual(a.Peers, b.Peers) &&
		reflect.DeepEqual(a.PoolLabels, b.PoolLabels) && reflect.DeepEqual(a.PoolRanges, b.PoolRanges)
}

// onlyMembers tells whether a and b differ only in their members and the links of members
// that came or went: a speaker died, left or joined, which the plan takes in place
// (SetMembers).
func onlyMembers(a, b planner.Input) bool {
	if reflect.DeepEqual(a.Members, b.Members) {
		return false
	}
	for _, pair := range [][2]planner.Input{{a, b}, {b, a}} {
		x, y := pair[0], pair[1]
		for n, links := range x.Links {
			yl, ok := y.Links[n]
			if (ok && !reflect.DeepEqual(links, yl)) || (!ok && x.Members[n] && y.Members[n]) {
				return false
			}
		}
	}
	same := a
	same.Members, same.Links = b.Members, b.Links
	return sameCluster(same, b)
}

// update brings the plan up to date with the cluster in base and the Services changed
// (every Service when all), and returns the addresses whose layer-2 decision was made again
// (nil with full: all were).
func (s *speaker) update(ctx context.Context, base planner.Input, snap *poolset.Snapshot, all bool, keys []string) (touched []netip.Addr, full bool, err error) {
	if !all && s.plan != nil && onlyMembers(s.plan.base, base) {
		// A speaker died, left or joined: only the addresses it changes move.
		touched = s.plan.l2.SetMembers(base.Members, base.Links)
		s.plan.base = base
		s.m.memberPlans.Inc()
	}
	if all || s.plan == nil || !sameCluster(s.plan.base, base) {
		in, err := s.readServices(ctx, base, snap)
		if err != nil {
			return nil, false, err
		}
		s.plan = &plan{base: base, snap: snap, l2: planner.NewL2Plan(in), bgp: planner.NewBGPPlan(in, s.node)}
		s.m.fullPlans.Inc()
		return nil, true, nil
	}
	s.plan.base, s.plan.snap = base, snap
	for _, key := range keys {
		svc, ok, err := s.readService(ctx, key, snap)
		if err != nil {
			return nil, false, err
		}
		var prefixes []netip.Prefix
		if ok {
			touched = append(touched, s.plan.l2.Set(svc)...)
			prefixes = s.plan.bgp.Set(svc)
		} else {
			touched = append(touched, s.plan.l2.Delete(key)...)
			prefixes = s.plan.bgp.Delete(key)
		}
		for _, prefix := range prefixes {
			if s.plan.bgpChanged == nil {
				s.plan.bgpChanged = map[netip.Prefix]bool{}
			}
			s.plan.bgpChanged[prefix] = true
		}
	}
	s.m.servicePlans.Add(float64(len(keys)))
	slices.SortFunc(touched, netip.Addr.Compare)
	return slices.Compact(touched), false, nil
}

// takeBGP is what the BGP side is to apply: the whole plan the first time, then the
// prefixes changed since the last take.
func (p *plan) takeBGP() bgpPlan {
	out := bgpPlan{full: !p.bgpTaken, routes: p.bgp.Routes, route: p.bgp.Route, holders: p.holders}
	if p.bgpTaken {
		out.changed = slices.SortedFunc(maps.Keys(p.bgpChanged), comparePrefixes)
	}
	p.bgpTaken, p.bgpChanged = true, nil
	return out
}

// holders are the Services holding addr, sorted.
func (p *plan) holders(addr netip.Addr) []string {
	d, _ := p.l2.Decision(addr)
	return d.Services
}

// readServices lists every Service and EndpointSlice into the planner's Services.
func (s *speaker) readServices(ctx context.Context, base planner.Input, snap *poolset.Snapshot) (planner.Input, error) {
	var svcs corev1.ServiceList
	var all discoveryv1.EndpointSliceList
	for _, l := range []client.ObjectList{&svcs, &all} {
		if err := s.client.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return base, err
		}
	}
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for i := range all.Items {
		if key := planner.ServiceKey(&all.Items[i]); key != "" {
			bySvc[key] = append(bySvc[key], &all.Items[i])
		}
	}
	in := base
	in.Services = make([]planner.Service, 0, len(svcs.Items))
	for i := range svcs.Items {
		sv := &svcs.Items[i]
		if ps, ok := planner.ServiceOf(sv, s.lbClass, bySvc[sv.Namespace+"/"+sv.Name], snap); ok {
			in.Services = append(in.Services, ps)
		}
	}
	return in, nil
}

// readService reads one Service and its EndpointSlices; false when it is gone, not handled or
// holds no address.
func (s *speaker) readService(ctx context.Context, key string, snap *poolset.Snapshot) (planner.Service, bool, error) {
	nn, ok := splitKey(key)
	if !ok {
		return planner.Service{}, false, nil
	}
	var svc corev1.Service
	if err := s.client.Get(ctx, nn, &svc); apierrors.IsNotFound(err) {
		return planner.Service{}, false, nil
	} else if err != nil {
		return planner.Service{}, false, err
	}
	var sl discoveryv1.EndpointSliceList
	if svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		if err := s.client.List(ctx, &sl, client.InNamespace(nn.Namespace), client.MatchingFields{sliceServiceIndex: key}, client.UnsafeDisableDeepCopy); err != nil {
			return planner.Service{}, false, err
		}
	}
	ptrs := make([]*discoveryv1.EndpointSlice, len(sl.Items))
	for i := range sl.Items {
		ptrs[i] = &sl.Items[i]
	}
	ps, ok := planner.ServiceOf(&svc, s.lbClass, ptrs, snap)
	return ps, ok, nil
}

// service reads the Service namespace/name from the cache (nil when it cannot).
func (s *speaker) service(ctx context.Context, key string) *corev1.Service {
	nn, ok := splitKey(key)
	if !ok {
		return nil
	}
	var svc corev1.Service
	if err := s.client.Get(ctx, nn, &svc); err != nil {
		return nil
	}
	return &svc
}

func splitKey(key string) (types.NamespacedName, bool) {
	for i := range key {
		if key[i] == '/' {
			return types.NamespacedName{Namespace: key[:i], Name: key[i+1:]}, true
		}
	}
	return types.NamespacedName{}, false
}
