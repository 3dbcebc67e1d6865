// Package iprange parses and does arithmetic on the address entries of an IPAddressPool:
// CIDRs and inclusive ranges of IPv4 or IPv6 addresses. It is pure: no I/O, no clock.
package iprange
