package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Namespace names: every name the lab makes starts with its prefix, "vc<index>-", so
// Cleanup finds them all.
func prefixOf(index int) string { return fmt.Sprintf("vc%d-", index) }

func hostLinkOf(index int) string { return fmt.Sprintf("vc%d-host", index) }

// ns is the name of one of this lab's namespaces.
func (l *Lab) ns(name string) string { return l.prefix + name }

// Cleanup removes everything a lab with this index left behind: the processes in its
// namespaces, the namespaces (and so their links), the host link and the state directory.
// It is safe to call when nothing is left, and is what `vipcast-lab down` runs.
func Cleanup(ctx context.Context, index int) error {
	prefix := prefixOf(index)
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	for _, n := range names {
		killNetnsProcesses(ctx, n)
	}
	var errs []string
	for _, n := range names {
		if _, err := run(ctx, "ip", "netns", "del", n); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if _, err := run(ctx, "ip", "link", "show", hostLinkOf(index)); err == nil {
		if err := ip(ctx, "", "link", "del", hostLinkOf(index)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if err := os.RemoveAll(StateDir(index)); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleaning up lab %d: %s", index, strings.Join(errs, "; "))
	}
	return nil
}

// newNetns creates a namespace with loopback up, no duplicate-address detection (addresses
// are usable at once), IPv6 addresses kept while a link is down, and forwarding as asked.
func newNetns(ctx context.Context, name string, forward bool) error {
	if _, err := run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	if err := ip(ctx, name, "link", "set", "lo", "up"); err != nil {
		return err
	}
	kv := []string{
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
		"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.default.keep_addr_on_down=1",
	}
	if forward {
		kv = append(kv, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	}
	return sysctl(ctx, name, kv...)
}

// mac is a locally administered address that names its owner: the fabric MAC of node 1
// (host byte 11) is 02:00:00:00:00:11.
func mac(hostByte int) string { return fmt.Sprintf("02:00:00:00:00:%02x", hex(hostByte)) }

// link is one veth pair: end a (name, in namespace nsA) and end b.
type link struct {
	nsA, a, nsB, b string
	macB           string
}

func (k link) create(ctx context.Context) error {
	args := []string{"link", "add", k.a, "type", "veth", "peer", "name", k.b}
	if k.macB != "" {
		args = append(args, "address", k.macB)
	}
	args = append(args, "netns", k.nsB)
	return ip(ctx, k.nsA, args...)
}

// addrs puts addresses on a link and brings it up.
func addrs(ctx context.Context, netns, dev string, prefixes ...netip.Prefix) error {
	for _, p := range prefixes {
		args := []string{"addr", "add", p.String(), "dev", dev}
		if p.Addr().Is6() {
			args = append(args, "nodad")
		}
		if err := ip(ctx, netns, args...); err != nil {
			return err
		}
	}
	return ip(ctx, netns, "link", "set", dev, "up")
}

// defaultRoutes points a namespace's default routes at gw4 and gw6.
func defaultRoutes(ctx context.Context, netns string, gw4, gw6 netip.Addr) error {
	if err := ip(ctx, netns, "route", "add", "default", "via", gw4.String()); err != nil {
		return err
	}
	return ip(ctx, netns, "-6", "route", "add", "default", "via", gw6.String())
}

// buildNetwork makes the fabric, the router, the client, the control-plane namespace with
// its link to the host, and the node namespaces with their routes.
func (l *Lab) buildNetwork(ctx context.Context) error {
	fabric := l.ns("fabric")
	if err := newNetns(ctx, fabric, false); err != nil {
		return err
	}
	// No multicast snooping: neighbour solicitations reach every port, as on a plain switch.
	if err := ip(ctx, fabric, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"); err != nil {
		return err
	}
	if err := ip(ctx, fabric, "link", "set", "br0", "up"); err != nil {
		return err
	}
	r4, r6 := l.plan.RouterFabric()
	if err := l.joinFabric(ctx, l.Router.Netns, "router", 1, r4, r6); err != nil {
		return err
	}
	if err := l.buildClient(ctx); err != nil {
		return err
	}
	if err := l.buildControlPlaneNet(ctx); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		if err := l.joinFabric(ctx, n.Netns, n.Name, 10+n.Index, n.IPv4, n.IPv6); err != nil {
			return err
		}
		if err := l.nodeRoutes(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// nodeRoutes gives a node its default routes via the router and a route to each other
// node's pod CIDRs (again after its link was down, which drops them).
func (l *Lab) nodeRoutes(ctx context.Context, n *Node) error {
	r4, r6 := l.plan.RouterFabric()
	if err := ip(ctx, n.Netns, "route", "replace", "default", "via", r4.String()); err != nil {
		return err
	}
	if err := ip(ctx, n.Netns, "-6", "route", "replace", "default", "via", r6.String()); err != nil {
		return err
	}
	for _, o := range l.Nodes {
		if o == n {
			continue
		}
		p4, p6 := l.plan.PodCIDRs(o.Index)
		if err := ip(ctx, n.Netns, "route", "replace", p4.String(), "via", o.IPv4.String()); err != nil {
			return err
		}
		if err := ip(ctx, n.Netns, "-6", "route", "replace", p6.String(), "via", o.IPv6.String()); err != nil {
			return err
		}
	}
	return nil
}

// joinFabric creates netns (forwarding on) and plugs its eth0 into the fabric bridge as
// port `port`, with a MAC that names the host byte.
func (l *Lab) joinFabric(ctx context.Context, netns, port string, hostByte int, a4, a6 netip.Addr) error {
	if err := newNetns(ctx, netns, true); err != nil {
		return err
	}
	fabric := l.ns("fabric")
	if err := (link{nsA: fabric, a: port, nsB: netns, b: "eth0", macB: mac(hostByte)}).create(ctx); err != nil {
		return err
	}
	if err := ip(ctx, fabric, "link", "set", port, "master", "br0", "up"); err != nil {
		return err
	}
	return addrs(ctx, netns, "eth0", netip.PrefixFrom(a4, FabricV4.Bits()), netip.PrefixFrom(a6, FabricV6.Bits()))
}

func (l *Lab) buildClient(ctx context.Context) error {
	if err := newNetns(ctx, l.ClientNetns, false); err != nil {
		return err
	}
	if err := (link{nsA: l.Router.Netns, a: "eth1", nsB: l.ClientNetns, b: "eth0"}).create(ctx); err != nil {
		return err
	}
	r4, r6 := l.plan.RouterClientSide()
	if err := addrs(ctx, l.Router.Netns, "eth1", netip.PrefixFrom(r4, 24), netip.PrefixFrom(r6, 64)); err != nil {
		return err
	}
	if err := addrs(ctx, l.ClientNetns, "eth0", netip.PrefixFrom(l.ClientIPv4, 24), netip.PrefixFrom(l.ClientIPv6, 64)); err != nil {
		return err
	}
	return defaultRoutes(ctx, l.ClientNetns, r4, r6)
}

// buildControlPlaneNet puts the control plane on the fabric (where nodes reach it) and on a
// /30 to the host (where tests and kubectl reach it). The host gets no other lab route.
func (l *Lab) buildControlPlaneNet(ctx context.Context) error {
	cp := l.ns("cp")
	a4, a6 := l.plan.ControlPlaneFabric()
	if err := l.joinFabric(ctx, cp, "cp", 2, a4, a6); err != nil {
		return err
	}
	r4, r6 := l.plan.RouterFabric()
	if err := defaultRoutes(ctx, cp, r4, r6); err != nil {
		return err
	}
	hostSide, cpSide := l.plan.HostLink()
	hl := hostLinkOf(l.cfg.Index)
	if err := (link{a: hl, nsB: cp, b: "eth1"}).create(ctx); err != nil {
		return err
	}
	if err := addrs(ctx, "", hl, hostSide); err != nil {
		return err
	}
	return addrs(ctx, cp, "eth1", cpSide)
}
