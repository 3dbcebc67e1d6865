package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/accepted"
	"github.com/vipcast/vipcast/controller/internal/announce"
	"github.com/vipcast/vipcast/controller/internal/ipam"
	"github.com/vipcast/vipcast/controller/internal/leader"
	"github.com/vipcast/vipcast/controller/internal/metrics"
	"github.com/vipcast/vipcast/controller/internal/pool"
	"github.com/vipcast/vipcast/controller/internal/service"
	"github.com/vipcast/vipcast/internal/events"
)

// Options are the controller's settings; main fills them from flags.
type Options struct {
	LBClass          string
	MetricsAddr      string
	ProbeAddr        string
	LeaderElect      bool
	LeaderNamespace  string
	LeaderElectionID string
	LeaseDuration    time.Duration
	RenewDeadline    time.Duration
	RetryPeriod      time.Duration
	Workers          int
	QPS              float64
	Burst            int
	// EventsQPS limits the Events the controller writes, so that during a large backlog
	// the API server spends its time on Service status first.
	EventsQPS float64
	// PprofAddr serves the pprof endpoints ("": off).
	PprofAddr string
	// SkipNameValidation lets several controllers run in one process (tests).
	SkipNameValidation bool
}

// Run runs the controller until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(o.QPS), o.Burst
	scheme := runtime.NewScheme()
	var err error
	if err = errors.Join(clientgoscheme.AddToScheme(scheme), v1alpha1.AddToScheme(scheme)); err != nil {
		return err
	}
	// With leader election, the lock is a guard that fences every write (see package leader).
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var fence *leader.Guard
	var lock resourcelock.Interface
	var watch *leader.Watch
	if o.LeaderElect {
		if fence, watch, err = leaderLock(cfg, o, stop); err != nil {
			return err
		}
		lock = fence
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                              scheme,
		Metrics:                             metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:              o.ProbeAddr,
		PprofBindAddress:                    o.PprofAddr,
		LeaderElection:                      o.LeaderElect,
		LeaderElectionID:                    o.LeaderElectionID,
		LeaderElectionNamespace:             o.LeaderNamespace,
		LeaderElectionReleaseOnCancel:       true,
		LeaderElectionResourceLockInterface: lock,
		LeaseDuration:                       &o.LeaseDuration,
		RenewDeadline:                       &o.RenewDeadline,
		RetryPeriod:                         &o.RetryPeriod,
		Controller:                          config.Controller{SkipNameValidation: &o.SkipNameValidation},
		Cache:                               cache.Options{DefaultTransform: slim},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	var writes leader.Fence
	if fence != nil {
		writes = fence
		if err := mgr.Add(watch); err != nil {
			return err
		}
	}
	recorder, err := events.NewRecorder(ctx, cfg, scheme, "vipcast-controller", o.EventsQPS, metrics.EventsDropped)
	if err != nil {
		return err
	}
	state := ipam.New()
	svc := &service.Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), IPAM: state,
		Recorder: recorder, Class: o.LBClass, Workers: o.Workers, Fence: writes,
	}
	if err := svc.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up service controller: %w", err)
	}
	if err := (&pool.Reconciler{Client: mgr.GetClient(), IPAM: state, Fence: writes}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up pool controller: %w", err)
	}
	if err := (&announce.Reconciler{Client: mgr.GetClient(), Class: o.LBClass, Fence: writes}).SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up announced controller: %w", err)
	}
	judge := accepted.Writer{Client: mgr.GetClient(), Fence: writes}
	if err := (&accepted.L2Reconciler{Writer: judge}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up L2Advertisement controller: %w", err)
	}
	if err := (&accepted.BGPReconciler{Writer: judge}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up BGPAdvertisement controller: %w", err)
	}
	if err := (&accepted.PeerReconciler{Writer: judge}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up BGPPeer controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("cache", func(r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("informer caches not synced")
		}
		return nil
	}); err != nil {
		return err
	}
	err = mgr.Start(ctx)
	if cause := context.Cause(ctx); errors.Is(cause, ErrLeaseLost) {
		return cause
	}
	return err
}

// slim drops from every cached object what the controller never reads: managed fields, the
// annotations neither in vipcast.io/ nor MetalLB's that it reads (last-applied-configuration is often the largest part of
// a Service), and a Node's image list. Its writes are patches of what it changes, so what
// the cache lacks is never written back.
func slim(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		if ann := m.GetAnnotations(); len(ann) > 0 {
			maps.DeleteFunc(ann, func(k, _ string) bool { return !readAnnotation(k) })
			if len(ann) == 0 {
				ann = nil
			}
			m.SetAnnotations(ann)
		}
	}
	if n, ok := obj.(*corev1.Node); ok {
		n.Status.Images = nil
	}
	return obj, nil
}

// readAnnotation tells whether the controller reads annotation key: vipcast.io's, and
// MetalLB's forms of them.
func readAnnotation(key string) bool {
	if strings.HasPrefix(key, v1alpha1.GroupVersion.Group+"/") {
		return true
	}
	for _, forms := range v1alpha1.AnnotationForms {
		if slices.Contains(forms, key) {
			return true
		}
	}
	return false
}
