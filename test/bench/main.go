// Command bench measures the controller on a real control plane: a backlog of N
// LoadBalancer Services is created first, then the controller binary starts; it prints the
// time until every Service has an EXTERNAL-IP, until every Service's IPAllocated condition is
// True and until every Service also has its Announced condition (settled), the controller's
// CPU seconds and peak RSS, then restarts the controller over the same objects and prints its
// time to ready and the number of objects it wrote. SIGINT or SIGTERM stops the controller
// and the control plane before it exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/localcp"
)

func main() {
	n := flag.Int("services", 10000, "LoadBalancer Services in the backlog")
	workers := flag.Int("workers", 32, "goroutines creating Services")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *n, *workers)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case interrupted:
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

const (
	ns = "default"
	// listPage is the page size of the Service lists (50,000 Services are ~100 MB of JSON).
	listPage = 5000
	// waitLimit bounds each wait for all Services.
	waitLimit = 30 * time.Minute
)

func run(ctx context.Context, n, workers int) error {
	dir := root()
	cp, err := localcp.StartWith(dir, "198.18.0.0/16")
	if err != nil {
		return err
	}
	defer cp.Stop()
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := applyPool(ctx, dir, cp.Kubeconfig); err != nil {
		return err
	}
	start := time.Now()
	if err := createServices(ctx, cs, n, workers); err != nil {
		return err
	}
	fmt.Printf("services=%d created in %.1fs (backlog before the controller starts)\n", n, time.Since(start).Seconds())

	if err := firstRun(ctx, cs, dir, cp.Kubeconfig, n); err != nil {
		return err
	}
	return restart(ctx, cs, dir, cp.Kubeconfig)
}

// firstRun starts the controller over the backlog and times it until every Service is
// settled, then stops it.
func firstRun(ctx context.Context, cs kubernetes.Interface, dir, kubeconfig string, n int) error {
	c, err := startController(dir, kubeconfig, 17472)
	if err != nil {
		return err
	}
	defer c.stop()
	t0 := time.Now()
	if err := waitAllAllocated(ctx, cs, "", n, waitLimit); err != nil {
		return err
	}
	elapsed := time.Since(t0)
	cpu, rss := c.usage()
	fmt.Printf("allocate: services=%d all-have-external-ip=%.2fs rate=%.0f/s controller-cpu=%.2fs peak-rss=%.1fMB\n",
		n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), cpu, rss)
	if err := waitAllAllocatedTrue(ctx, cs, n, waitLimit); err != nil {
		return err
	}
	allocated := time.Since(t0)
	if err := waitAllSettled(ctx, cs, n, waitLimit); err != nil {
		return err
	}
	cpu, rss = c.usage()
	fmt.Printf("settled: condition %s True on every Service after %.2fs, %s on every Service too after %.2fs (controller-cpu=%.2fs peak-rss=%.1fMB)\n",
		v1alpha1.ConditionIPAllocated, allocated.Seconds(), v1alpha1.ConditionAnnounced, time.Since(t0).Seconds(), cpu, rss)
	time.Sleep(2 * time.Second) // let the last pool status flush land
	return nil
}

// restart starts the controller again over the unchanged objects and counts what it writes
// until it has served a new Service and gone quiet.
func restart(ctx context.Context, cs kubernetes.Interface, dir, kubeconfig string) error {
	writes, err := countWrites(ctx, cs)
	if err != nil {
		return err
	}
	t1 := time.Now()
	c, err := startController(dir, kubeconfig, 17482)
	if err != nil {
		writes.stop()
		return err
	}
	defer c.stop()
	ready := c.waitReady(ctx, 2*time.Minute)
	readyAt := time.Since(t1)
	// A fresh Service after the restart shows the controller is live and has loaded all.
	probe := lbService("after-restart")
	if _, err := cs.CoreV1().Services(ns).Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		writes.stop()
		return err
	}
	if err := waitAllAllocated(ctx, cs, "metadata.name=after-restart", 1, waitLimit); err != nil {
		writes.stop()
		return err
	}
	probeAt := time.Since(t1)
	time.Sleep(5 * time.Second)
	quietAfter, quiet := c.waitQuiet(ctx)
	got := writes.stop()
	cpu2, rss2 := c.usage()
	fmt.Printf("restart: ready=%v time-to-ready=%.2fs new-service-allocated-after=%.2fs quiet=%v (after %.0fs) writes-to-existing-objects=%d controller-cpu=%.2fs peak-rss=%.1fMB\n",
		ready, readyAt.Seconds(), probeAt.Seconds(), quiet, quietAfter.Seconds(), got, cpu2, rss2)
	return ctx.Err()
}

func applyPool(ctx context.Context, dir, kubeconfig string) error {
	pool := `apiVersion: vipcast.io/v1alpha1
kind: IPAddressPool
metadata: {name: bench}
spec: {addresses: ["198.19.0.0/16"]}
`
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "bin", "kubectl"), "--kubeconfig", kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(pool)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("applying pool: %w: %s", err, out)
	}
	return nil
}

func lbService(name string) *corev1.Service {
	no := false
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name},
			// Node ports would run out long before 10,000 Services.
			AllocateLoadBalancerNodePorts: &no,
			Ports:                         []corev1.ServicePort{{Port: 80}},
		},
	}
}

func createServices(ctx context.Context, cs kubernetes.Interface, n, workers int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := cs.CoreV1().Services(ns).Create(ctx, lbService(fmt.Sprintf("svc-%05d", i)), metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// waitAllAllocated waits until n Services matching the field selector have an address,
// reading a watch and starting it again (after a fresh list) whenever the server closes it.
func waitAllAllocated(ctx context.Context, cs kubernetes.Interface, field string, n int, limit time.Duration) error {
	return waitAll(ctx, cs, field, n, limit, func(s *corev1.Service) bool { return len(s.Status.LoadBalancer.Ingress) > 0 })
}

// waitAllAllocatedTrue waits until every Service's IPAllocated condition is True.
func waitAllAllocatedTrue(ctx context.Context, cs kubernetes.Interface, n int, limit time.Duration) error {
	return waitAll(ctx, cs, "", n, limit, func(s *corev1.Service) bool {
		return meta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionIPAllocated)
	})
}

// waitAllSettled waits until every Service also has its Announced condition: the first
// controller's work is done, so a restart finds nothing left to write.
func waitAllSettled(ctx context.Context, cs kubernetes.Interface, n int, limit time.Duration) error {
	return waitAll(ctx, cs, "", n, limit, func(s *corev1.Service) bool {
		return meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAnnounced) != nil
	})
}

// waitAll waits until n Services (matching the field selector) satisfy done: a list (page by
// page), then a watch from it, again whenever the server closes the watch.
func waitAll(ctx context.Context, cs kubernetes.Interface, field string, n int, limit time.Duration, ok func(*corev1.Service) bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	done := map[string]bool{}
	for {
		rv, err := listEach(ctx, cs, field, func(s *corev1.Service) {
			if ok(s) {
				done[s.Name] = true
			}
		})
		if err != nil {
			return fmt.Errorf("%d/%d done: %w", len(done), n, err)
		}
		if len(done) >= n {
			return nil
		}
		w, err := cs.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{FieldSelector: field, ResourceVersion: rv})
		if err != nil {
			return fmt.Errorf("%d/%d allocated: %w", len(done), n, err)
		}
		for ev := range w.ResultChan() {
			if s, isSvc := ev.Object.(*corev1.Service); isSvc && ok(s) {
				done[s.Name] = true
			}
			if len(done) >= n {
				w.Stop()
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("only %d/%d Services done after %v: %w", len(done), n, limit, ctx.Err())
		}
	}
}

// listEach lists the Services page by page, calls f on each, and returns the list's
// resourceVersion (every page is of one snapshot).
func listEach(ctx context.Context, cs kubernetes.Interface, field string, f func(*corev1.Service)) (string, error) {
	opts := metav1.ListOptions{FieldSelector: field, Limit: listPage}
	for {
		list, err := cs.CoreV1().Services(ns).List(ctx, opts)
		if err != nil {
			return "", err
		}
		for i := range list.Items {
			f(&list.Items[i])
		}
		if list.Continue == "" {
			return list.ResourceVersion, nil
		}
		opts.Continue = list.Continue
	}
}

type writeCounter struct {
	n    atomic.Int64
	stop func() int64
}

// countWrites counts modifications of existing Services and pools until stopped.
func countWrites(ctx context.Context, cs kubernetes.Interface) (*writeCounter, error) {
	wc := &writeCounter{}
	sw, err := cs.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: "0", AllowWatchBookmarks: false})
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev := range sw.ResultChan() {
			if s, ok := ev.Object.(*corev1.Service); ok && ev.Type == watch.Modified && s.Name != "after-restart" {
				wc.n.Add(1)
			}
		}
	})
	pools, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis/vipcast.io/v1alpha1/ipaddresspools").Param("watch", "true").Stream(ctx)
	if err != nil {
		return nil, err
	}
	poolWrites := make(chan int64, 1)
	wg.Go(func() {
		buf := make([]byte, 1<<16)
		var count int64
		var data strings.Builder
		for {
			k, err := pools.Read(buf)
			data.Write(buf[:k])
			if err != nil {
				break
			}
		}
		count = int64(strings.Count(data.String(), `"type":"MODIFIED"`))
		poolWrites <- count
	})
	wc.stop = func() int64 {
		sw.Stop()
		_ = pools.Close()
		wg.Wait()
		// The pool status legitimately changes once: the probe Service takes an address.
		return wc.n.Load() + max(<-poolWrites-1, 0)
	}
	return wc, nil
}

type controller struct {
	cmd   *exec.Cmd
	probe int
	log   string
	once  sync.Once
}

func startController(dir, kubeconfig string, port int) (*controller, error) {
	logf, err := os.CreateTemp("", "vipcast-bench-controller-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(dir, "bin", "vipcast-controller"), "--kubeconfig", kubeconfig, "--leader-elect=false",
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port), "--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(port+1))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &controller{cmd: cmd, probe: port + 1, log: logf.Name()}, nil
}

func (c *controller) waitReady(ctx context.Context, limit time.Duration) bool {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", c.probe))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}

// usage returns the controller's CPU seconds (user+system) and peak RSS in MB.
func (c *controller) usage() (cpu, rssMB float64) {
	pid := c.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		cpu = (ut + st) / 100 // USER_HZ
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
				rssMB = kb / 1024
			}
		}
	}
	return cpu, rssMB
}

// waitQuiet waits until the controller uses under quietShare of a core over quietWindow,
// for at most quietLimit, and says how long it waited and whether it was.
func (c *controller) waitQuiet(ctx context.Context) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < quietLimit && ctx.Err() == nil {
		before, _ := c.usage()
		time.Sleep(quietWindow)
		if after, _ := c.usage(); after-before < quietShare*quietWindow.Seconds() {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

const (
	quietWindow = 2 * time.Second
	quietShare  = 0.05
	quietLimit  = 5 * time.Minute
)

// stop stops the controller (once; later calls do nothing).
func (c *controller) stop() {
	c.once.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		_ = c.cmd.Wait()
		_ = os.Remove(c.log)
	})
}
