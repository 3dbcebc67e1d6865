package inspect

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/vipcast/vipcast/internal/planner"
)

// Move is one address whose layer-2 owner would change.
type Move struct {
	Address  string   `json:"address"`
	Services []string `json:"services"`
	From     string   `json:"from"`
	// To is the new owner ("" when nobody could take it; Reason says why).
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Dark is a Service that would lose its last ready endpoint or every announcer.
type Dark struct {
	Service string `json:"service"`
	Why     string `json:"why"`
}

// WhatIf is what a node going down or being drained would change.
type WhatIf struct {
	Node  string `json:"node"`
	Event string `json:"event"`
	Moves []Move `json:"moves"`
	Dark  []Dark `json:"dark"`
	// BGPWithdrawn counts the routes the node announces over BGP, withdrawn when it goes down.
	BGPWithdrawn int `json:"bgpWithdrawn"`
}

// NodeDown plans the cluster without node's speaker (a power cut: the speaker and the
// node's endpoints gone) and compares with the plan now.
func NodeDown(c *Cluster, node string) (*WhatIf, error) {
	return whatIf(c, node, "node-down", true)
}

// Drain plans the cluster with node's endpoints gone but its speaker running (kubectl drain
// evicts the pods, not the DaemonSet's speaker).
func Drain(c *Cluster, node string) (*WhatIf, error) {
	return whatIf(c, node, "drain", false)
}

func whatIf(c *Cluster, node, event string, speakerGone bool) (*WhatIf, error) {
	found := false
	for _, n := range c.Nodes {
		found = found || n.Name == node
	}
	if !found {
		return nil, fmt.Errorf("node %s: %w", node, ErrNotFound)
	}
	members, links := c.Members()
	before := c.objects(members, links)
	after := before
	after.Slices = withoutNode(c.Slices, node)
	if speakerGone {
		after.Members = maps.Clone(members)
		delete(after.Members, node)
	}
	inBefore, inAfter := before.Input(), after.Input()
	was := map[netip.Addr]planner.Decision{}
	for _, d := range planner.L2(inBefore) {
		was[d.Addr] = d
	}
	w := &WhatIf{Node: node, Event: event, Moves: []Move{}, Dark: []Dark{}}
	lost := map[string]bool{} // Services with an address nobody would announce
	for _, d := range planner.L2(inAfter) {
		old := was[d.Addr]
		if old.Owner == d.Owner {
			continue
		}
		m := Move{Address: d.Addr.String(), Services: d.Services, From: old.Owner, To: d.Owner}
		if d.Owner == "" {
			m.Reason = string(d.Reason)
			if old.Owner != "" {
				for _, s := range d.Services {
					lost[s] = true
				}
			}
		}
		w.Moves = append(w.Moves, m)
	}
	if speakerGone && members[node] {
		w.BGPWithdrawn = len(planner.BGPFor(inBefore, node))
	}
	// Services whose every ready endpoint is on the node.
	ready := readyNodes(c.Slices)
	for _, key := range sortedKeys(ready) {
		nodes := ready[key]
		if len(nodes) > 0 && len(nodes) == 1 && nodes[node] {
			w.Dark = append(w.Dark, Dark{Service: key, Why: "every ready endpoint is on " + node})
		}
	}
	for _, s := range slices.Sorted(maps.Keys(lost)) {
		if !slices.ContainsFunc(w.Dark, func(d Dark) bool { return d.Service == s }) {
			w.Dark = append(w.Dark, Dark{Service: s, Why: "no node left to announce its address"})
		}
	}
	return w, nil
}

// withoutNode is the slices with node's endpoints left out.
func withoutNode(in []discoveryv1.EndpointSlice, node string) []discoveryv1.EndpointSlice {
	out := make([]discoveryv1.EndpointSlice, len(in))
	for i, sl := range in {
		sl.Endpoints = slices.DeleteFunc(slices.Clone(sl.Endpoints), func(e discoveryv1.Endpoint) bool {
			return e.NodeName != nil && *e.NodeName == node
		})
		out[i] = sl
	}
	return out
}

// readyNodes maps each Service (namespace/name) with endpoints to the nodes of its ready ones.
func readyNodes(sls []discoveryv1.EndpointSlice) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for i := range sls {
		key := planner.ServiceKey(&sls[i])
		if key == "" {
			continue
		}
		if out[key] == nil {
			out[key] = map[string]bool{}
		}
		for _, e := range sls[i].Endpoints {
			if e.NodeName != nil && (e.Conditions.Ready == nil || *e.Conditions.Ready) {
				out[key][*e.NodeName] = true
			}
		}
	}
	return out
}
