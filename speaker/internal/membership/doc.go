// Package membership tells which speakers are alive: it joins the speakers of the other
// nodes in a hashicorp/memberlist cluster (gossip encrypted with a shared key) with failure
// detection tuned for a LAN where a second matters, and reports the live node names and
// every change to them.
package membership
