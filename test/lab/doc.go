// Package lab builds a real Kubernetes cluster out of Linux network namespaces on one
// machine, as root: a fabric bridge, N node namespaces, a router running BIRD with a client
// network behind it, and a control-plane namespace running etcd, kube-apiserver and
// kube-controller-manager from bin/. Every node runs the real kube-proxy in nftables mode
// (unless Config.NoKubeProxy); the lab plays kubelet for small HTTP "pods" in namespaces of
// their own.
//
// Everything the lab starts runs inside a namespace it created, so Down (or Cleanup after a
// crash) removes every process, link and namespace by name. It is the ground for `make
// demo`, the end-to-end tests and the failover benchmarks.
package lab
