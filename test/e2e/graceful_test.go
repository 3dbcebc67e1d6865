package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

// Graceful restart against both routers, with BFD on: a speaker restarted with the client
// probing loses no request and the router never changes its next hops (node-1's path stays, stale, until
// the new speaker has sent its routes); a speaker that stops and never returns has its path
// removed when the restart time it announced runs out.
func TestBGPGracefulRestart(t *testing.T) {
	t.Cleanup(func() {
		if err := cluster.Router.Configure(context.Background(), lab.BIRD, lab.RouterOptions{}); err != nil {
			t.Error(err)
		}
	})
	for _, kind := range []lab.RouterKind{lab.BIRD, lab.FRR} {
		t.Run(string(kind), func(t *testing.T) { testGracefulRestart(t, kind) })
	}
}

func testGracefulRestart(t *testing.T, kind lab.RouterKind) {
	// Long enough for a restart on a busy machine; the second part waits it out.
	const restartTime = 20 * time.Second
	// Static: FRR 8.4.4 crashes when a dynamic neighbour's restart timer runs out (router.go).
	// BFD on: the speaker's BFD session goes down as it stops, which ends graceful restart
	// unless the router is told the BFD session shares the speaker's control plane (FRR:
	// check-control-plane-failure, BIRD: bfd graceful).
	bgpPool, _, _ := bgpLab(t, kind, lab.RouterOptions{Static: true, BFD: true, GracefulBFD: true}, func(s *v1alpha1.BGPPeerSpec) {
		s.GracefulRestart = &v1alpha1.GracefulRestartSettings{Enabled: true, RestartTime: &metav1.Duration{Duration: restartTime}}
	})
	ns := namespace(t)
	all := []string{"node-1", "node-2", "node-3"}
	deploy(t, ns, "web", all...)
	_, ips := bgpService(t, ns, "web", bgpPool, func(s *corev1.Service) { s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack) })
	prefix := host(ips[0])
	nextHopsAre(t, 30*time.Second, prefix, all...)
	kubeProxiesServe(t, ips[0])
	n := cluster.Node("node-1")
	speaker := n.Process("speaker")
	t.Cleanup(func() {
		if !speaker.Running() {
			if err := speaker.Start(); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("restart keeps forwarding", func(t *testing.T) {
		hops := watchNextHops(t.Context(), prefix)
		// A request that gets no answer in a second fails: long enough that a busy machine's
		// stalls do not count, short enough that a black hole does.
		probe := lab.StartProbe(cluster.ClientNetns, lab.URL(ips[0], 80), 10*time.Millisecond, time.Second)
		defer probe.Stop()
		time.Sleep(200 * time.Millisecond)
		if err := speaker.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		exited(t, speaker)
		if !strings.Contains(speaker.Tail(40), "Leaving the routes to graceful restart") {
			t.Errorf("the speaker did not leave its routes to graceful restart:\n%s", speaker.Tail(40))
		}
		pathsAre(t, prefix, n.IPv4, true)
		time.Sleep(2 * time.Second) // away for a while, inside the restart time
		if err := speaker.Start(); err != nil {
			t.Fatal(err)
		}
		pathsAre(t, prefix, n.IPv4, false)
		res := probe.Stop()
		if changes := hops.Stop(); changes != 0 {
			t.Errorf("the router's next hops changed %d times during a graceful restart", changes)
		}
		if res.Failed() > 0 {
			t.Errorf("%d of %d requests failed during a graceful restart (longest gap %s)", res.Failed(), len(res.Samples), res.Longest())
			for _, x := range res.Samples {
				if !x.OK() {
					t.Logf("request sent at %s failed after %s: %v", x.Sent.Format("15:04:05.000"), x.Took.Round(time.Millisecond), x.Err)
				}
			}
		}
		t.Logf("%s: graceful restart of node-1's speaker: %d requests, %d failed, next hops unchanged", kind, len(res.Samples), res.Failed())
	})

	t.Run("a speaker that never returns", func(t *testing.T) {
		if err := speaker.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		exited(t, speaker)
		stopped := time.Now()
		defer func() {
			if err := speaker.Start(); err != nil {
				t.Error(err)
			}
			nextHopsAre(t, 60*time.Second, prefix, all...)
		}()
		// Kept a while after the speaker stopped (well inside the restart time)...
		time.Sleep(2 * time.Second)
		if hops, err := cluster.Router.NextHops(t.Context(), prefix); err != nil || !slices.Contains(hops, n.IPv4) {
			t.Fatalf("%s after the speaker stopped the router forwards by %v (%v), without node-1", time.Since(stopped).Round(time.Millisecond), hops, err)
		}
		// ...and gone once it has run out.
		nextHopsAre(t, restartTime+30*time.Second, prefix, "node-2", "node-3")
		t.Logf("%s dropped node-1's stale path %s after its speaker stopped (restart time %s)", kind, time.Since(stopped).Round(100*time.Millisecond), restartTime)
	})
}

// exited waits (generously) for a process to exit.
func exited(t *testing.T, p *lab.Process) {
	t.Helper()
	select {
	case <-p.Exited():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s of SIGTERM", p.Name)
	}
}

// pathsAre waits until the router holds one path per node for prefix, the one via node
// stale or not as stale says, the others fresh.
func pathsAre(t *testing.T, prefix netip.Prefix, node netip.Addr, stale bool) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%s via %s stale=%v", prefix, node, stale), func(ctx context.Context) error {
		paths, err := cluster.Router.Paths(ctx, prefix)
		if err != nil {
			return err
		}
		if len(paths) != len(cluster.Nodes) {
			return fmt.Errorf("paths %+v", paths)
		}
		for _, p := range paths {
			if p.Stale != (stale && p.NextHop == node) {
				return fmt.Errorf("paths %+v", paths)
			}
		}
		return nil
	})
}
