// Package benchlab is what the lab benchmarks (l2failover, bgpfailover) share: vipcast
// started in a lab with one LoadBalancer Service over a pod per node, and the small helpers
// that poll and print their figures.
package benchlab
