package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// Config says what lab to build.
type Config struct {
	// Index tells labs on one machine apart (0 to MaxIndex); it picks the namespace prefix
	// "vc<index>-" and the host link. Up first removes whatever a lab with the same index
	// left behind.
	Index int
	// Nodes is how many node namespaces to make (default 3).
	Nodes int
	// Root is the vipcast repository, whose config/ holds the CRDs and RBAC the lab installs
	// (default: found from the working directory upwards).
	Root string
	// BinDir holds etcd, kube-apiserver, kube-controller-manager and kube-proxy (default:
	// Root/bin).
	BinDir string
	// Router is the routing daemon on the router: BIRD (default) or FRR. Router.Use
	// switches it while the lab runs.
	Router RouterKind
	// BareAPI leaves vipcast's CRDs and RBAC out, for a test that installs them (Helm).
	BareAPI bool
	// NoKubeProxy starts no kube-proxy on the nodes: for benchmarks that time vipcast alone
	// at sizes where a kube-proxy per node programming every Service would share the cores.
	// The Services' addresses are then announced but carry no traffic.
	NoKubeProxy bool
	// Log receives one line per step of Up and Down (nil: quiet).
	Log func(format string, args ...any)
}

// Lab is a running lab. Its fields are fixed once Up returns.
type Lab struct {
	cfg    Config
	plan   Plan
	prefix string
	pki    *pki

	// Dir holds certificates, kubeconfigs, etcd's data and every process's log.
	Dir string
	// Kubeconfig reaches the API server from the host as cluster administrator.
	Kubeconfig string
	// NodeKubeconfig reaches the API server from a node namespace, as system:kube-proxy.
	NodeKubeconfig string
	// Rest and Kube are clients of the API server, as administrator.
	Rest *rest.Config
	Kube client.Client

	Nodes  []*Node
	Router *Router
	// ClientNetns is the namespace of the client behind the router; ClientIPv4/6 its addresses.
	ClientNetns            string
	ClientIPv4, ClientIPv6 netip.Addr

	mu    sync.Mutex
	procs map[string]*Process
	pods  map[string]*Pod
	down  sync.Once
}

// Scheme knows the core Kubernetes types and vipcast's.
var Scheme = func() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}()

// StateDir is where the lab with this index keeps its files.
func StateDir(index int) string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("vipcast-lab-%d", index))
}

// Up builds and starts a lab. On any failure it removes what it made. The caller owns the
// lab and must call Down.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Router == "" {
		cfg.Router = BIRD
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Root == "" {
		root, err := RepoRoot()
		if err != nil {
			return nil, err
		}
		cfg.Root = root
	}
	if cfg.BinDir == "" {
		cfg.BinDir = filepath.Join(cfg.Root, "bin")
	}
	l := newLab(cfg)
	if err := l.plan.Validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the lab needs root: it creates network namespaces, links and nftables rules")
	}
	if err := checkBinaries(cfg.BinDir); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := Cleanup(ctx, cfg.Index); err != nil {
		return nil, err
	}
	if err := l.up(ctx); err != nil {
		l.Down(context.WithoutCancel(ctx))
		return nil, err
	}
	cfg.Log("lab %d up in %s: %d nodes, kubeconfig %s", cfg.Index, time.Since(start).Round(time.Millisecond), cfg.Nodes, l.Kubeconfig)
	return l, nil
}

func newLab(cfg Config) *Lab {
	l := &Lab{
		cfg:    cfg,
		plan:   Plan{Index: cfg.Index, Nodes: cfg.Nodes},
		prefix: prefixOf(cfg.Index),
		Dir:    StateDir(cfg.Index),
		procs:  map[string]*Process{},
		pods:   map[string]*Pod{},
	}
	l.Router = &Router{lab: l, Netns: l.ns("router"), ASN: RouterASN}
	l.Router.IPv4, l.Router.IPv6 = l.plan.RouterFabric()
	l.ClientNetns = l.ns("client")
	l.ClientIPv4, l.ClientIPv6 = l.plan.Client()
	for i := 1; i <= cfg.Nodes; i++ {
		n := &Node{lab: l, Index: i, Name: fmt.Sprintf("node-%d", i)}
		n.Netns = l.ns(n.Name)
		n.IPv4, n.IPv6 = l.plan.NodeFabric(i)
		n.PodCIDRv4, n.PodCIDRv6 = l.plan.PodCIDRs(i)
		n.MAC = mac(10 + i)
		l.Nodes = append(l.Nodes, n)
	}
	return l
}

func (l *Lab) up(ctx context.Context) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"network", l.buildNetwork},
		{"router", l.Router.start},
		{"control plane", l.startControlPlane},
		{"nodes", l.startNodes},
	}
	for _, s := range steps {
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("lab %s: %w", s.name, err)
		}
		l.cfg.Log("%s ready in %s", s.name, time.Since(t).Round(time.Millisecond))
	}
	return nil
}

// Down stops every process of the lab and removes its namespaces, links and files. Only the
// first call does anything; later ones (a signal handler racing a deferred call) wait for it.
func (l *Lab) Down(ctx context.Context) { l.down.Do(func() { l.takeDown(ctx) }) }

func (l *Lab) takeDown(ctx context.Context) {
	start := time.Now()
	l.mu.Lock()
	procs := make([]*Process, 0, len(l.procs))
	for _, p := range l.procs {
		procs = append(procs, p)
	}
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	if err := Cleanup(ctx, l.cfg.Index); err != nil {
		l.cfg.Log("%v", err)
	}
	l.cfg.Log("lab %d down in %s", l.cfg.Index, time.Since(start).Round(time.Millisecond))
}

// Process returns a process the lab started, by name ("cp/kube-apiserver",
// "node-1/kube-proxy", ...), or nil.
func (l *Lab) Process(name string) *Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.procs[name]
}

// Logs is the end of every process's log, for a failed test's output.
func (l *Lab) Logs(lines int) string {
	l.mu.Lock()
	names := make([]string, 0, len(l.procs))
	for n := range l.procs {
		names = append(names, n)
	}
	l.mu.Unlock()
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", n, l.Process(n).Log, l.Process(n).Tail(lines))
	}
	return b.String()
}

// Run starts a program in one of the lab's namespaces and tracks it, so Down stops it. Name
// must be unique in the lab ("node-1/speaker").
func (l *Lab) Run(name, netns string, env []string, argv ...string) (*Process, error) {
	return l.start(&Process{Name: name, Netns: netns, Argv: argv, Env: env})
}

// start registers a process under its name, gives it its log file and starts it.
func (l *Lab) start(p *Process) (*Process, error) {
	p.Log = filepath.Join(l.Dir, "logs", strings.ReplaceAll(p.Name, "/", "_")+".log")
	l.mu.Lock()
	if old := l.procs[p.Name]; old != nil && old.Running() {
		l.mu.Unlock()
		return nil, fmt.Errorf("a process named %s already runs", p.Name)
	}
	l.procs[p.Name] = p
	l.mu.Unlock()
	return p, p.Start()
}

// ControlPlaneNetns is the namespace of etcd, the API server and the controller.
func (l *Lab) ControlPlaneNetns() string { return l.ns("cp") }

// Bin is the path of a program in the lab's bin directory.
func (l *Lab) Bin(name string) string { return filepath.Join(l.cfg.BinDir, name) }

func checkBinaries(dir string) error {
	var missing []string
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing in %s: %s (make tools-lab builds them)", dir, strings.Join(missing, ", "))
	}
	return nil
}

// RepoRoot finds the vipcast repository from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/vipcast/vipcast\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the vipcast repository (no go.mod of github.com/vipcast/vipcast above the working directory)")
		}
		dir = parent
	}
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// DownOnSignal takes the lab down and exits (code 130) when the process gets SIGINT or
// SIGTERM, for programs such as test binaries that would otherwise die without running
// their deferred Down. The returned function stops watching.
func (l *Lab) DownOnSignal() (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sig:
			l.cfg.Log("%s: taking lab %d down", s, l.cfg.Index)
			l.Down(context.Background())
			os.Exit(130)
		case <-done:
		}
	}()
	return func() { signal.Stop(sig); close(done) }
}
