// Command speaker is vipcast's per-node speaker: it joins the other speakers, works out which
// LoadBalancer addresses this node announces, and answers ARP and NDP for them. This file
// only wires things up.
package main

import (
	"flag"
	"os"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/vipcast/vipcast/speaker/internal/app"
	"github.com/vipcast/vipcast/speaker/internal/membership"
)

func main() {
	var o app.Options
	fast := membership.FastTimers()
	flag.StringVar(&o.Node, "node-name", os.Getenv("NODE_NAME"), "the node this speaker runs on (default $NODE_NAME)")
	flag.StringVar(&o.LBClass, "lb-class", "", "loadBalancerClass to announce; empty announces Services without a class")
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":7474", "address of the Prometheus metrics endpoint (0 disables it)")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":7475", "address of /healthz and /readyz")
	flag.StringVar(&o.BindAddr, "memberlist-bind-address", "", "address memberlist listens on (default: the node's InternalIP)")
	flag.IntVar(&o.Port, "memberlist-port", 7946, "memberlist port (UDP and TCP)")
	flag.StringVar(&o.KeyFile, "memberlist-key-file", "", "file holding the gossip encryption key (base64 of 16, 24 or 32 bytes); empty: clear text")
	flag.DurationVar(&o.Timers.ProbeInterval, "memberlist-probe-interval", fast.ProbeInterval, "how often each speaker probes another")
	flag.DurationVar(&o.Timers.ProbeTimeout, "memberlist-probe-timeout", fast.ProbeTimeout, "how long a probe may take")
	flag.IntVar(&o.Timers.SuspicionMult, "memberlist-suspicion-mult", fast.SuspicionMult, "suspicion timeout in probe intervals (times log10 of the members)")
	flag.IntVar(&o.Timers.SuspicionMaxTimeoutMult, "memberlist-suspicion-max-timeout-mult", fast.SuspicionMaxTimeoutMult, "upper bound of the suspicion timeout, in multiples of its minimum")
	flag.DurationVar(&o.Timers.GossipInterval, "memberlist-gossip-interval", fast.GossipInterval, "how often state is gossiped")
	flag.DurationVar(&o.Resync, "resync", 30*time.Second, "apply the plan again this often even when nothing changed (every tenth time, replan every Service)")
	flag.DurationVar(&o.PlanInterval, "plan-interval", 100*time.Millisecond, "after a change of Services, endpoints, nodes or resources, plan at most this often (changes in between are planned together; membership changes are planned at once)")
	flag.StringVar(&o.PprofAddr, "pprof-bind-address", "", "address of the pprof endpoints (/debug/pprof/); empty: off")
	flag.DurationVar(&o.Leave, "leave-timeout", time.Second, "how long a graceful stop waits for its leave message to go out")
	flag.Func("exclude-interfaces", "interfaces never answered on, even when an L2Advertisement lists them: comma-separated names or shell patterns (veth*)", func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				o.ExcludeInterfaces = append(o.ExcludeInterfaces, p)
			}
		}
		return nil
	})
	flag.DurationVar(&o.JoinTimeout, "join-timeout", 10*time.Second, "how long a starting speaker that finds no other speaker waits for one before announcing alone")
	flag.DurationVar(&o.RestartHold, "restart-hold", 10*time.Second, "how long the other speakers keep this node's addresses when its speaker stops for a restart (0, or a cordoned or not-ready node: they take them over at once)")
	flag.DurationVar(&o.Handover, "handover-delay", time.Second, "how long to wait before answering for an address another live speaker held (0: at once)")
	flag.Float64Var(&o.EventsQPS, "events-qps", 20, "Events written per second at most; up to 2,000 wait, more are dropped and counted")
	flag.IntVar(&o.EventsPerPlan, "events-per-plan", 50, "when one plan starts or stops announcing more Services than this, one Event on the Node counts them instead of one Event on each Service (0: one on each, always)")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	cfg, err := ctrl.GetConfig()
	if err != nil {
		ctrl.Log.Error(err, "Loading kubeconfig failed")
		os.Exit(1)
	}
	if err := app.Run(ctrl.SetupSignalHandler(), cfg, o); err != nil {
		ctrl.Log.Error(err, "Speaker failed")
		os.Exit(1)
	}
}
