// Package migrate turns MetalLB's configuration (metallb.io IPAddressPool, L2Advertisement,
// BGPAdvertisement, BGPPeer, Community and BFDProfile) into vipcast's, and says what it
// cannot carry over and why.
package migrate

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mlb "go.universe.tf/metallb/api/v1beta1"
	mlb2 "go.universe.tf/metallb/api/v1beta2"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/iprange"
)

// Input is MetalLB's configuration: the objects of its namespace.
type Input struct {
	Pools       []mlb.IPAddressPool
	L2          []mlb.L2Advertisement
	BGP         []mlb.BGPAdvertisement
	Peers       []mlb2.BGPPeer
	Communities []mlb.Community
	BFDProfiles []mlb.BFDProfile
}

// Options say where the Secrets are.
type Options struct {
	// MetalLBNamespace is where MetalLB runs: a passwordSecret without a namespace is there.
	MetalLBNamespace string
	// SecretNamespace is where a Secret for a peer's plain-text password is written.
	SecretNamespace string
}

// Gap is something of MetalLB's configuration that the output does not carry: a field
// (Field set) or a whole object (Dropped: nothing of it is in the output).
type Gap struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Field   string `json:"field,omitempty"`
	Dropped bool   `json:"dropped,omitempty"`
	Reason  string `json:"reason"`
}

func (g Gap) String() string {
	what := g.Kind + "/" + g.Name
	if g.Field != "" {
		what += " " + g.Field
	}
	if g.Dropped {
		what += " (not converted)"
	}
	return what + ": " + g.Reason
}

// Result is vipcast's configuration, in the order to apply it (Secrets, pools,
// advertisements, peers), and the gaps.
type Result struct {
	Objects []client.Object `json:"objects"`
	Gaps    []Gap           `json:"gaps"`
}

// Convert maps in to vipcast's objects. Names are kept, so the annotations that name a pool
// and the advertisements that name peers or pools still match.
func Convert(in Input, o Options) Result {
	c := &converter{o: o, communities: map[string]string{}, bfd: map[string]*mlb.BFDProfile{}, bfdReported: map[string]bool{}}
	for _, cm := range sorted(in.Communities) {
		for _, a := range cm.Spec.Communities {
			c.communities[a.Name] = a.Value
		}
	}
	for i := range in.BFDProfiles {
		c.bfd[in.BFDProfiles[i].Name] = &in.BFDProfiles[i]
	}
	for _, p := range sorted(in.Pools) {
		c.pool(p)
	}
	for _, a := range sorted(in.L2) {
		c.l2(a)
	}
	for _, a := range sorted(in.BGP) {
		c.bgpAdvertisement(a)
	}
	for _, p := range sorted(in.Peers) {
		c.peer(p)
	}
	c.out.Objects = append(c.secrets, c.out.Objects...)
	return c.out
}

// sorted orders objects by name, so the output does not depend on the order read.
func sorted[T any, P interface {
	*T
	GetName() string
}](items []T) []T {
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(P(&a).GetName(), P(&b).GetName()) })
	return out
}

type converter struct {
	o           Options
	communities map[string]string
	bfd         map[string]*mlb.BFDProfile
	bfdReported map[string]bool
	secrets     []client.Object
	out         Result
}

func (c *converter) gap(kind, name, field, reason string) {
	c.out.Gaps = append(c.out.Gaps, Gap{Kind: kind, Name: name, Field: field, Reason: reason})
}

func (c *converter) drop(kind, name, field, reason string) {
	c.out.Gaps = append(c.out.Gaps, Gap{Kind: kind, Name: name, Field: field, Dropped: true, Reason: reason})
}

// kept keeps the name and labels (pool and advertisement selectors match labels), and
// leaves the namespace: vipcast's kinds are cluster-scoped.
func kept(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Labels: m.Labels}
}

func (c *converter) pool(p mlb.IPAddressPool) {
	const kind = "IPAddressPool"
	out := &v1alpha1.IPAddressPool{TypeMeta: typeMeta(kind), ObjectMeta: kept(p.ObjectMeta)}
	for i, a := range p.Spec.Addresses {
		if _, err := iprange.Parse(a); err != nil {
			c.gap(kind, p.Name, fmt.Sprintf("spec.addresses[%d]", i), err.Error())
			continue
		}
		out.Spec.Addresses = append(out.Spec.Addresses, v1alpha1.AddressRange(strings.TrimSpace(a)))
	}
	if len(out.Spec.Addresses) == 0 {
		c.drop(kind, p.Name, "spec.addresses", "no address range vipcast can read")
		return
	}
	out.Spec.AutoAssign = p.Spec.AutoAssign
	out.Spec.AvoidBuggyIPs = p.Spec.AvoidBuggyIPs
	if a := p.Spec.AllocateTo; a != nil {
		out.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: int32(min(max(a.Priority, 0), 1<<31-1)), //nolint:gosec // clamped
			Namespaces: a.Namespaces, NamespaceSelectors: a.NamespaceSelectors, ServiceSelectors: a.ServiceSelectors}
		if a.Priority < 0 {
			c.gap(kind, p.Name, "spec.serviceAllocation.priority", fmt.Sprintf("%d is negative; vipcast's priorities start at 0 (none)", a.Priority))
		}
	}
	c.out.Objects = append(c.out.Objects, out)
}

func (c *converter) l2(a mlb.L2Advertisement) {
	const kind = "L2Advertisement"
	out := &v1alpha1.L2Advertisement{TypeMeta: typeMeta(kind), ObjectMeta: kept(a.ObjectMeta), Spec: v1alpha1.L2AdvertisementSpec{
		IPAddressPools: a.Spec.IPAddressPools, IPAddressPoolSelectors: a.Spec.IPAddressPoolSelectors,
		ServiceSelectors: a.Spec.ServiceSelectors, NodeSelectors: a.Spec.NodeSelectors,
	}}
	for _, i := range a.Spec.Interfaces {
		out.Spec.Interfaces = append(out.Spec.Interfaces, v1alpha1.InterfaceName(i))
	}
	c.out.Objects = append(c.out.Objects, out)
}

// community is the pattern of vipcast's Community.
var community = regexp.MustCompile(`^([0-9]{1,5}:[0-9]{1,5}|large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10})$`)

func (c *converter) bgpAdvertisement(a mlb.BGPAdvertisement) {
	const kind = "BGPAdvertisement"
	out := &v1alpha1.BGPAdvertisement{TypeMeta: typeMeta(kind), ObjectMeta: kept(a.ObjectMeta), Spec: v1alpha1.BGPAdvertisementSpec{
		IPAddressPools: a.Spec.IPAddressPools, IPAddressPoolSelectors: a.Spec.IPAddressPoolSelectors,
		AggregationLength: a.Spec.AggregationLength, AggregationLengthV6: a.Spec.AggregationLengthV6,
		Peers: a.Spec.Peers, NodeSelectors: a.Spec.NodeSelectors, ServiceSelectors: a.Spec.ServiceSelectors,
	}}
	if a.Spec.LocalPref != 0 {
		out.Spec.LocalPref = &a.Spec.LocalPref
	}
	for i, v := range a.Spec.Communities {
		field := fmt.Sprintf("spec.communities[%d]", i)
		if alias, ok := c.communities[v]; ok {
			v = alias
		} else if !strings.Contains(v, ":") {
			c.gap(kind, a.Name, field, fmt.Sprintf("%q is no community and no alias of a Community object", v))
			continue
		}
		if !validCommunity(v) {
			c.gap(kind, a.Name, field, fmt.Sprintf("%q: vipcast takes standard (65000:100) and large (large:1:2:3) communities only", v))
			continue
		}
		if !slices.Contains(out.Spec.Communities, v1alpha1.Community(v)) {
			out.Spec.Communities = append(out.Spec.Communities, v1alpha1.Community(v))
		}
	}
	c.out.Objects = append(c.out.Objects, out)
}

// validCommunity checks a community as vipcast's API does: the pattern and each number's range.
func validCommunity(v string) bool {
	if !community.MatchString(v) {
		return false
	}
	large := strings.HasPrefix(v, "large:")
	for _, part := range strings.Split(strings.TrimPrefix(v, "large:"), ":") {
		n, err := strconv.ParseUint(part, 10, 64)
		if err != nil || (large && n > 1<<32-1) || (!large && n > 1<<16-1) {
			return false
		}
	}
	return true
}

func (c *converter) peer(p mlb2.BGPPeer) {
	const kind = "BGPPeer"
	s := p.Spec
	// What changes who the session is with: without it the converted peer would be wrong,
	// so it is left out.
	switch {
	case s.Interface != "":
		c.drop(kind, p.Name, "spec.interface", "unnumbered BGP (a session over an interface, no peer address) is not supported")
		return
	case s.ASN == 0:
		c.drop(kind, p.Name, "spec.dynamicASN", "vipcast needs the peer's AS number (peerASN); dynamicASN is not supported")
		return
	case s.LocalASN != 0:
		c.drop(kind, p.Name, "spec.localASN", fmt.Sprintf("local-as is not supported: the router expects AS %d, vipcast would open the session as myASN %d; set myASN to it if every session may use it", s.LocalASN, s.MyASN))
		return
	case s.VRFName != "":
		c.drop(kind, p.Name, "spec.vrf", "sessions in a VRF are not supported")
		return
	}
	out := &v1alpha1.BGPPeer{TypeMeta: typeMeta(kind), ObjectMeta: kept(p.ObjectMeta), Spec: v1alpha1.BGPPeerSpec{
		MyASN: s.MyASN, PeerASN: s.ASN, PeerAddress: s.Address, PeerPort: int32(s.Port), SourceAddress: s.SrcAddress,
		HoldTime: s.HoldTime, KeepaliveTime: s.KeepaliveTime, ConnectTime: s.ConnectTime, RouterID: s.RouterID,
		EBGPMultiHop: s.EBGPMultiHop, NodeSelectors: s.NodeSelectors,
	}}
	if s.EBGPMultiHop && s.MyASN == s.ASN {
		out.Spec.EBGPMultiHop = false
		c.gap(kind, p.Name, "spec.ebgpMultiHop", "left out: myASN equals peerASN, an iBGP session, where it means nothing")
	}
	if s.EnableGracefulRestart {
		out.Spec.GracefulRestart = &v1alpha1.GracefulRestartSettings{Enabled: true}
	}
	switch {
	case s.PasswordSecret.Name != "":
		ns := cmp.Or(s.PasswordSecret.Namespace, c.o.MetalLBNamespace)
		out.Spec.PasswordSecret = &v1alpha1.SecretKeyReference{Name: s.PasswordSecret.Name, Namespace: c.o.SecretNamespace, Key: corev1.BasicAuthPasswordKey}
		if ns != c.o.SecretNamespace {
			c.gap(kind, p.Name, "spec.passwordSecret", fmt.Sprintf("copy Secret %s/%s to namespace %s first: the speakers read BGP passwords there, and MetalLB's namespace goes with MetalLB",
				ns, s.PasswordSecret.Name, c.o.SecretNamespace))
		}
		if s.Password != "" {
			c.gap(kind, p.Name, "spec.password", "left out: passwordSecret is set too and MetalLB reads that")
		}
	case s.Password != "":
		name := "vipcast-bgp-" + p.Name
		c.secrets = append(c.secrets, &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.o.SecretNamespace}, Type: corev1.SecretTypeOpaque,
			StringData: map[string]string{corev1.BasicAuthPasswordKey: s.Password}})
		out.Spec.PasswordSecret = &v1alpha1.SecretKeyReference{Name: name, Namespace: c.o.SecretNamespace, Key: corev1.BasicAuthPasswordKey}
	}
	if s.BFDProfile != "" {
		c.bfdSettings(out, s.BFDProfile)
	}
	if s.DisableMP {
		c.gap(kind, p.Name, "spec.disableMP", "not supported: each session carries the address family of the peer's address")
	}
	if s.DualStackAddressFamily {
		c.gap(kind, p.Name, "spec.dualStackAddressFamily", "not supported: each session carries the address family of the peer's address; add a BGPPeer for the other family's address")
	}
	c.out.Objects = append(c.out.Objects, out)
}

// bfdSettings carries a BFDProfile's timers into the peer's bfd.
func (c *converter) bfdSettings(out *v1alpha1.BGPPeer, name string) {
	const kind = "BGPPeer"
	prof, ok := c.bfd[name]
	if !ok {
		c.gap(kind, out.Name, "spec.bfdProfile", fmt.Sprintf("BFDProfile %q not found: the session gets no BFD", name))
		return
	}
	if out.Spec.EBGPMultiHop {
		c.gap(kind, out.Name, "spec.bfdProfile", "left out: vipcast's BFD is single-hop (RFC 5881), and this peer is multi-hop")
		return
	}
	ms := func(v *uint32) int32 {
		if v == nil {
			return 0
		}
		return int32(min(*v, 1<<31-1)) //nolint:gosec // clamped
	}
	ps := prof.Spec
	out.Spec.BFD = &v1alpha1.BFDSettings{Enabled: true, ReceiveInterval: ms(ps.ReceiveInterval), TransmitInterval: ms(ps.TransmitInterval), DetectMultiplier: ms(ps.DetectMultiplier)}
	if c.bfdReported[name] {
		return
	}
	c.bfdReported[name] = true
	for _, f := range []struct {
		field string
		set   bool
	}{{"echoMode", ps.EchoMode != nil && *ps.EchoMode}, {"echoInterval", ps.EchoInterval != nil},
		{"passiveMode", ps.PassiveMode != nil && *ps.PassiveMode}, {"minimumTtl", ps.MinimumTTL != nil}} {
		if f.set {
			c.gap("BFDProfile", name, "spec."+f.field, "not supported (vipcast's BFD sends control packets, actively, single-hop with TTL 255)")
		}
	}
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kind}
}
