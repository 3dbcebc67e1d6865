package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Autonomous system numbers of the lab: the router's and the one it expects from nodes.
const (
	RouterASN = 64512
	NodeASN   = 64513
)

// RouterKind names the routing daemon the lab's router runs.
type RouterKind string

// The routing daemons the router can run.
const (
	BIRD RouterKind = "bird"
	FRR  RouterKind = "frr"
)

// Router is the top-of-rack router: the nodes' gateway on the fabric and the client
// network's gateway. It runs BIRD or FRR, either of which accepts BGP sessions from any
// fabric address (AS NodeASN, IPv4 and IPv6 sessions) and installs what it learns into its
// kernel table with ECMP, so a route learnt from several nodes spreads traffic over them.
type Router struct {
	lab        *Lab
	Netns      string
	IPv4, IPv6 netip.Addr
	ASN        uint32

	mu   sync.Mutex
	kind RouterKind
	opts RouterOptions
}

// RouterOptions change how the router peers with the nodes.
type RouterOptions struct {
	// Password is the TCP MD5 password every node session must use (empty: none).
	Password string
	// BFD runs BFD with every node (300 ms x 3). FRR then keeps the routes of a node in
	// graceful restart when its BFD session goes down after its BGP session closed
	// (check-control-plane-failure: the speakers' BFD shares their control plane).
	BFD bool
	// IBGP makes the nodes internal peers (AS RouterASN) instead of AS NodeASN.
	IBGP bool
	// GracefulBFD makes BIRD take a BFD session going down for a graceful restart of the
	// neighbour (bfd graceful) rather than a failure: without it BIRD ends the graceful
	// restart of a speaker whose BFD session goes down as it stops, and drops its routes.
	// (It also keeps a powered-off node's routes, stale, for the restart time.)
	GracefulBFD bool
	// Static makes FRR list every node as a neighbour instead of accepting a listen range
	// (dynamic neighbours). FRR 8.4.4's bgpd crashes (SIGSEGV in bgp_timer_set) when the
	// graceful-restart timer of a dynamic neighbour runs out, so graceful restart is tested
	// with static neighbours there. BIRD always uses its neighbour ranges.
	Static bool
}

var birdConf = template.Must(template.New("bird").Parse(`# vipcast lab router: BGP from every node, ECMP into the kernel.
router id {{.RouterID}};
log stderr all;
protocol device { scan time 10; }
protocol kernel kernel4 { ipv4 { import none; export all; }; merge paths on limit 16; }
protocol kernel kernel6 { ipv6 { import none; export all; }; merge paths on limit 16; }
{{- if .BFD}}
protocol bfd { interface "*" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; }; }
{{- end}}
template bgp nodes {
  local as {{.ASN}};
  hold time 9;
  connect retry time 1;
  error wait time 1, 5;
  dynamic name "node";
{{- if .IBGP}}
  direct;
{{- end}}
{{- if .Password}}
  password "{{.Password}}";
{{- end}}
{{- if .BFD}}
  bfd {{if .GracefulBFD}}graceful{{else}}on{{end}};
{{- end}}
  ipv4 { import all; export none; };
  ipv6 { import all; export none; };
}
protocol bgp nodes4 from nodes { neighbor range {{.FabricV4}} {{if .IBGP}}internal{{else}}as {{.NodeASN}}{{end}}; }
protocol bgp nodes6 from nodes { neighbor range {{.FabricV6}} {{if .IBGP}}internal{{else}}as {{.NodeASN}}{{end}}; }
protocol bgp uplinks from nodes { neighbor range {{.Uplinks}} {{if .IBGP}}internal{{else}}as {{.NodeASN}}{{end}}; }
`))

var frrConf = template.Must(template.New("frr").Parse(`! vipcast lab router: BGP from every node, ECMP into the kernel.
frr defaults datacenter
hostname lab-router
log stdout informational
router bgp {{.ASN}}
 bgp router-id {{.RouterID}}
 no bgp ebgp-requires-policy
 bgp bestpath as-path multipath-relax
 neighbor nodes peer-group
 neighbor nodes remote-as {{if .IBGP}}internal{{else}}{{.NodeASN}}{{end}}
 neighbor nodes timers 3 9
 neighbor nodes timers connect 1
{{- if .Password}}
 neighbor nodes password {{.Password}}
{{- end}}
{{- if .BFD}}
 neighbor nodes bfd profile fast
 neighbor nodes bfd check-control-plane-failure
{{- end}}
{{- if .Static}}
{{- range .Nodes}}
 neighbor {{.}} peer-group nodes
{{- end}}
{{- else}}
 bgp listen range {{.FabricV4}} peer-group nodes
 bgp listen range {{.FabricV6}} peer-group nodes
{{- end}}
 bgp listen range {{.Uplinks}} peer-group nodes
 address-family ipv4 unicast
  maximum-paths 16
  maximum-paths ibgp 16
 exit-address-family
 address-family ipv6 unicast
  neighbor nodes activate
  maximum-paths 16
  maximum-paths ibgp 16
 exit-address-family
`))

var bfddConf = template.Must(template.New("bfdd").Parse(`hostname lab-router
bfd
 profile fast
  detect-multiplier 3
  receive-interval 300
  transmit-interval 300
 exit
exit
`))

func (r *Router) dir() string { return filepath.Join(r.lab.Dir, "router") }

// Socket is BIRD's control socket, for birdc -s.
func (r *Router) Socket() string { return filepath.Join(r.dir(), "bird.ctl") }

// Kind is the routing daemon running now.
func (r *Router) Kind() RouterKind {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kind
}

// start hashes ECMP by ports too (as top-of-rack routers do), so connections from one
// client spread over the nodes, and starts the configured daemon.
func (r *Router) start(ctx context.Context) error {
	if err := sysctl(ctx, r.Netns, "net.ipv4.fib_multipath_hash_policy=1", "net.ipv6.fib_multipath_hash_policy=1"); err != nil {
		return err
	}
	return r.Use(ctx, r.lab.cfg.Router)
}

// Use makes the router run kind with the options set now: the daemon running now stops
// gracefully (taking its routes out of the kernel) and kind starts with the lab's
// configuration. Sessions from the nodes come back by themselves.
func (r *Router) Use(ctx context.Context, kind RouterKind) error {
	return r.Configure(ctx, kind, r.Options())
}

// Options are the router's options now.
func (r *Router) Options() RouterOptions {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opts
}

// Configure restarts the router as kind with opts.
func (r *Router) Configure(ctx context.Context, kind RouterKind, opts RouterOptions) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range []string{"router/bird", "router/bgpd", "router/bfdd", "router/zebra"} {
		if p := r.lab.Process(name); p != nil {
			if err := p.Stop(10 * time.Second); err != nil {
				return err
			}
		}
	}
	if err := os.RemoveAll(r.dir()); err != nil {
		return err
	}
	if err := os.MkdirAll(r.dir(), 0o755); err != nil {
		return err
	}
	data := map[string]any{"RouterID": r.IPv4, "ASN": r.ASN, "NodeASN": NodeASN, "FabricV4": FabricV4, "FabricV6": FabricV6,
		"Uplinks": UplinksV4, "Password": opts.Password, "BFD": opts.BFD, "IBGP": opts.IBGP, "Static": opts.Static, "GracefulBFD": opts.GracefulBFD, "Nodes": r.nodeAddrs()}
	var err error
	switch kind {
	case BIRD:
		err = r.startBIRD(ctx, data)
	case FRR:
		err = r.startFRR(ctx, data)
	default:
		err = fmt.Errorf("unknown router kind %q (bird or frr)", kind)
	}
	if err == nil {
		r.kind, r.opts = kind, opts
	}
	return err
}

// nodeAddrs are every node's fabric addresses, for FRR's static neighbours.
func (r *Router) nodeAddrs() []netip.Addr {
	var out []netip.Addr
	for i := range r.lab.cfg.Nodes {
		v4, v6 := r.lab.plan.NodeFabric(i + 1)
		out = append(out, v4, v6)
	}
	return out
}

func (r *Router) writeConf(name string, t *template.Template, data any) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	path := filepath.Join(r.dir(), name)
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

func (r *Router) startBIRD(ctx context.Context, data map[string]any) error {
	conf, err := r.writeConf("bird.conf", birdConf, data)
	if err != nil {
		return err
	}
	if _, err := r.lab.Run("router/bird", r.Netns, nil, "bird", "-f", "-c", conf, "-s", r.Socket()); err != nil {
		return err
	}
	return r.waitUp(ctx, "router/bird", func(ctx context.Context) error {
		_, err := r.Birdc(ctx, "show", "status")
		return err
	})
}

// startFRR runs zebra (the kernel side) and bgpd in the foreground. They drop privileges to
// the frr user, so their directory is frr's.
func (r *Router) startFRR(ctx context.Context, data map[string]any) error {
	conf, err := r.writeConf("bgpd.conf", frrConf, data)
	if err != nil {
		return err
	}
	zconf, err := r.writeConf("zebra.conf", template.Must(template.New("z").Parse("hostname lab-router\n")), nil)
	if err != nil {
		return err
	}
	if err := chownToUser(r.dir(), "frr"); err != nil {
		return err
	}
	common := func(name, conf string) []string {
		return []string{"/usr/lib/frr/" + name, "-f", conf, "-i", filepath.Join(r.dir(), name+".pid"),
			"-z", filepath.Join(r.dir(), "zserv.api"), "--vty_socket", r.dir(), "-P", "0", "--log", "stdout"}
	}
	if _, err := r.lab.Run("router/zebra", r.Netns, nil, common("zebra", zconf)...); err != nil {
		return err
	}
	if err := r.waitUp(ctx, "router/zebra", func(ctx context.Context) error {
		_, err := os.Stat(filepath.Join(r.dir(), "zserv.api"))
		return err
	}); err != nil {
		return err
	}
	if data["BFD"] == true {
		bconf, err := r.writeConf("bfdd.conf", bfddConf, nil)
		if err != nil {
			return err
		}
		if err := chownToUser(r.dir(), "frr"); err != nil {
			return err
		}
		if _, err := r.lab.Run("router/bfdd", r.Netns, nil, common("bfdd", bconf)...); err != nil {
			return err
		}
	}
	if _, err := r.lab.Run("router/bgpd", r.Netns, nil, common("bgpd", conf)...); err != nil {
		return err
	}
	return r.waitUp(ctx, "router/bgpd", func(ctx context.Context) error {
		_, err := r.Vtysh(ctx, "show bgp summary")
		return err
	})
}

// waitUp waits until ready succeeds, failing early when the process exits.
func (r *Router) waitUp(ctx context.Context, proc string, ready func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		if p := r.lab.Process(proc); !p.Running() {
			return false, fmt.Errorf("%s exited:\n%s", proc, p.Tail(20))
		}
		last = ready(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", proc, errors.Join(err, last))
	}
	return nil
}

// Vtysh runs an FRR command ("show bgp summary") and returns its output.
func (r *Router) Vtysh(ctx context.Context, cmd string) (string, error) {
	return run(ctx, "vtysh", "--vty_socket", r.dir(), "-c", cmd)
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

// NextHops reads the router's kernel route for exactly prefix and returns its next hops
// (several for ECMP), or none when there is no such route. It is what the router forwards
// by, whoever put the route there.
func (r *Router) NextHops(ctx context.Context, prefix netip.Prefix) ([]netip.Addr, error) {
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := run(ctx, "ip", "-n", r.Netns, "-j", family, "route", "show", "exact", prefix.Masked().String())
	if err != nil {
		return nil, err
	}
	return parseNextHops(out)
}

// parseNextHops reads `ip -j route show` output: one route with a gateway or a list of
// next hops.
func parseNextHops(js string) ([]netip.Addr, error) {
	var routes []struct {
		Gateway  string `json:"gateway"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(js), &routes); err != nil {
		return nil, fmt.Errorf("reading ip route output %q: %w", js, err)
	}
	var hops []netip.Addr
	for _, rt := range routes {
		gws := []string{rt.Gateway}
		for _, nh := range rt.Nexthops {
			gws = append(gws, nh.Gateway)
		}
		for _, g := range gws {
			if a, err := netip.ParseAddr(g); err == nil {
				hops = append(hops, a)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// UpstreamASN is the autonomous system of the upstream peer.
const UpstreamASN = 64514

// Upstream is a second BGP router (BIRD) in the client's namespace, two hops from the nodes
// (node, router, client): a peer only eBGP multihop reaches. It learns routes and keeps
// them to itself (nothing goes into the client's kernel).
type Upstream struct {
	lab   *Lab
	Netns string
	IPv4  netip.Addr
	dir   string
}

var upstreamConf = template.Must(template.New("upstream").Parse(`# vipcast lab upstream: multihop eBGP from every node.
router id {{.RouterID}};
log stderr all;
protocol device { scan time 10; }
protocol bgp nodes {
  local as {{.ASN}};
  neighbor range {{.FabricV4}} as {{.NodeASN}};
  multihop;
  hold time 9;
  dynamic name "up";
  ipv4 { import all; export none; };
}
`))

// StartUpstream runs the upstream BIRD in the client's namespace.
func (l *Lab) StartUpstream(ctx context.Context) (*Upstream, error) {
	u := &Upstream{lab: l, Netns: l.ClientNetns, IPv4: l.ClientIPv4, dir: filepath.Join(l.Dir, "upstream")}
	if err := os.MkdirAll(u.dir, 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	if err := upstreamConf.Execute(&b, map[string]any{"RouterID": u.IPv4, "ASN": UpstreamASN, "NodeASN": NodeASN, "FabricV4": FabricV4}); err != nil {
		return nil, err
	}
	conf := filepath.Join(u.dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	if _, err := l.Run("upstream/bird", u.Netns, nil, "bird", "-f", "-c", conf, "-s", u.socket()); err != nil {
		return nil, err
	}
	return u, l.Router.waitUp(ctx, "upstream/bird", func(ctx context.Context) error {
		_, err := u.Birdc(ctx, "show", "status")
		return err
	})
}

func (u *Upstream) socket() string { return filepath.Join(u.dir, "bird.ctl") }

// Birdc runs a BIRD command on the upstream router.
func (u *Upstream) Birdc(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "birdc", append([]string{"-s", u.socket()}, args...)...)
}

// Stop stops the upstream router.
func (u *Upstream) Stop() error {
	if p := u.lab.Process("upstream/bird"); p != nil {
		return p.Stop(5 * time.Second)
	}
	return nil
}
