// Package addrset is the compact encoding of a set of IP addresses that a SpeakerStatus
// carries: a speaker announcing 50,000 addresses writes them in one field of well under
// 512 KiB, where a list of strings passed etcd's 1.5 MiB request limit at about 12,000.
//
// The encoding is a version byte, then the IPv4 addresses, then the IPv6 addresses, each
// family as a count and the sorted addresses as differences: the first address itself, then
// each address minus the one before minus one, all as unsigned varints (LEB128, up to 128
// bits for IPv6). A pool handed out in order costs a byte per address; 50,000 random
// addresses in an IPv6 /64 about 7.2 bytes each. Every set has exactly one encoding, so two
// encodings are equal exactly when their sets are. It is pure: no I/O, no clock.
package addrset
