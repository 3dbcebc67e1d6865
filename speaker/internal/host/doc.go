// Package host tells which of this node's interfaces the layer-2 speaker can answer ARP and
// NDP on, follows them as they change, and packs them small enough for memberlist node
// metadata so that every speaker knows where the others can announce.
//
// A link is usable when it is up (administratively, and operationally up or unknown), has
// an Ethernet MAC, answers ARP, is neither loopback nor enslaved to a bond or bridge, and
// is not excluded by name. Links and Watch read the kernel over rtnetlink
// (github.com/vishvananda/netlink) in one network namespace; Encode and Decode are plain
// functions over values.
package host
