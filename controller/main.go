// Command controller is vipcast's controller: it gives LoadBalancer Services addresses from
// IPAddressPools and writes them into Service status. This file only wires things up.
package main

import (
	"flag"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/vipcast/vipcast/controller/internal/app"
)

func main() {
	var o app.Options
	flag.StringVar(&o.LBClass, "lb-class", "", "loadBalancerClass to handle; empty handles Services without a class")
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":7472", "address of the Prometheus metrics endpoint (0 disables it)")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":7473", "address of /healthz and /readyz")
	flag.BoolVar(&o.LeaderElect, "leader-elect", true, "elect one active replica through a Lease")
	flag.StringVar(&o.LeaderNamespace, "leader-election-namespace", envOr("POD_NAMESPACE", "kube-system"), "namespace of the leader Lease")
	flag.StringVar(&o.LeaderElectionID, "leader-election-id", "vipcast-controller", "name of the leader Lease")
	flag.DurationVar(&o.LeaseDuration, "lease-duration", 15*time.Second, "how long a leader's Lease lasts without renewal")
	flag.DurationVar(&o.RenewDeadline, "renew-deadline", 10*time.Second, "how long the leader tries to renew before it gives up")
	flag.DurationVar(&o.RetryPeriod, "retry-period", 2*time.Second, "how often candidates try to take the Lease")
	flag.IntVar(&o.Workers, "workers", 32, "Services reconciled at once")
	flag.Float64Var(&o.QPS, "kube-api-qps", 1000, "requests per second to the API server")
	flag.IntVar(&o.Burst, "kube-api-burst", 2000, "burst of requests to the API server")
	flag.StringVar(&o.PprofAddr, "pprof-bind-address", "", "address of the pprof endpoints (/debug/pprof/); empty: off")
	flag.Float64Var(&o.EventsQPS, "events-qps", 100, "Events written per second at most; up to 2,000 wait, more are dropped and counted")
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
		ctrl.Log.Error(err, "Controller failed")
		os.Exit(1)
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
