// Package ipam holds the controller's allocation state between reconciles: one allocator
// behind a mutex, loaded from Service status before first use, plus the plumbing that
// wakes waiting Services and marks pools whose counts changed.
package ipam
