// Command demo shows vipcast on a real control plane: etcd and kube-apiserver from bin/,
// the controller binary, a sample pool and Service, and what kubectl shows of them. With
// --check it fails unless the Service got an address from the pool.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vipcast/vipcast/test/localcp"
)

func main() {
	check := flag.Bool("check", false, "exit non-zero unless the Service gets an address from the sample pool")
	flag.Parse()
	if err := run(*check); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func run(check bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir := root()
	step("starting etcd and kube-apiserver from bin/")
	cp, err := localcp.Start(dir)
	if err != nil {
		return err
	}
	defer func() { step("cleaning up"); cp.Stop() }()

	step("starting the vipcast controller")
	ctrl := exec.CommandContext(ctx, filepath.Join(dir, "bin", "vipcast-controller"),
		"--kubeconfig", cp.Kubeconfig, "--leader-elect=false", "--metrics-bind-address=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0")
	logf, err := os.CreateTemp("", "vipcast-controller-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(logf.Name())
	ctrl.Stdout, ctrl.Stderr = logf, logf
	if err := ctrl.Start(); err != nil {
		return err
	}
	defer func() { _ = ctrl.Process.Signal(syscall.SIGTERM); _ = ctrl.Wait() }()

	kubectl := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, filepath.Join(dir, "bin", "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...).CombinedOutput()
		return string(out), err
	}
	show := func(args ...string) error {
		fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
		out, err := kubectl(args...)
		fmt.Print(out)
		return err
	}
	step("applying the sample pool and Service")
	if err := show("apply", "-f", filepath.Join(dir, "config", "samples", "ipaddresspool.yaml"), "-f", filepath.Join(dir, "config", "samples", "service.yaml")); err != nil {
		return err
	}
	step("waiting for the EXTERNAL-IP")
	var ip string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && ip == ""; time.Sleep(200 * time.Millisecond) {
		out, _ := kubectl("get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		ip = strings.TrimSpace(out)
	}
	if err := errorsJoin(show("get", "svc", "web"), show("get", "ipaddresspools"),
		show("get", "svc", "web", "-o", "jsonpath={.status.conditions[0].message}{\"\\n\"}")); err != nil {
		return err
	}
	if check {
		pool := netip.MustParsePrefix("192.0.2.0/28")
		addr, err := netip.ParseAddr(ip)
		if err != nil || !pool.Contains(addr) {
			log, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("the Service has no address from %s (got %q); controller log:\n%s", pool, ip, log)
		}
		fmt.Printf("check passed: EXTERNAL-IP %s is from the sample pool %s\n", ip, pool)
	}
	return nil
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func step(s string) { fmt.Printf("\n== %s\n", s) }
