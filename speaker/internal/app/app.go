package app

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/events"
	"github.com/vipcast/vipcast/speaker/internal/host"
	"github.com/vipcast/vipcast/speaker/internal/layer2"
	"github.com/vipcast/vipcast/speaker/internal/membership"
)

// +kubebuilder:rbac:groups="",resources=services;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups=vipcast.io,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=vipcast.io,resources=speakerstatuses,verbs=get;list;create
// +kubebuilder:rbac:groups=vipcast.io,resources=speakerstatuses/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Options are the speaker's settings; main fills them from flags.
type Options struct {
	Node        string
	LBClass     string
	MetricsAddr string
	ProbeAddr   string
	// BindAddr is where memberlist listens; empty: the node's InternalIP.
	BindAddr string
	Port     int
	// KeyFile holds the gossip key (base64, or 16/24/32 raw bytes).
	KeyFile string
	Timers  membership.Timers
	// Resync applies the plan again this often even when nothing changed; every tenth time
	// it replans every Service.
	Resync time.Duration
	// PlanInterval is the least time between two plans made for informers' changes.
	PlanInterval time.Duration
	// PprofAddr serves the pprof endpoints ("": off).
	PprofAddr string
	// Leave is how long a graceful stop waits for the leave message to go out.
	Leave time.Duration
	// ExcludeInterfaces are interface names or shell patterns never answered on.
	ExcludeInterfaces []string
	// JoinTimeout is how long a starting speaker that finds no other speaker waits for one
	// before announcing alone (with other speakers reported in, it waits until it joins).
	JoinTimeout time.Duration
	// RestartHold is how long the others keep this node's addresses while its speaker
	// restarts (0: they take them over at once).
	RestartHold time.Duration
	// Handover is how long a speaker waits before answering for an address a live speaker
	// held, so that one has stopped answering first.
	Handover time.Duration
	// EventsQPS limits the Events the speaker writes (a take-over of thousands of addresses
	// would otherwise write thousands at once).
	EventsQPS float64
	// EventsPerPlan: when one plan starts or stops announcing more Services than this, the
	// speaker writes one Event on its Node that counts them instead of one on each (0: one on
	// each, always).
	EventsPerPlan int
}

// Run runs the speaker until ctx ends, then leaves gracefully.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	if o.Node == "" {
		return errors.New("the node name is required (--node-name or NODE_NAME)")
	}
	// Opened first: it checks the --exclude-interfaces patterns before anything starts.
	links, err := host.Open(o.ExcludeInterfaces)
	if err != nil {
		return fmt.Errorf("--exclude-interfaces: %w", err)
	}
	defer links.Close()
	log := ctrl.Log.WithName("speaker").WithValues("node", o.Node)
	// Uncompressed: the watch streams carry small objects; decompressing them was 6% of a
	// speaker's CPU while 10,000 Services were created (and the API server compresses for
	// every node's watch).
	cfg = rest.CopyConfig(cfg)
	cfg.DisableCompression = true
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.ProbeAddr,
		PprofBindAddress:       o.PprofAddr,
		Cache:                  cache.Options{DefaultTransform: slim},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	node, err := waitNode(ctx, mgr.GetAPIReader(), o.Node)
	if err != nil {
		return err
	}
	bind := o.BindAddr
	if bind == "" {
		if a := nodeAddress(node, true); a.IsValid() {
			bind = a.String()
		} else if a := nodeAddress(node, false); a.IsValid() {
			bind = a.String()
		} else {
			return fmt.Errorf("node %s has no InternalIP to bind memberlist to (set --memberlist-bind-address)", o.Node)
		}
	}
	key, err := readKey(o.KeyFile)
	if err != nil {
		return err
	}
	cluster, err := membership.Start(membership.Config{Node: o.Node, BindAddr: bind, Port: o.Port, Key: key, Timers: o.Timers, Log: log.WithName("memberlist"), JoinTimeout: joinDialTimeout})
	if err != nil {
		return err
	}
	var conflicts *conflictLog
	ann := layer2.New(log.WithName("layer2"), func(c layer2.Conflict) { conflicts.add(c) })
	m := newMetrics(&ann.Stats)
	recorder, err := events.NewRecorder(ctx, cfg, scheme, "vipcast-speaker", o.EventsQPS, m.eventsDropped)
	if err != nil {
		return err
	}
	sp := &speaker{
		node: o.Node, lbClass: o.LBClass, port: o.Port, client: mgr.GetClient(), reader: mgr.GetAPIReader(), cluster: cluster, ann: ann, host: links,
		recorder: recorder, log: log, resync: o.Resync, leave: o.Leave, joinTimeout: o.JoinTimeout, handover: o.Handover, restartHold: o.RestartHold, eventsPerPlan: o.EventsPerPlan, now: time.Now,
		trigger: make(chan struct{}, 1), informed: make(chan struct{}, 1), planInterval: o.PlanInterval, changes: &changes{},
		linkEvents: true, m: m, started: time.Now(), pending: map[netip.Addr]time.Time{},
		status: &statusWriter{node: o.Node, client: mgr.GetClient(), reader: mgr.GetAPIReader(), log: log},
	}
	sp.status.wake = sp.poke
	conflicts = newConflictLog(sp.poke)
	sp.conflicts = conflicts
	watch, err := links.Watch(ctx)
	if err != nil {
		return err
	}
	sp.linksStale.Store(true)
	go func() {
		for range watch {
			sp.linksStale.Store(true)
			sp.poke()
		}
	}()
	bgp := &bgpSide{node: o.Node, log: log.WithName("bgp"), secrets: mgr.GetAPIReader(), changed: sp.poke,
		badPeers: func(name string, err error) { log.Error(err, "Skipping a BGPPeer", "bgpPeer", name) }}
	sp.bgp = bgp
	if err := watchInputs(ctx, mgr, o.LBClass, sp.changes, sp.pokeInformed); err != nil {
		return err
	}
	if err := mgr.Add(sp); err != nil {
		return err
	}
	if err := errors.Join(mgr.AddHealthzCheck("ping", healthz.Ping), mgr.AddReadyzCheck("cache", func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("informer caches not synced")
		}
		return nil
	})); err != nil {
		return err
	}
	log.Info("Starting", "memberlist", fmt.Sprintf("%s:%d", bind, o.Port), "encrypted", len(key) > 0)
	return mgr.Start(ctx)
}

// watchInputs asks for a plan after every change of what the plan reads, noting which
// Services changed. Updates that change nothing the plan reads (a Node's heartbeat, a status
// the controller writes, endpoints moving between pods of the same nodes) ask for none.
func watchInputs(ctx context.Context, mgr ctrl.Manager, class string, ch *changes, poke func()) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &discoveryv1.EndpointSlice{}, sliceServiceIndex, sliceService); err != nil {
		return err
	}
	for _, obj := range []client.Object{&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}, &v1alpha1.IPAddressPool{}, &v1alpha1.L2Advertisement{}, &v1alpha1.BGPAdvertisement{}, &v1alpha1.BGPPeer{}} {
		inf, err := mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		on := func(o any) {
			ch.service(changedService(o))
			poke()
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(o any) {
				if !unhandledService(o, class) {
					on(o)
				}
			},
			DeleteFunc: func(o any) {
				if !unhandledService(o, class) {
					on(o)
				}
			},
			UpdateFunc: func(old, o any) {
				if (!unhandledService(old, class) || !unhandledService(o, class)) && planInputChanged(old, o) {
					on(o)
				}
			}}); err != nil {
			return err
		}
	}
	return nil
}

// joinDialTimeout bounds each dial of a peer while joining: speakers share a LAN.
const joinDialTimeout = time.Second

// waitNode reads this node's Node object, waiting for it to exist.
func waitNode(ctx context.Context, r client.Reader, name string) (*corev1.Node, error) {
	var n corev1.Node
	var last error
	err := wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		last = r.Get(ctx, client.ObjectKey{Name: name}, &n)
		return last == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading Node %s: %w", name, errors.Join(err, last))
	}
	return &n, nil
}

// readKey reads the gossip key file. No file: no encryption.
func readKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the memberlist key: %w", err)
	}
	k, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("the memberlist key in %s: %w", path, err)
	}
	return k, nil
}

// parseKey reads a gossip key: base64 of 16, 24 or 32 bytes (a Secret mounted as a file, a
// trailing newline allowed), or those raw bytes, taken as they are (a raw key may begin or
// end with a whitespace byte). The error never repeats the key.
func parseKey(b []byte) ([]byte, error) {
	text := strings.TrimSpace(string(b))
	if k, err := base64.StdEncoding.DecodeString(text); err == nil && validKeyLen(len(k)) {
		return k, nil
	}
	if validKeyLen(len(b)) {
		return b, nil
	}
	if validKeyLen(len(text)) {
		return []byte(text), nil
	}
	return nil, fmt.Errorf("want base64 of 16, 24 or 32 bytes (AES-128/192/256), or those bytes; got %d bytes", len(b))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
