package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Autonomous system numbers of the lab: the router's and the one it expects from nodes.
const (
	RouterASN = 64512
	NodeASN   = 64513
)

// Router is the top-of-rack router: the nodes' gateway on the fabric and the client
// network's gateway. It runs BIRD, which accepts BGP sessions from any fabric address (AS
// NodeASN, IPv4 and IPv6 sessions) and installs what it learns into its kernel table with
// ECMP, so a route learnt from several nodes spreads traffic over them.
type Router struct {
	lab        *Lab
	Netns      string
	IPv4, IPv6 netip.Addr
	ASN        uint32
}

var birdConf = template.Must(template.New("bird").Parse(`# vipcast lab router: BGP from every node, ECMP into the kernel.
router id {{.RouterID}};
log stderr all;
protocol device { scan time 10; }
protocol kernel kernel4 { ipv4 { import none; export all; }; merge paths on limit 16; }
protocol kernel kernel6 { ipv6 { import none; export all; }; merge paths on limit 16; }
template bgp nodes {
  local as {{.ASN}};
  hold time 9;
  connect retry time 1;
  error wait time 1, 5;
  dynamic name "node";
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
protocol bgp nodes4 from nodes { neighbor range {{.FabricV4}} as {{.NodeASN}}; }
protocol bgp nodes6 from nodes { neighbor range {{.FabricV6}} as {{.NodeASN}}; }
`))

func (r *Router) dir() string { return filepath.Join(r.lab.Dir, "router") }

// Socket is BIRD's control socket, for birdc -s.
func (r *Router) Socket() string { return filepath.Join(r.dir(), "bird.ctl") }

func (r *Router) start(ctx context.Context) error {
	if err := os.MkdirAll(r.dir(), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	if err := birdConf.Execute(&b, map[string]any{
		"RouterID": r.IPv4, "ASN": r.ASN, "NodeASN": NodeASN, "FabricV4": FabricV4, "FabricV6": FabricV6,
	}); err != nil {
		return err
	}
	conf := filepath.Join(r.dir(), "bird.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if _, err := r.lab.Run("router/bird", r.Netns, nil, "bird", "-f", "-c", conf, "-s", r.Socket()); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		if !r.lab.Process("router/bird").Running() {
			return false, fmt.Errorf("bird exited:\n%s", r.lab.Process("router/bird").Tail(20))
		}
		_, err := r.Birdc(ctx, "show", "status")
		return err == nil, nil
	})
}

// Birdc runs a BIRD command ("show route", "show protocols") and returns its output.
func (r *Router) Birdc(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "birdc", append([]string{"-s", r.Socket()}, args...)...)
}

// Route points a host route for vip at one or more next hops (ECMP when several), by hand,
// as an operator would before any speaker announces it.
func (r *Router) Route(ctx context.Context, vip netip.Addr, via ...netip.Addr) error {
	args := []string{"route", "replace", netip.PrefixFrom(vip, vip.BitLen()).String()}
	for _, v := range via {
		args = append(args, "nexthop", "via", v.String())
	}
	return ip(ctx, r.Netns, args...)
}

// Unroute removes a route made with Route.
func (r *Router) Unroute(ctx context.Context, vip netip.Addr) error {
	return ip(ctx, r.Netns, "route", "del", netip.PrefixFrom(vip, vip.BitLen()).String())
}

// Exec runs a command in the router's namespace.
func (r *Router) Exec(ctx context.Context, argv ...string) (string, error) {
	return Exec(ctx, r.Netns, argv...)
}
