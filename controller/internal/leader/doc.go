// Package leader fences the controller's writes with its leader Lease: a process that lost
// the Lease, or can no longer know that it holds it, writes no allocation.
package leader
