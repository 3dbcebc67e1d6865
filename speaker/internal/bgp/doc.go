// Package bgp announces LoadBalancer addresses over BGP with one embedded GoBGP v4 server:
// sessions to the routers a node peers with (MD5, multihop, BFD, graceful restart) and one
// path per announced prefix, each sent only to the peers it is meant for. It is the only
// package that imports GoBGP; Apply takes the whole desired state and changes only the
// difference, so a Service change never restarts a session.
package bgp
