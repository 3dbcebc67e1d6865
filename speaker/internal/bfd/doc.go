// Package bfd runs single-hop asynchronous BFD sessions (RFC 5880, RFC 5881) next to the
// speaker's BGP sessions: no echo, no demand mode, no authentication. It only tells the
// state of each session; what a session going down does to BGP is the caller's choice.
//
// vipcast does not use GoBGP's BFD: GoBGP v4.8.0 keeps the first remote discriminator it
// hears and ignores a peer that replaces its session (FRR's bfdd does so when the BGP
// session comes up), and it resets BGP when a session that never came Up times out.
package bfd
