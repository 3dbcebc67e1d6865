// Package poolset compiles IPAddressPool objects into an immutable snapshot: each pool's
// usable ranges (less the addresses other pools also claim), its eligibility rules, and an
// index from address to pool. The controller allocates from it; the speakers use it to
// find which pool an address belongs to.
package poolset
