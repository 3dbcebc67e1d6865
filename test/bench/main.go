// Command bench measures the controller on a real control plane: a backlog of N
// LoadBalancer Services is created first, then the controller binary starts; it prints the
// time until every Service has an EXTERNAL-IP, until every Service's IPAllocated condition is
// True and until every Service also has its Announced condition (settled), the controller's
// CPU seconds and peak RSS, then restarts the controller over the same objects and prints its
// time to ready and the number of objects it wrote. SIGINT or SIGTERM stops the controller
// and the control plane before it exits.
//
// With -lb vipcast,metallb MetalLB v0.16.1's controller (bin/metallb-controller) runs the
// same backlog on a fresh control plane after vipcast's and the two are printed side by
// side. MetalLB writes no conditions: its figures are the time to every EXTERNAL-IP, its CPU
// and peak RSS, and what its restart writes.
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

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
	"github.com/vipcast/vipcast/test/localcp"
)

func main() {
	// The clients' warnings are not figures.
	ctrllog.SetLogger(logr.Discard())
	n := flag.Int("services", 10000, "LoadBalancer Services in the backlog")
	workers := flag.Int("workers", 32, "goroutines creating Services")
	lbs := flag.String("lb", "vipcast", "whose controller to measure, one after the other on a fresh control plane each: vipcast, metallb (v0.16.1 from bin/)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	got := map[string]time.Duration{}
	for _, lb := range strings.Split(*lbs, ",") {
		if lb != "vipcast" && lb != "metallb" {
			err = fmt.Errorf("-lb %q: vipcast or metallb", lb)
			break
		}
		if got[lb], err = run(ctx, lb == "metallb", *n, *workers); err != nil {
			err = fmt.Errorf("%s: %w", lb, err)
			break
		}
	}
	if v, m := got["vipcast"], got["metallb"]; err == nil && v > 0 && m > 0 {
		fmt.Printf("side by side: %d Services, every EXTERNAL-IP: vipcast %.2fs, MetalLB %.2fs, MetalLB/vipcast %.1f×\n",
			*n, v.Seconds(), m.Seconds(), m.Seconds()/v.Seconds())
	}
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

// run measures one controller (vipcast's or MetalLB's) on a fresh control plane and returns
// the time until every Service had an EXTERNAL-IP.
func run(ctx context.Context, metallb bool, n, workers int) (time.Duration, error) {
	dir := root()
	cp, err := localcp.StartWith(dir, "198.18.0.0/16")
	if err != nil {
		return 0, err
	}
	defer cp.Stop()
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	who := "vipcast"
	if metallb {
		who = "MetalLB v0.16.1"
		err = setupMetalLB(ctx, cs, dir, cp.Kubeconfig)
	} else {
		err = applyPool(ctx, dir, cp.Kubeconfig)
	}
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := createServices(ctx, cs, n, workers); err != nil {
		return 0, err
	}
	fmt.Printf("%s: services=%d created in %.1fs (backlog before the controller starts)\n", who, n, time.Since(start).Seconds())

	took, err := firstRun(ctx, cs, dir, cp.Kubeconfig, n, metallb)
	if err != nil {
		return 0, err
	}
	return took, restart(ctx, cs, dir, cp.Kubeconfig, metallb)
}

// setupMetalLB installs MetalLB's CRDs from its module, its namespace, the Pod object its
// controller reads, and a pool of the same addresses as vipcast's.
func setupMetalLB(ctx context.Context, cs kubernetes.Interface, dir, kubeconfig string) error {
	crds, err := lab.MetalLBCRDs(ctx)
	if err != nil {
		return err
	}
	if err := kubectl(ctx, dir, kubeconfig, "", "apply", "--server-side", "-f", crds); err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: lab.MetalLBNamespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: lab.MetalLBNamespace, Name: "controller"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "controller", Image: "quay.io/metallb/placeholder:v0.16.1"}}}}
	if _, err := cs.CoreV1().Pods(lab.MetalLBNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return err
	}
	return kubectl(ctx, dir, kubeconfig, `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench, namespace: metallb-system}
spec: {addresses: ["198.19.0.0/16"]}
`, "apply", "-f", "-")
}

// kubectl runs bin/kubectl, with stdin when it is not empty.
func kubectl(ctx context.Context, dir, kubeconfig, stdin string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "bin", "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// firstRun starts the controller over the backlog and times it until every Service is
// settled (MetalLB: has its address), then stops it. It returns the time until every
// Service had an address.
func firstRun(ctx context.Context, cs kubernetes.Interface, dir, kubeconfig string, n int, metallb bool) (time.Duration, error) {
	c, err := startController(dir, kubeconfig, 17472, metallb)
	if err != nil {
		return 0, err
	}
	defer c.stop()
	t0 := time.Now()
	if err := waitAllAllocated(ctx, cs, "", n, waitLimit); err != nil {
		return 0, err
	}
	elapsed := time.Since(t0)
	cpu, rss := c.usage()
	fmt.Printf("allocate: services=%d all-have-external-ip=%.2fs rate=%.0f/s controller-cpu=%.2fs peak-rss=%.1fMB\n",
		n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), cpu, rss)
	if metallb {
		// Its writes after the addresses (pool status) are done before the restart counts.
		after, quiet := c.waitQuiet(ctx)
		fmt.Printf("settled: quiet=%v after %.0fs more\n", quiet, after.Seconds())
		return elapsed, nil
	}
	if err := waitAllAllocatedTrue(ctx, cs, n, waitLimit); err != nil {
		return 0, err
	}
	allocated := time.Since(t0)
	if err := waitAllSettled(ctx, cs, n, waitLimit); err != nil {
		return 0, err
	}
	cpu, rss = c.usage()
	fmt.Printf("settled: condition %s True on every Service after %.2fs, %s on every Service too after %.2fs (controller-cpu=%.2fs peak-rss=%.1fMB)\n",
		v1alpha1.ConditionIPAllocated, allocated.Seconds(), v1alpha1.ConditionAnnounced, time.Since(t0).Seconds(), cpu, rss)
	time.Sleep(2 * time.Second) // let the last pool status flush land
	return elapsed, nil
}

// restart starts the controller again over the unchanged objects and counts what it writes
// until it has served a new Service and gone quiet.
func restart(ctx context.Context, cs kubernetes.Interface, dir, kubeconfig string, metallb bool) error {
	pools := "/apis/vipcast.io/v1alpha1/ipaddresspools"
	if metallb {
		pools = "/apis/metallb.io/v1beta1/ipaddresspools"
	}
	writes, err := countWrites(ctx, cs, pools)
	if err != nil {
		return err
	}
	t1 := time.Now()
	c, err := startController(dir, kubeconfig, 17482, metallb)
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
	return kubectl(ctx, dir, kubeconfig, `apiVersion: vipcast.io/v1alpha1
kind: IPAddressPool
metadata: {name: bench}
spec: {addresses: ["198.19.0.0/16"]}
`, "apply", "-f", "-")
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
func countWrites(ctx context.Context, cs kubernetes.Interface, poolsPath string) (*writeCounter, error) {
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
	pools, err := cs.CoreV1().RESTClient().Get().AbsPath(poolsPath).Param("watch", "true").Stream(ctx)
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

// startController starts vipcast's controller, or MetalLB's (metallb) as its manifests run
// it (without its webhooks), metrics on port and health probes on port+1.
func startController(dir, kubeconfig string, port int, metallb bool) (*controller, error) {
	logf, err := os.CreateTemp("", "vipcast-bench-controller-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(dir, "bin", "vipcast-controller"), "--kubeconfig", kubeconfig, "--leader-elect=false",
		"--metrics-bind-address=127.0.0.1:"+strconv.Itoa(port), "--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(port+1))
	if metallb {
		cmd = exec.Command(filepath.Join(dir, "bin", "metallb-controller"), "--namespace="+lab.MetalLBNamespace, "--pod-name=controller",
			"--webhook-mode=disabled", "--disable-cert-rotation", "--log-level=info", "--port="+strconv.Itoa(port), "--health-probe-port="+strconv.Itoa(port+1))
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	}
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
