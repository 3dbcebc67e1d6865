package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/vipcast/vipcast/test/lab"
)

// gobgpdConf peers a node with the router over IPv4 and IPv6, as a BGP speaker on a node
// would, without listening itself.
const gobgpdConf = `[global.config]
  as = %d
  router-id = "%s"
  port = -1
[[neighbors]]
  [neighbors.config]
    neighbor-address = "%s"
    peer-as = %d
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "%s"
    peer-as = %d
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
`

// The router, with BIRD and with FRR, accepts BGP from any node, installs a prefix learnt
// from several nodes as one ECMP route, carries client traffic over it to the pods, and drops
// a node's next hop when its session goes. GoBGP's own daemon stands in for the speaker.
func TestRouterLearnsBGPFromNodesWithECMP(t *testing.T) {
	t.Cleanup(func() {
		if err := cluster.Router.Use(context.Background(), lab.BIRD); err != nil {
			t.Error(err)
		}
	})
	for _, kind := range []lab.RouterKind{lab.BIRD, lab.FRR} {
		t.Run(string(kind), func(t *testing.T) {
			if err := cluster.Router.Use(t.Context(), kind); err != nil {
				t.Fatal(err)
			}
			testRouterBGP(t)
		})
	}
}

func testRouterBGP(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-1", "node-2")
	svc := service(t, ns, "web", "web", corev1.ServiceTypeLoadBalancer, nil)
	v4, v6 := loadBalancerIPs(t, svc)
	speakers := []*lab.Node{cluster.Node("node-1"), cluster.Node("node-2")}
	for _, n := range speakers {
		startGoBGP(t, n)
		for _, vip := range []netip.Addr{v4, v6} {
			family := map[bool]string{true: "ipv4", false: "ipv6"}[vip.Is4()]
			eventually(t, 10*time.Second, "gobgp API on "+n.Name, func(ctx context.Context) error {
				_, err := lab.Exec(ctx, n.Netns, cluster.Bin("gobgp"), "global", "rib", "add", "-a", family, netip.PrefixFrom(vip, vip.BitLen()).String())
				return err
			})
		}
	}
	for _, vip := range []netip.Addr{v4, v6} {
		want := []netip.Addr{speakers[0].IPv4, speakers[1].IPv4}
		if vip.Is6() {
			want = []netip.Addr{speakers[0].IPv6, speakers[1].IPv6}
		}
		waitNextHops(t, vip, want)
		eventually(t, 30*time.Second, fmt.Sprintf("the client reaches %s over the BGP route", vip), func(ctx context.Context) error {
			_, err := getFrom(ctx, cluster.ClientNetns, vip, 80, 2*time.Second)
			return err
		})
	}
	// node-1's speaker stops: its session closes and the router keeps only node-2.
	if err := speakers[0].StopGracefully("gobgpd", 10*time.Second); err != nil {
		t.Log(err)
	}
	waitNextHops(t, v4, []netip.Addr{speakers[1].IPv4})
	waitNextHops(t, v6, []netip.Addr{speakers[1].IPv6})
}

func startGoBGP(t *testing.T, n *lab.Node) {
	t.Helper()
	r4, r6 := cluster.Router.IPv4, cluster.Router.IPv6
	conf := filepath.Join(t.TempDir(), "gobgpd.toml")
	body := fmt.Sprintf(gobgpdConf, lab.NodeASN, n.IPv4, r4, lab.RouterASN, r6, lab.RouterASN)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := n.Run("gobgpd", nil, cluster.Bin("gobgpd"), "-f", conf, "-p", "--api-hosts=127.0.0.1:50051", "--pprof-disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
}

func waitNextHops(t *testing.T, vip netip.Addr, want []netip.Addr) {
	t.Helper()
	slices.SortFunc(want, netip.Addr.Compare)
	eventually(t, 30*time.Second, fmt.Sprintf("router next hops for %s = %v", vip, want), func(ctx context.Context) error {
		got, err := cluster.Router.NextHops(ctx, netip.PrefixFrom(vip, vip.BitLen()))
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("next hops %v", got)
		}
		return err
	})
}
