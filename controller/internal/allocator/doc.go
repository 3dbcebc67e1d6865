// Package allocator decides which addresses each LoadBalancer Service holds. It is a pure
// data structure over a poolset.Snapshot: no client, no clock, no network. Every used
// address sits in a B-tree of used spans, so finding a free address is O(log n) whatever
// the pool size, and allocation never scans all Services.
package allocator
