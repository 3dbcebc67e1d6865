package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/clock"

	"github.com/vipcast/vipcast/controller/internal/leader"
	"github.com/vipcast/vipcast/controller/internal/metrics"
)

// ErrLeaseLost ends Run when another process holds the leader Lease.
var ErrLeaseLost = errors.New("leader Lease lost")

// leaderLock builds the Lease lock the manager elects with, wrapped in a guard that fences
// the controller's writes, and the watch that tells the guard when the Lease changes hands.
func leaderLock(cfg *rest.Config, o Options, lost context.CancelCauseFunc) (*leader.Guard, *leader.Watch, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, nil, err
	}
	id := host + "_" + string(uuid.NewUUID())
	lcfg := rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	// One hung request must not use up the renew deadline.
	lcfg.Timeout = max(o.RenewDeadline/2, time.Second)
	cs, err := kubernetes.NewForConfig(lcfg)
	if err != nil {
		return nil, nil, err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, o.LeaderNamespace, o.LeaderElectionID,
		cs.CoreV1(), cs.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return nil, nil, fmt.Errorf("leader lock: %w", err)
	}
	g := leader.NewGuard(lock, o.LeaseDuration, o.RenewDeadline, clock.RealClock{})
	g.OnChange = func(leading bool, why string) {
		if leading {
			metrics.Leading.Set(1)
			return
		}
		metrics.Leading.Set(0)
		// Writes are fenced already; ending the process now, rather than when the elector
		// gives up, also heals a wrong revocation: the restarted process runs for the Lease.
		lost(fmt.Errorf("%w: %s", ErrLeaseLost, why))
	}
	// The watch uses a client without the short timeout: it holds a long request open.
	wcs, err := kubernetes.NewForConfig(rest.AddUserAgent(rest.CopyConfig(cfg), "leader-watch"))
	if err != nil {
		return nil, nil, err
	}
	return g, &leader.Watch{Guard: g, Client: wcs, Namespace: o.LeaderNamespace, Name: o.LeaderElectionID}, nil
}
