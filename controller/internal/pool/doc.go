// Package pool reconciles IPAddressPools: it feeds their specs to the allocator, writes
// their status (counts, Ready, Conflicting, InUse) and holds a finalizer on a pool while
// Services still hold its addresses.
package pool
