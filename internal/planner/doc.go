// Package planner decides who announces what: for every LoadBalancer address with a matching
// L2Advertisement, which live, eligible node answers ARP/NDP for it. It is a pure function
// of plain values (Services with their addresses, nodes, advertisements, live members), so
// every speaker computes the same answer without talking to the others, and the controller
// can explain why an address is not announced.
//
// The winner among the eligible nodes is chosen by rendezvous hashing of (node, address):
// addresses spread evenly, and a node joining or leaving moves only the addresses it wins
// or loses. An address shared by several Services has one owner for all of them.
package planner
