package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/bench/internal/benchlab"
	"github.com/vipcast/vipcast/test/lab"
)

// The address plan of this benchmark's labs, inside 198.18.0.0/15 around what the lab itself
// uses (198.18.0.0/24 host links, 198.18.56.0/24 uplinks, 198.18.240.0/20 cluster IPs,
// 198.19.1-50.0/24 pods).
var (
	// poolRanges hold 59,136 addresses.
	poolRanges = []v1alpha1.AddressRange{"198.18.8.0-198.18.55.255", "198.18.57.0-198.18.239.255"}
	// poolWithin covers them, for the ARP watch (nothing else in it is claimed on the fabric).
	poolWithin = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}
	// clusterIPRanges are extra ServiceCIDRs: with the lab's /20, 53,247 cluster IPs.
	clusterIPRanges = []string{"198.19.128.0/17", "198.19.64.0/18"}
)

const (
	poolName = "scale"
	// namespace holds every Service of the benchmark.
	namespace = "default"
	// routerDev is the router's fabric interface, where the ARP watch runs.
	routerDev = "eth0"
	// arpEvery and arpPerTick pace the watch's questions: each address asked for is asked
	// again every arpEvery while at most arpPerTick are waiting, and the questions never
	// exceed arpPerTick/arpEvery (1,000 a second).
	arpEvery   = 10 * time.Millisecond
	arpPerTick = 10
	// listPage is the page size of the Service lists.
	listPage = 2000
)

// env is one lab with vipcast running and one way to announce the pool.
type env struct {
	cfg  *config
	mode string
	lab  *lab.Lab
	// fast is a client without client-side rate limit (the lab's own is limited to 200/s).
	fast client.Client
	cs   kubernetes.Interface
	// arp watches the fabric from the router (L2 only).
	arp *lab.ARPWatch
}

func binPath(root, name string) string { return filepath.Join(root, "bin", name) }

// up builds a lab of n nodes without kube-proxy (the router runs FRR for BGP), starts the
// controller and a speaker per node, creates the pool and the advertisement (and for BGP the
// BGPPeer), and waits until every speaker is Ready and sees all the others (and for BGP has
// its session Established).
func up(ctx context.Context, cfg *config, nodes int, mode string) (*env, error) {
	return upWith(ctx, cfg, nodes, mode, true)
}

// upWith is up, with the speakers started (and waited for) only when speakers is true;
// startSpeakers starts them later.
func upWith(ctx context.Context, cfg *config, nodes int, mode string, speakers bool) (*env, error) {
	router := lab.BIRD
	if mode == modeBGP {
		router = lab.FRR
	}
	lc := lab.Config{Index: cfg.index, Nodes: nodes, Router: router, NoKubeProxy: true, Root: cfg.root}
	if cfg.verbose {
		lc.Log = logf
	}
	t := time.Now()
	l, err := lab.Up(ctx, lc)
	if err != nil {
		return nil, err
	}
	track(l)
	e := &env{cfg: cfg, mode: mode, lab: l}
	if err := e.start(ctx, speakers); err != nil {
		e.down(err)
		return nil, err
	}
	logf("lab %d up with %d nodes (%s, router %s) in %s", cfg.index, nodes, mode, router, time.Since(t).Round(time.Second))
	return e, nil
}

func (e *env) start(ctx context.Context, speakers bool) error {
	rc := rest.CopyConfig(e.lab.Rest)
	rc.QPS = -1 // no client-side limit
	var err error
	if e.fast, err = client.New(rc, client.Options{Scheme: lab.Scheme}); err != nil {
		return err
	}
	if e.cs, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	for _, o := range e.objects() {
		if err := e.lab.Kube.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %s: %w", o.GetName(), err)
		}
	}
	if e.mode == modeL2 {
		if e.arp, err = lab.StartARPWatch(e.lab.Router.Netns, routerDev, poolWithin, arpEvery, arpPerTick); err != nil {
			return err
		}
	}
	if _, err := e.lab.StartController("controller", binPath(e.cfg.root, "vipcast-controller")); err != nil {
		return err
	}
	if !speakers {
		return nil
	}
	return e.startSpeakers(ctx)
}

// startSpeakers starts a speaker on every node and waits until they have settled.
func (e *env) startSpeakers(ctx context.Context) error {
	// Times to the nanosecond: the many part reads when each speaker saw a member die.
	args := append([]string{"--zap-time-encoding=rfc3339nano"}, e.cfg.speakerArgs...)
	if err := e.lab.StartSpeakers(binPath(e.cfg.root, "vipcast-speaker"), args...); err != nil {
		return err
	}
	return e.settle(ctx, "", nil)
}

// objects are the ServiceCIDRs, the pool and how it is announced.
func (e *env) objects() []client.Object {
	var objs []client.Object
	for i, cidr := range clusterIPRanges {
		objs = append(objs, &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("scale-%d", i)},
			Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{cidr}}})
	}
	objs = append(objs, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: poolName},
		Spec: v1alpha1.IPAddressPoolSpec{Addresses: poolRanges}})
	if e.mode == modeL2 {
		return append(objs, &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: poolName},
			Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{poolName}}})
	}
	return append(objs,
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: poolName}, Spec: v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{poolName}}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: v1alpha1.BGPPeerSpec{
			MyASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: e.lab.Router.IPv4.String(),
			ConnectTime: &metav1.Duration{Duration: time.Second}}})
}

// down takes the lab down; with a failure it prints the end of every process's log first.
func (e *env) down(failure error) {
	if failure != nil && !errors.Is(failure, context.Canceled) {
		fmt.Println(e.lab.Logs(20))
	}
	if e.arp != nil {
		e.arp.Stop()
	}
	e.lab.Down(context.Background())
	track(nil)
}

// settle waits until every running speaker's SpeakerStatus is Ready and lists exactly the
// running nodes as members (and, for BGP, its session Established). A node named in stale
// must also have written its status since it had that resourceVersion (a restarted
// speaker's first report).
func (e *env) settle(ctx context.Context, off string, stale map[string]string) error {
	var want []string
	for _, n := range e.lab.Nodes {
		if n.Name != off {
			want = append(want, n.Name)
		}
	}
	slices.Sort(want)
	return benchlab.Poll(ctx, e.cfg.timeout, func(ctx context.Context) error {
		for _, name := range want {
			var st v1alpha1.SpeakerStatus
			if err := e.lab.Kube.Get(ctx, client.ObjectKey{Name: name}, &st); err != nil {
				return err
			}
			if err := e.settled(&st, want, stale); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *env) settled(st *v1alpha1.SpeakerStatus, want []string, stale map[string]string) error {
	switch {
	case !meta.IsStatusConditionTrue(st.Status.Conditions, "Ready"):
		return fmt.Errorf("%s is not Ready", st.Name)
	case !slices.Equal(slices.Sorted(slices.Values(st.Status.Members)), want):
		return fmt.Errorf("%s sees %d members, want %d", st.Name, len(st.Status.Members), len(want))
	case stale[st.Name] != "" && stale[st.Name] == st.ResourceVersion:
		return fmt.Errorf("%s has not reported since its restart", st.Name)
	case e.mode == modeBGP && (len(st.Status.Sessions) != 1 || st.Status.Sessions[0].State != "Established"):
		return fmt.Errorf("%s: sessions %+v", st.Name, st.Status.Sessions)
	}
	return nil
}

// service is the i-th Service of a batch: no selector (no endpoints are needed to be
// announced), no node ports (tens of thousands would not fit in the node-port range).
func service(name string) *corev1.Service {
	no := false
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: &no,
		Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
}

// bulkName names the Services created in bulk; they sort in creation order.
func bulkName(i int) string { return fmt.Sprintf("s%05d", i) }

// createSequential creates Services bulkName(0..n-1) one after the other, each call waiting
// for nothing but its answer, and returns when the first call started.
func (e *env) createSequential(ctx context.Context, n int) (time.Time, error) {
	start := time.Now()
	for i := range n {
		if err := e.fast.Create(ctx, service(bulkName(i))); err != nil {
			return start, fmt.Errorf("creating Service %d: %w", i, err)
		}
	}
	return start, nil
}

// createParallel creates Services bulkName(0..n-1) from cfg.workers goroutines.
func (e *env) createParallel(ctx context.Context, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, e.cfg.workers)
	for w := range e.cfg.workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				if err := createRetrying(ctx, e.fast, service(bulkName(i))); err != nil {
					errs[w] = fmt.Errorf("creating Service %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// createRetrying creates obj, again after an answer that leaves it unknown whether it was
// created (the API server timed out, was overloaded or reset the stream, as a starved lab's
// does): set-up is not measured, so it must not end a long run. AlreadyExists after such an
// answer is success; a refusal (invalid, forbidden) is not retried.
func createRetrying(ctx context.Context, c client.Client, obj client.Object) error {
	retried := false
	for attempt := 0; ; attempt++ {
		err := c.Create(ctx, obj)
		switch {
		case err == nil, retried && apierrors.IsAlreadyExists(err):
			return nil
		case attempt < 10 && ctx.Err() == nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err):
			retried = true
			obj.SetResourceVersion("")
			if err := sleep(ctx, time.Duration(attempt+1)*time.Second); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// waitAssigned waits until the pool's status counts n addresses handed out (one small
// object to read instead of every Service).
func (e *env) waitAssigned(ctx context.Context, n int) error {
	return benchlab.Poll(ctx, e.cfg.timeout, func(ctx context.Context) error {
		var p v1alpha1.IPAddressPool
		if err := e.lab.Kube.Get(ctx, client.ObjectKey{Name: poolName}, &p); err != nil {
			return err
		}
		if got := int(p.Status.AssignedIPv4); got < n {
			return fmt.Errorf("%d of %d addresses assigned", got, n)
		}
		return nil
	})
}

// addresses lists, page by page, the IPv4 address of every Service that has one.
func (e *env) addresses(ctx context.Context) (map[string]netip.Addr, error) {
	out := map[string]netip.Addr{}
	var list corev1.ServiceList
	for cont := ""; ; cont = list.Continue {
		if err := e.fast.List(ctx, &list, client.InNamespace(namespace), client.Limit(listPage), client.Continue(cont)); err != nil {
			return nil, err
		}
		for _, s := range list.Items {
			for _, in := range s.Status.LoadBalancer.Ingress {
				if a, err := netip.ParseAddr(in.IP); err == nil && a.Is4() {
					out[s.Name] = a
				}
			}
		}
		if list.Continue == "" {
			return out, nil
		}
	}
}

// addressOf polls one Service every pollFast until it has an address.
func (e *env) addressOf(ctx context.Context, name string) (netip.Addr, error) {
	var addr netip.Addr
	err := benchlab.PollEvery(ctx, pollFast, e.cfg.timeout, func(ctx context.Context) error {
		var s corev1.Service
		if err := e.fast.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
			return err
		}
		for _, in := range s.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil && a.Is4() {
				addr = a
				return nil
			}
		}
		return errors.New("no address yet")
	})
	return addr, err
}
