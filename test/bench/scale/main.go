// Command scale measures vipcast at scale in the lab (test/lab) and prints figures; it never
// asserts them. The nodes run no kube-proxy (lab.Config.NoKubeProxy): the addresses are
// announced but carry no traffic, so that a kube-proxy per node programming every Service
// does not share the two cores with what is measured. Parts (-parts):
//
//   - creation: N Services created one by one by a single client, 3 speakers, over L2 and
//     over BGP (FRR): the speakers' and the controller's CPU seconds from the first create
//     until every Service is announced, and that time. L2 "announced" is the address's first
//     claim on the wire, seen from the router's fabric port (the owner's gratuitous ARP, or
//     its answer to the router's ARP request); BGP "announced" is FRR holding all N prefixes
//     from every node.
//   - steady: M Services, 3 speakers, L2 and BGP: 20 times one more Service, from the create
//     call until its address is claimed on the wire (L2) or its prefix is in FRR's RIB (BGP),
//     p50 and p95; one speaker's CPU over an idle window; the peak RSS of every speaker and of
//     the controller; the size of the largest SpeakerStatus as the API server returns it.
//   - many: K speakers and S Services over L2: after one node's power is cut, the time until
//     each of a sample of its addresses is claimed by another node's MAC (p50), and until
//     every other speaker's SpeakerStatus has dropped it from its members; the API requests
//     per second in steady state; and for comparison the same fail-over with 3 nodes and one
//     Service.
//
// The controller alone at 50,000 Services is `go run ./test/bench -services 50000`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vipcast/vipcast/test/lab"
)

// config is what the flags say.
type config struct {
	parts, modes []string
	index        int
	root         string

	creationServices int
	steadyServices   int
	samples          int
	idle             time.Duration
	speakers         int
	manyServices     int
	sample           int
	compareCuts      int
	cuts             int
	speakerArgs      []string
	apiWindow        time.Duration
	workers          int
	timeout          time.Duration
	verbose          bool
}

const (
	modeL2  = "L2"
	modeBGP = "BGP"
)

func main() {
	lab.ServeChild()
	// The clients' warnings are not figures.
	ctrllog.SetLogger(logr.Discard())
	var c config
	parts := flag.String("parts", "creation,steady,many", "parts to run, comma-separated: creation, steady, many")
	modes := flag.String("modes", "l2,bgp", "announcement modes of the creation and steady parts, comma-separated: l2, bgp")
	flag.IntVar(&c.index, "index", 7, "lab index (the labs of the tests and of the other benchmarks use 0 to 6; the wire tests use 8's names)")
	flag.IntVar(&c.creationServices, "creation-services", 10000, "creation: Services created one by one (N)")
	flag.IntVar(&c.steadyServices, "steady-services", 50000, "steady: Services in place (M)")
	flag.IntVar(&c.samples, "samples", 20, "steady: Services added one at a time and timed")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "steady: the idle window over which one speaker's CPU is measured")
	flag.IntVar(&c.speakers, "speakers", 30, fmt.Sprintf("many: nodes, each with a speaker (K, at most %d)", lab.MaxNodes))
	flag.IntVar(&c.manyServices, "many-services", 20000, "many: Services announced over L2 (S)")
	flag.IntVar(&c.sample, "sample", 50, "many: addresses of the powered-off node timed")
	flag.IntVar(&c.cuts, "cuts", 3, "many: power cuts among the K nodes, each of another node (it comes back before the next)")
	speakerArgs := flag.String("speaker-args", "", "extra flags for every speaker, space-separated (--pprof-bind-address=127.0.0.1:6060, --zap-log-level=debug)")
	flag.IntVar(&c.compareCuts, "compare-cuts", 5, "many: power cuts of the owner in the comparison lab (3 nodes, one Service)")
	flag.DurationVar(&c.apiWindow, "api-window", 60*time.Second, "many: the steady-state window over which API requests are counted")
	flag.IntVar(&c.workers, "workers", 16, "goroutines creating the Services of the steady and many parts (set-up, not timed)")
	flag.DurationVar(&c.timeout, "timeout", time.Hour, "bound of every wait (set-up and measurement)")
	flag.BoolVar(&c.verbose, "v", false, "log the lab's steps too")
	flag.Parse()
	c.parts = splitList(*parts)
	c.modes = splitList(strings.ToUpper(*modes))
	c.speakerArgs = strings.Fields(*speakerArgs)
	if err := c.check(); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go downOnSignal(cancel, c.index)
	sum, err := run(ctx, &c)
	sum.print(os.Stdout, &c)
	switch {
	case ctx.Err() != nil:
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// maxServices is the most Services a lab of this benchmark holds: its cluster-IP ranges
// (clusterIPRanges and the lab's own /20, less the kubernetes Service) and its pool are both
// larger.
const maxServices = 53000

func (c *config) check() error {
	for _, p := range c.parts {
		if !slices.Contains([]string{"creation", "steady", "many"}, p) {
			return fmt.Errorf("unknown part %q (creation, steady, many)", p)
		}
	}
	for _, m := range c.modes {
		if m != modeL2 && m != modeBGP {
			return fmt.Errorf("unknown mode %q (l2, bgp)", m)
		}
	}
	if err := c.checkNumbers(); err != nil {
		return err
	}
	root, err := lab.RepoRoot()
	if err != nil {
		return err
	}
	c.root = root
	for _, b := range []string{"vipcast-controller", "vipcast-speaker"} {
		if _, err := os.Stat(binPath(root, b)); err != nil {
			return fmt.Errorf("%s missing (make build)", binPath(root, b))
		}
	}
	return nil
}

func (c *config) checkNumbers() error {
	if c.index < 0 || c.index > lab.MaxIndex {
		return fmt.Errorf("lab index %d: 0 to %d", c.index, lab.MaxIndex)
	}
	if c.speakers < 2 || c.speakers > lab.MaxNodes {
		return fmt.Errorf("-speakers %d: 2 to %d", c.speakers, lab.MaxNodes)
	}
	for _, n := range []int{c.creationServices, c.steadyServices + c.samples, c.manyServices} {
		if n < 1 || n > maxServices {
			return fmt.Errorf("%d Services: this benchmark's lab holds 1 to %d", n, maxServices)
		}
	}
	if c.samples < 1 || c.sample < 1 || c.compareCuts < 1 || c.workers < 1 || c.cuts < 1 || c.cuts >= c.speakers {
		return fmt.Errorf("-samples, -sample, -compare-cuts, -workers and -cuts must be positive, -cuts below -speakers")
	}
	return nil
}

func (c *config) has(part string) bool { return slices.Contains(c.parts, part) }

func run(ctx context.Context, c *config) (*summary, error) {
	sum := &summary{}
	start := time.Now()
	defer func() { logf("done in %s", time.Since(start).Round(time.Second)) }()
	if c.has("creation") {
		for _, m := range c.modes {
			if err := creation(ctx, c, m, sum); err != nil {
				return sum, fmt.Errorf("creation, %s: %w", m, err)
			}
		}
	}
	if c.has("steady") {
		for _, m := range c.modes {
			if err := steady(ctx, c, m, sum); err != nil {
				return sum, fmt.Errorf("steady, %s: %w", m, err)
			}
		}
	}
	if c.has("many") {
		if err := many(ctx, c, sum); err != nil {
			return sum, fmt.Errorf("many: %w", err)
		}
	}
	return sum, nil
}

// logf prints a progress line on stderr with the time of day; the figures go to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// current is the lab up now, for the signal handler.
var current struct {
	sync.Mutex
	lab *lab.Lab
}

func track(l *lab.Lab) {
	current.Lock()
	current.lab = l
	current.Unlock()
}

// downOnSignal cancels the run on SIGINT or SIGTERM, so that it unwinds and takes its lab
// down; on a second signal, or when unwinding takes longer than unwindTimeout, it takes the
// lab down itself (or removes whatever a lab with this index left, when none is up yet) and
// exits.
func downOnSignal(cancel context.CancelFunc, index int) {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	s := <-sig
	logf("%s: stopping; the lab goes down", s)
	cancel()
	select {
	case <-sig:
	case <-time.After(unwindTimeout):
	}
	current.Lock()
	l := current.lab
	current.Unlock()
	if l != nil {
		l.Down(context.Background())
	} else if err := lab.Cleanup(context.Background(), index); err != nil {
		logf("%v", err)
	}
	os.Exit(130)
}

// unwindTimeout bounds the unwinding after a signal.
const unwindTimeout = 60 * time.Second
