// Command demo shows vipcast in the network-namespace lab: a real cluster (etcd,
// kube-apiserver, kube-controller-manager, kube-proxy on three nodes), a router and a client
// behind it. It runs the controller and a speaker per node, applies the sample pool and
// L2Advertisement, runs a small web workload behind a LoadBalancer Service, shows the
// EXTERNAL-IP vipcast gives it, which node answers ARP for it, reaches it from the client,
// then cuts the power of that node and prints how long the client saw no answer. With
// --check it fails unless all of that worked.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/test/lab"
)

// labIndex keeps the demo's lab apart from the tests' (1) and `vipcast-lab up` (0).
const labIndex = 2

func main() {
	lab.ServeChild()
	check := flag.Bool("check", false, "exit non-zero unless the client reaches the Service through its EXTERNAL-IP")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: the lab builds a cluster out of network namespaces and needs root: run it as root (sudo make demo)")
		os.Exit(1)
	}
	if err := run(*check); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type demo struct {
	ctx  context.Context
	lab  *lab.Lab
	root string
}

func run(check bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := lab.RepoRoot()
	if err != nil {
		return err
	}
	step("bringing up the lab: fabric, router (BIRD), client, control plane, 3 nodes with kube-proxy")
	l, err := lab.Up(ctx, lab.Config{Index: labIndex, Nodes: 3, Log: func(f string, a ...any) { fmt.Printf("   "+f+"\n", a...) }})
	if err != nil {
		return err
	}
	defer func() { step("cleaning up"); l.Down(context.Background()) }()
	d := &demo{ctx: ctx, lab: l, root: root}
	if err := d.show(check); err != nil {
		fmt.Println(l.Logs(20))
		return err
	}
	return nil
}

func (d *demo) show(check bool) error {
	step("starting the vipcast controller and a speaker on every node (with the project's RBAC)")
	if _, err := d.lab.StartController("controller", filepath.Join(d.root, "bin", "vipcast-controller")); err != nil {
		return err
	}
	if err := d.lab.StartSpeakers(filepath.Join(d.root, "bin", "vipcast-speaker")); err != nil {
		return err
	}
	step("running the web workload: three pods, one per node, each an HTTP server in its own namespace")
	pods, err := d.lab.Deploy(d.ctx, lab.Workload{Namespace: "default", Name: "web", Labels: map[string]string{"app": "web"}, Replicas: 3})
	if err != nil {
		return err
	}
	step("applying the sample pool, L2Advertisement and Service")
	samples := filepath.Join(d.root, "config", "samples")
	if err := d.kubectl("apply", "-f", filepath.Join(samples, "ipaddresspool.yaml"), "-f", filepath.Join(samples, "l2advertisement.yaml"),
		"-f", filepath.Join(samples, "service.yaml")); err != nil {
		return err
	}
	step("waiting for the EXTERNAL-IP")
	v4, v6, err := d.externalIPs()
	if err != nil {
		return err
	}
	for _, args := range [][]string{{"get", "svc", "web"}, {"get", "pods", "-o", "wide"}, {"get", "endpointslices", "-l", "kubernetes.io/service-name=web"}} {
		if err := d.kubectl(args...); err != nil {
			return err
		}
	}
	owner, err := d.owner(v4, "")
	if err != nil {
		return err
	}
	if err := d.kubectl("get", "speakerstatuses"); err != nil {
		return err
	}
	step("who answers ARP for " + v4.String() + "? (arping from the router)")
	out, _ := d.lab.Router.Exec(d.ctx, "arping", "-c", "2", "-w", "2", "-I", "eth0", v4.String())
	fmt.Printf("router$ arping -c 2 %s\n%s\n", v4, out)
	fmt.Printf("%s is %s: vipcast elected it among the live speakers\n", owner.MAC, owner.Name)
	step("the client (" + d.lab.ClientIPv4.String() + ", " + d.lab.ClientIPv6.String() + ") behind the router sends requests to the EXTERNAL-IPs")
	seen := map[string]bool{}
	for _, vip := range []netip.Addr{v4, v4, v4, v4, v6, v6, v6, v6} {
		r, err := d.get(vip)
		if err != nil {
			return err
		}
		seen[r.Pod] = true
	}
	for _, args := range [][]string{{"get", "ipaddresspools"},
		{"get", "svc", "web", "-o", `jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}`}} {
		if err := d.kubectl(args...); err != nil {
			return err
		}
	}
	if check && len(seen) < 2 {
		return fmt.Errorf("kube-proxy should spread requests over the pods; only %v answered", seen)
	}
	routed, err := d.bgp()
	if err != nil {
		return err
	}
	gap, next, err := d.powerCut(v4, owner, pods)
	if err != nil {
		return err
	}
	if check {
		fmt.Printf("check passed: the client reached %d pods through EXTERNAL-IPs %s and %s (L2) and %s (BGP, ECMP over 3 nodes), and again %s after %s lost power (%s took over)\n",
			len(seen), v4, v6, routed, gap, owner.Name, next.Name)
	}
	return nil
}

// bgp turns BFD on at the router, applies the BGP sample (peers, advertisement, a second
// Service) and shows the sessions, the router's ECMP route and the client's requests.
func (d *demo) bgp() (netip.Addr, error) {
	step("BGP: the router (BIRD, BFD on) peers with every node; applying the sample BGPPeers, BGPAdvertisement and a Service from the routed pool")
	if err := d.lab.Router.Configure(d.ctx, lab.BIRD, lab.RouterOptions{BFD: true}); err != nil {
		return netip.Addr{}, err
	}
	if err := d.kubectl("apply", "-f", filepath.Join(d.root, "config", "samples", "bgp.yaml")); err != nil {
		return netip.Addr{}, err
	}
	var vip netip.Addr
	var last error
	err := wait.PollUntilContextTimeout(d.ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var svc corev1.Service
		if last = d.lab.Kube.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web-bgp"}, &svc); last != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, nil
		}
		vip = netip.MustParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
		hops, err := d.lab.Router.NextHops(ctx, netip.PrefixFrom(vip, vip.BitLen()))
		last = fmt.Errorf("router next hops %v (%w)", hops, err)
		return len(hops) == len(d.lab.Nodes), nil
	})
	if err != nil {
		return vip, fmt.Errorf("the router did not learn %s from every node: %w", vip, errors.Join(err, last))
	}
	for _, args := range [][]string{{"get", "svc", "web-bgp"}, {"get", "bgppeers"}, {"get", "speakerstatuses"}} {
		if err := d.kubectl(args...); err != nil {
			return vip, err
		}
	}
	out, _ := d.lab.Router.Exec(d.ctx, "ip", "route", "show", vip.String())
	fmt.Printf("router$ ip route show %s\n%s", vip, out)
	out, _ = d.lab.Router.Birdc(d.ctx, "show", "bfd", "sessions")
	fmt.Printf("router$ birdc show bfd sessions\n%s", out)
	for range 6 {
		if _, err := d.get(vip); err != nil {
			return vip, err
		}
	}
	return vip, d.kubectl("get", "svc", "web-bgp", "-o", `jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}`)
}

// powerCut cuts the owner's power while the client probes the address every 10 ms, and
// returns the longest time the client got no answer.
func (d *demo) powerCut(vip netip.Addr, owner *lab.Node, pods []*lab.Pod) (time.Duration, *lab.Node, error) {
	step("cutting the power of " + owner.Name + " while the client sends a request every 10 ms")
	for _, p := range pods {
		if p.Node == owner.Name {
			// Kubernetes takes a dead node's pods out of Services after ~40 s; do it now so
			// the gap below is the address moving, nothing else.
			fmt.Printf("(taking %s, on %s, out of the Service first)\n", p.Key(), owner.Name)
			if err := d.lab.SetPodReady(d.ctx, p, false); err != nil {
				return 0, nil, err
			}
		}
	}
	time.Sleep(time.Second)
	probe := lab.StartProbe(d.lab.ClientNetns, lab.URL(vip, 80), 10*time.Millisecond, 300*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if err := owner.PowerOff(d.ctx); err != nil {
		probe.Stop()
		return 0, nil, err
	}
	next, err := d.owner(vip, owner.Name)
	if err == nil {
		_, err = d.get(vip)
	}
	time.Sleep(300 * time.Millisecond)
	res := probe.Stop()
	if err != nil {
		return 0, nil, err
	}
	fmt.Printf("%s took over %s; the client sent %d requests, %d failed, longest gap %s\n",
		next.Name, vip, len(res.Samples), res.Failed(), res.Longest().Round(time.Millisecond))
	return res.Longest().Round(time.Millisecond), next, nil
}

// owner waits until exactly one node other than exclude announces addr.
func (d *demo) owner(addr netip.Addr, exclude string) (*lab.Node, error) {
	var got string
	var last error
	err := wait.PollUntilContextTimeout(d.ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var all []string
		all, last = d.lab.Announcers(ctx, addr)
		var live []string
		for _, n := range all {
			if n != exclude {
				live = append(live, n)
			}
		}
		if last == nil && len(live) == 1 {
			got = live[0]
			return true, nil
		}
		last = errors.Join(last, fmt.Errorf("announced by %v", all))
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("no single node announces %s: %w", addr, errors.Join(err, last))
	}
	return d.lab.Node(got), nil
}

// get sends one request from the client, retrying while kube-proxy catches up.
func (d *demo) get(vip netip.Addr) (lab.Reply, error) {
	var r lab.Reply
	var last error
	err := wait.PollUntilContextTimeout(d.ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var body string
		if body, last = lab.Get(ctx, d.lab.ClientNetns, lab.URL(vip, 80), 2*time.Second); last == nil {
			r, last = lab.ParseReply(body)
		}
		return last == nil, nil
	})
	if err != nil {
		return r, fmt.Errorf("GET %s from the client: %w", lab.URL(vip, 80), errors.Join(err, last))
	}
	fmt.Printf("client$ GET %-28s → %s on %s, which saw the client as %s\n", lab.URL(vip, 80), r.Pod, r.Node, r.Client)
	return r, nil
}

func (d *demo) externalIPs() (v4, v6 netip.Addr, err error) {
	pool, _ := netip.ParsePrefix("192.0.2.240/28")
	pool6, _ := netip.ParsePrefix("2001:db8::240/124")
	err = wait.PollUntilContextTimeout(d.ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var svc corev1.Service
		if err := d.lab.Kube.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &svc); err != nil {
			return false, nil
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil && a.Is4() {
				v4 = a
			} else if err == nil {
				v6 = a
			}
		}
		return v4.IsValid() && v6.IsValid(), nil
	})
	if err != nil {
		return v4, v6, fmt.Errorf("the Service got no IPv4 and IPv6 EXTERNAL-IP (%s, %s): %w", v4, v6, err)
	}
	if !pool.Contains(v4) || !pool6.Contains(v6) {
		return v4, v6, fmt.Errorf("EXTERNAL-IPs %s %s are not from the sample pool", v4, v6)
	}
	return v4, v6, nil
}

func (d *demo) kubectl(args ...string) error {
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(d.ctx, filepath.Join(d.root, "bin", "kubectl"), append([]string{"--kubeconfig", d.lab.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	return cmd.Run()
}

func step(s string) { fmt.Printf("\n== %s\n", s) }
