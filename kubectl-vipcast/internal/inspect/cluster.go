// Package inspect reads what vipcast sees of a cluster and explains it in words: why a
// Service has its addresses or none, who announces each and how, and what a node going down
// or being drained would change, computed with the speakers' own planner.
package inspect

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
	"github.com/vipcast/vipcast/internal/planner"
)

// Cluster is what vipcast's programs read, read once.
type Cluster struct {
	Services   []corev1.Service
	Slices     []discoveryv1.EndpointSlice
	Nodes      []corev1.Node
	Namespaces []corev1.Namespace
	Pools      []v1alpha1.IPAddressPool
	L2         []v1alpha1.L2Advertisement
	BGP        []v1alpha1.BGPAdvertisement
	Peers      []v1alpha1.BGPPeer
	Speakers   []v1alpha1.SpeakerStatus
	// LBClass is the loadBalancerClass vipcast handles ("": Services without one).
	LBClass string
}

// Read lists everything Cluster holds.
func Read(ctx context.Context, c client.Reader, lbClass string) (*Cluster, error) {
	cl := &Cluster{LBClass: lbClass}
	var (
		svcs  corev1.ServiceList
		sl    discoveryv1.EndpointSliceList
		nodes corev1.NodeList
		nss   corev1.NamespaceList
		pools v1alpha1.IPAddressPoolList
		l2    v1alpha1.L2AdvertisementList
		bgp   v1alpha1.BGPAdvertisementList
		peers v1alpha1.BGPPeerList
		spk   v1alpha1.SpeakerStatusList
	)
	for _, l := range []client.ObjectList{&svcs, &sl, &nodes, &nss, &pools, &l2, &bgp, &peers, &spk} {
		if err := c.List(ctx, l); err != nil {
			if meta.IsNoMatchError(err) {
				return nil, fmt.Errorf("vipcast's CRDs are not installed: %w", err)
			}
			return nil, err
		}
	}
	cl.Services, cl.Slices, cl.Nodes, cl.Namespaces = svcs.Items, sl.Items, nodes.Items, nss.Items
	cl.Pools, cl.L2, cl.BGP, cl.Peers, cl.Speakers = pools.Items, l2.Items, bgp.Items, peers.Items, spk.Items
	return cl, nil
}

// Members are the nodes whose speaker reports Ready, as the speakers plan with them, and the
// interfaces each reported.
func (c *Cluster) Members() (map[string]bool, map[string][]planner.Link) {
	members, links := map[string]bool{}, map[string][]planner.Link{}
	for _, s := range c.Speakers {
		if !meta.IsStatusConditionTrue(s.Status.Conditions, "Ready") {
			continue
		}
		members[s.Name] = true
		for _, i := range s.Status.Interfaces {
			l := planner.Link{Name: string(i.Name)}
			for _, p := range i.Prefixes {
				if pfx, err := netip.ParsePrefix(p); err == nil {
					l.Prefixes = append(l.Prefixes, pfx)
				}
			}
			links[s.Name] = append(links[s.Name], l)
		}
	}
	return members, links
}

// objects is the planner's view of the cluster with these members.
func (c *Cluster) objects(members map[string]bool, links map[string][]planner.Link) planner.Objects {
	return planner.Objects{Services: c.Services, Slices: c.Slices, Nodes: c.Nodes, Pools: c.Pools, L2: c.L2, BGP: c.BGP, Peers: c.Peers,
		LBClass: c.LBClass, Members: members, Links: links}
}

// service finds a Service.
func (c *Cluster) service(ns, name string) *corev1.Service {
	for i := range c.Services {
		if c.Services[i].Namespace == ns && c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

func (c *Cluster) namespaceLabels(ns string) map[string]string {
	for _, n := range c.Namespaces {
		if n.Name == ns {
			return n.Labels
		}
	}
	return nil
}

// reported is what each speaker reports announcing: address → node → how.
func (c *Cluster) reported() map[netip.Addr]map[string]string {
	out := map[netip.Addr]map[string]string{}
	for _, s := range c.Speakers {
		for _, set := range s.Status.Announced {
			addrs, err := addrset.Decode(set.Addresses)
			if err != nil {
				continue
			}
			how := string(set.Mode)
			switch {
			case set.Mode == v1alpha1.ModeL2 && len(set.Interfaces) > 0:
				how += " on " + joinNames(set.Interfaces)
			case set.Mode == v1alpha1.ModeBGP && len(set.Peers) > 0:
				how += " to " + strings.Join(set.Peers, ", ")
			}
			for _, a := range addrs {
				if out[a] == nil {
					out[a] = map[string]string{}
				}
				if prev := out[a][s.Name]; prev != "" {
					how = prev + "; " + how
				}
				out[a][s.Name] = how
			}
		}
	}
	return out
}

func joinNames(names []v1alpha1.InterfaceName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}

// condition finds a condition.
func condition(cs []metav1.Condition, typ string) *metav1.Condition {
	return meta.FindStatusCondition(cs, typ)
}

// ingress is a Service's addresses.
func ingress(s *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
