// Package layer2 answers ARP requests (IPv4) and NDP neighbour solicitations (IPv6) for the
// addresses this node owns, on the interfaces it is told, with the interface's MAC; and on
// taking an address over it sends a burst of gratuitous ARP / unsolicited neighbour
// advertisements so that neighbours move their caches to this node at once.
//
// The decisions (answer this packet? with what?) are plain functions over parsed packets;
// the sockets come from github.com/mdlayher/arp (AF_PACKET) and github.com/mdlayher/ndp
// (ICMPv6).
package layer2
