// Command demo shows vipcast in the network-namespace lab: a real cluster (etcd,
// kube-apiserver, kube-controller-manager, kube-proxy on three nodes), a router and a client
// behind it. It applies the sample pool, runs a small web workload behind a LoadBalancer
// Service, shows the EXTERNAL-IP vipcast gives it and reaches it from the client through the
// router and kube-proxy. With --check it fails unless all of that worked.
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
	step("starting the vipcast controller (as user " + lab.ControllerUser + ", with the project's RBAC)")
	if _, err := d.lab.StartController("controller", filepath.Join(d.root, "bin", "vipcast-controller")); err != nil {
		return err
	}
	step("running the web workload: three pods, one per node, each an HTTP server in its own namespace")
	if _, err := d.lab.Deploy(d.ctx, lab.Workload{Namespace: "default", Name: "web", Labels: map[string]string{"app": "web"}, Replicas: 3}); err != nil {
		return err
	}
	step("applying the sample pool and Service")
	samples := filepath.Join(d.root, "config", "samples")
	if err := d.kubectl("apply", "-f", filepath.Join(samples, "ipaddresspool.yaml"), "-f", filepath.Join(samples, "service.yaml")); err != nil {
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
	node := d.lab.Nodes[0]
	step(fmt.Sprintf("routing %s and %s to %s by hand on the router (the speaker will announce them instead)", v4, v6, node.Name))
	for _, r := range []struct{ vip, via netip.Addr }{{v4, node.IPv4}, {v6, node.IPv6}} {
		if err := d.lab.Router.Route(d.ctx, r.vip, r.via); err != nil {
			return err
		}
		family := "-4"
		if r.vip.Is6() {
			family = "-6"
		}
		out, _ := d.lab.Router.Exec(d.ctx, "ip", family, "route", "show", r.vip.String())
		fmt.Printf("router$ ip %s route show %s\n%s\n", family, r.vip, out)
	}
	step("the client (" + d.lab.ClientIPv4.String() + ", " + d.lab.ClientIPv6.String() + ") behind the router sends requests to the EXTERNAL-IPs")
	pods := map[string]bool{}
	for _, vip := range []netip.Addr{v4, v4, v4, v4, v6, v6, v6, v6} {
		r, err := d.get(vip)
		if err != nil {
			return err
		}
		pods[r.Pod] = true
	}
	if err := d.kubectl("get", "ipaddresspools"); err != nil {
		return err
	}
	if check && len(pods) < 2 {
		return fmt.Errorf("kube-proxy should spread requests over the pods; only %v answered", pods)
	}
	if check {
		fmt.Printf("check passed: the client reached %d pods through EXTERNAL-IPs %s and %s\n", len(pods), v4, v6)
	}
	return nil
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
