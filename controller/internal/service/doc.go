// Package service reconciles LoadBalancer Services: it turns each into an allocation
// request, asks the IPAM for addresses and writes status.loadBalancer, the IPAllocated
// condition and Events.
package service
