package ipam

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/internal/poolset"
)

// IPAM is the controller's one allocator, shared by the Service and pool reconcilers and
// guarded by a mutex. Before it hands out anything it loads every address already in
// Service status, read straight from the API server, so a restart or a new leader never
// moves or steals an address.
type IPAM struct {
	mu      sync.Mutex
	alloc   *allocator.Allocator
	loaded  bool
	loader  Loader
	poolsFP map[string]poolFingerprint

	// ServiceWake receives the Services that waited for an address and may get one now.
	ServiceWake chan event.GenericEvent
	// PoolDirty receives the pools whose counts changed, at most once per FlushInterval.
	PoolDirty chan event.GenericEvent

	// nsLabels is set while some pool selects namespaces by label.
	nsLabels atomic.Bool

	dirtyMu sync.Mutex
	dirty   map[string]bool
	done    chan struct{}
}

// New returns an IPAM with no pools; Load fills it.
func New() *IPAM {
	return &IPAM{
		alloc:       allocator.New(poolset.Build(nil)),
		ServiceWake: make(chan event.GenericEvent, 1024),
		PoolDirty:   make(chan event.GenericEvent, 64),
		dirty:       map[string]bool{},
		done:        make(chan struct{}),
	}
}

// RequestFunc turns a Service into an allocation request; Load uses it for the Services
// it finds. It returns nil for a Service vipcast does not handle.
type RequestFunc func(ctx context.Context, svc *corev1.Service) *allocator.Request

// Loader says where Load reads from: pools from the cache, Services from the API server
// itself (not the cache), so that the writes of an earlier leader are seen.
type Loader struct {
	Cached, Live client.Reader
	ToRequest    RequestFunc
}

// Load fills the IPAM once, before it is used: the pools, then the addresses in every
// Service's status, oldest Service first. Both reconcilers call it first; later calls
// return at once.
func (m *IPAM) Load(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.loaded {
		return nil
	}
	if m.loader.Cached == nil {
		return errors.New("ipam: no loader set")
	}
	var pools v1alpha1.IPAddressPoolList
	if err := m.loader.Cached.List(ctx, &pools); err != nil {
		return fmt.Errorf("listing pools: %w", err)
	}
	m.setPoolsLocked(pools.Items)
	var svcs []corev1.Service
	for cont := ""; ; {
		var list corev1.ServiceList // a fresh list per page: decoding must not reuse items
		if err := m.loader.Live.List(ctx, &list, client.Limit(500), client.Continue(cont)); err != nil {
			return fmt.Errorf("listing services: %w", err)
		}
		svcs = append(svcs, list.Items...)
		if cont = list.Continue; cont == "" {
			break
		}
	}
	slices.SortStableFunc(svcs, func(a, b corev1.Service) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	for i := range svcs {
		if req := m.loader.ToRequest(ctx, &svcs[i]); req != nil {
			m.alloc.Load(req, StatusIPs(&svcs[i]))
		}
	}
	// Loading marked no pool dirty on its own; write every pool's status once.
	m.markAllDirtyLocked()
	m.loaded = true
	return nil
}

// SetLoader tells Load where to read from; call it before the manager starts.
func (m *IPAM) SetLoader(l Loader) { m.loader = l }

func (m *IPAM) markAllDirtyLocked() {
	m.dirtyMu.Lock()
	for _, name := range m.alloc.Pools().Names() {
		m.dirty[name] = true
	}
	m.dirtyMu.Unlock()
}

// StatusIPs returns the addresses in a Service's status.loadBalancer.ingress.
func StatusIPs(svc *corev1.Service) []netip.Addr {
	var ips []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			ips = append(ips, ip.Unmap())
		}
	}
	return ips
}

// Assignment is what Assign gave a Service.
type Assignment struct {
	IPs []netip.Addr
	// Pool is the pool of the first address ("" when no pool holds it).
	Pool string
	// NotAdmitted: the Service keeps an address of a pool whose serviceAllocation no longer
	// admits it (a working address is never taken away; it would not be given now).
	NotAdmitted bool
	Err         error
}

// Assign gives the Service its addresses (see allocator.Assign).
func (m *IPAM) Assign(req *allocator.Request) Assignment {
	m.mu.Lock()
	defer m.mu.Unlock()
	before := m.alloc.Addresses(req.Key)
	ips, err := m.alloc.Assign(req)
	m.afterLocked(before, ips)
	out := Assignment{IPs: ips, Err: err}
	if len(ips) > 0 {
		if p := m.alloc.Pools().PoolOf(ips[0]); p != nil {
			out.Pool = p.Name
		}
		for _, ip := range ips { // every address: two families may come from two pools
			if p := m.alloc.Pools().PoolOf(ip); p != nil && !p.Serves(req.Namespace, req.NamespaceLabels, req.Labels) {
				out.NotAdmitted = true
			}
		}
	}
	return out
}

// Release frees the Service's addresses and returns them.
func (m *IPAM) Release(key string) []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	freed := m.alloc.Release(key)
	m.afterLocked(freed, nil)
	return freed
}

// afterLocked marks the pools of changed addresses dirty and wakes waiting Services.
func (m *IPAM) afterLocked(before, after []netip.Addr) {
	var changed []string
	for _, ip := range before {
		if !slices.Contains(after, ip) {
			changed = append(changed, m.poolNames(ip)...)
		}
	}
	for _, ip := range after {
		if !slices.Contains(before, ip) {
			changed = append(changed, m.poolNames(ip)...)
		}
	}
	if len(changed) > 0 {
		m.dirtyMu.Lock()
		for _, p := range changed {
			m.dirty[p] = true
		}
		m.dirtyMu.Unlock()
	}
	m.wakeLocked()
}

// poolNames returns the pool an address belongs to or, for a contested or terminating
// one, every pool that declares it: all of them count it among their holders.
func (m *IPAM) poolNames(ip netip.Addr) []string {
	if p := m.alloc.Pools().PoolOf(ip); p != nil {
		return []string{p.Name}
	}
	return m.alloc.Pools().DeclaringPools(ip)
}

func (m *IPAM) wakeLocked() {
	keys := m.alloc.TakeWoken()
	if len(keys) == 0 {
		return
	}
	go func() {
		for _, k := range keys {
			svc := &corev1.Service{}
			svc.Namespace, svc.Name, _ = strings.Cut(k, "/")
			select {
			case m.ServiceWake <- event.GenericEvent{Object: svc}:
			case <-m.done:
				return
			}
		}
	}()
}

// poolFingerprint is what of a pool matters to allocation.
type poolFingerprint struct {
	spec        v1alpha1.IPAddressPoolSpec
	terminating bool
}

// SetPools rebuilds the snapshot when a pool's spec or deletion changed, and reports
// whether it did. Rebuilding keeps every held address and wakes every waiting Service.
func (m *IPAM) SetPools(pools []v1alpha1.IPAddressPool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setPoolsLocked(pools)
}

func (m *IPAM) setPoolsLocked(pools []v1alpha1.IPAddressPool) bool {
	fp := make(map[string]poolFingerprint, len(pools))
	for i := range pools {
		fp[pools[i].Name] = poolFingerprint{spec: pools[i].Spec, terminating: pools[i].DeletionTimestamp != nil}
	}
	if m.poolsFP != nil && reflect.DeepEqual(fp, m.poolsFP) {
		return false
	}
	m.poolsFP = fp
	snap := poolset.Build(pools)
	m.alloc.SetPools(snap)
	needs := false
	for _, p := range snap.Ordered() {
		needs = needs || (p.Allocation != nil && len(p.Allocation.NamespaceSelectors) > 0)
	}
	m.nsLabels.Store(needs)
	m.dirtyMu.Lock()
	for name := range fp {
		m.dirty[name] = true
	}
	m.dirtyMu.Unlock()
	m.wakeLocked()
	return true
}

// PoolView is what the pool reconciler needs to know of one pool.
type PoolView struct {
	Pool    *poolset.Pool
	Stats   allocator.Stats
	Holders []string
	More    bool
}

// Pool returns the view of one pool, with up to holderLimit Services holding addresses of it.
func (m *IPAM) Pool(name string, holderLimit int) PoolView {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := PoolView{Pool: m.alloc.Pools().Pool(name), Stats: m.alloc.Stats(name)}
	v.Holders, v.More = m.alloc.HolderKeys(name, holderLimit)
	return v
}

// FlushDirty sends an event for every pool whose counts changed since the last flush,
// every interval, until ctx ends: pool status is written at most once per interval per
// pool however fast Services come and go.
func (m *IPAM) FlushDirty(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	defer close(m.done)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		m.dirtyMu.Lock()
		names := make([]string, 0, len(m.dirty))
		for n := range m.dirty {
			names = append(names, n)
		}
		clear(m.dirty)
		m.dirtyMu.Unlock()
		for _, n := range names {
			ev := event.GenericEvent{Object: &v1alpha1.IPAddressPool{}}
			ev.Object.SetName(n)
			select {
			case m.PoolDirty <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// ServiceKey is the allocator's key for a Service.
func ServiceKey(nn types.NamespacedName) string { return nn.Namespace + "/" + nn.Name }

// Addresses returns the addresses a Service holds.
func (m *IPAM) Addresses(key string) []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alloc.Addresses(key)
}

// PoolName returns the pool of the first address, or "".
func (m *IPAM) PoolName(ips []netip.Addr) string {
	if len(ips) == 0 {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.alloc.Pools().PoolOf(ips[0]); p != nil {
		return p.Name
	}
	return ""
}

// NeedsNamespaceLabels reports whether any pool selects namespaces by label. It takes no
// lock: Load's RequestFunc calls it while the IPAM is locked.
func (m *IPAM) NeedsNamespaceLabels() bool { return m.nsLabels.Load() }

// In returns the Services of a namespace that wait for an address or hold one.
func (m *IPAM) In(namespace string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.alloc.In(namespace)
}
