// Package metrics defines the controller's Prometheus metrics (prefix vipcast_), registered
// with controller-runtime's registry so they are served beside its own.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// PoolAddresses is the number of addresses a pool can hand out, per family.
	PoolAddresses = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vipcast_pool_addresses_total", Help: "Addresses a pool can hand out (saturated at 2^63-1).",
	}, []string{"pool", "family"})
	// PoolAddressesInUse is the number of a pool's addresses held by Services, per family.
	PoolAddressesInUse = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "vipcast_pool_addresses_in_use", Help: "Addresses of a pool held by Services.",
	}, []string{"pool", "family"})
	// Allocations counts Services that got addresses, per pool.
	Allocations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vipcast_allocations_total", Help: "Services given addresses, per pool.",
	}, []string{"pool"})
	// AllocationFailures counts failed allocations, per reason.
	AllocationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vipcast_allocation_failures_total", Help: "Allocations that failed, per reason.",
	}, []string{"reason"})
	// EventsDropped counts Events not written because the queue was full.
	EventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vipcast_events_dropped_total", Help: "Events dropped because too many were waiting to be written.",
	})
	// ServicesUnannounced is the number of Services with an address whose Announced
	// condition is False (only the leader counts them).
	ServicesUnannounced = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vipcast_services_unannounced", Help: "LoadBalancer Services with an address that no node announces (Announced=False).",
	})
	// Leading is 1 from the moment this process takes the leader Lease until it loses it.
	Leading = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "vipcast_controller_leading", Help: "1 while this controller holds the leader Lease (taken and not lost).",
	})
	// FencedWrites counts writes refused because the leader Lease was not (or no longer) held.
	FencedWrites = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vipcast_controller_fenced_writes_total", Help: "Writes refused because this controller did not hold a fresh leader Lease.",
	})
	// StatusConflicts counts Service status writes refused because the Service had changed.
	StatusConflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vipcast_service_status_conflicts_total", Help: "Service status writes retried because the Service had changed since it was read.",
	})
	// ReconcileSeconds is the latency of one reconcile, per controller.
	ReconcileSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vipcast_reconcile_duration_seconds", Help: "Time one reconcile takes.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"controller"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(PoolAddresses, PoolAddressesInUse, Allocations, AllocationFailures, ReconcileSeconds, EventsDropped, ServicesUnannounced, Leading, FencedWrites, StatusConflicts)
}
