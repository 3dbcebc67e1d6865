package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// MemberlistPort is the port the lab's speakers gossip on (the speaker's default).
const MemberlistPort = 7946

// blockTable is the nftables table a node's memberlist block lives in.
const blockTable = "vipcast_lab_block"

// BlockMemberlist drops the node's memberlist traffic (UDP and TCP, both directions) with
// nftables inside its namespace: with peers, only to and from them (a partition); without,
// to and from everyone (a firewalled speaker). Everything else still flows. Unblock lifts it.
func (n *Node) BlockMemberlist(ctx context.Context, peers ...*Node) error {
	// Each rule matches the peers' addresses (none: anyone) and the port on either side, so
	// requests and memberlist's answers from its listening port are both dropped.
	var v4, v6 []string
	for _, p := range peers {
		v4, v6 = append(v4, p.IPv4.String()), append(v6, p.IPv6.String())
	}
	script := []string{"add table inet " + blockTable}
	for _, c := range []struct{ name, hook, dir string }{{"in", "input", "saddr"}, {"out", "output", "daddr"}} {
		script = append(script, fmt.Sprintf("add chain inet %s %s { type filter hook %s priority -10; }", blockTable, c.name, c.hook))
		matches := []string{""}
		if len(peers) > 0 {
			matches = []string{fmt.Sprintf("ip %s { %s } ", c.dir, strings.Join(v4, ", ")), fmt.Sprintf("ip6 %s { %s } ", c.dir, strings.Join(v6, ", "))}
		}
		for _, m := range matches {
			for _, proto := range []string{"udp", "tcp"} {
				for _, side := range []string{"dport", "sport"} {
					script = append(script, fmt.Sprintf("add rule inet %s %s %s%s %s %d drop", blockTable, c.name, m, proto, side, MemberlistPort))
				}
			}
		}
	}
	f, err := os.CreateTemp("", "vipcast-lab-block-*.nft")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(strings.Join(script, "\n") + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if out, err := Exec(ctx, n.Netns, "nft", "-f", f.Name()); err != nil {
		return fmt.Errorf("blocking memberlist on %s: %w: %s", n.Name, err, out)
	}
	return nil
}

// Unblock lifts BlockMemberlist (nothing to lift is not an error).
func (n *Node) Unblock(ctx context.Context) error {
	out, err := Exec(ctx, n.Netns, "nft", "list", "tables")
	if err != nil {
		return fmt.Errorf("listing nftables tables on %s: %w: %s", n.Name, err, out)
	}
	if !strings.Contains(out, blockTable) {
		return nil
	}
	if out, err := Exec(ctx, n.Netns, "nft", "delete", "table", "inet", blockTable); err != nil {
		return fmt.Errorf("unblocking memberlist on %s: %w: %s", n.Name, err, out)
	}
	return nil
}

// Device is a host on the fabric that runs no speaker: a device configured by hand, for
// conflict tests.
type Device struct {
	Name, Netns, MAC string
	IPv4, IPv6       netip.Addr
}

// AddDevice plugs a new namespace into the fabric as host hostByte (its addresses and MAC
// name it, as the nodes' do: choose a byte no node or other device uses, 200 and up).
func (l *Lab) AddDevice(ctx context.Context, name string, hostByte int) (*Device, error) {
	d := &Device{Name: name, Netns: l.ns(name), MAC: mac(hostByte), IPv4: host(FabricV4, hostByte), IPv6: host(FabricV6, hex(hostByte))}
	if err := l.joinFabric(ctx, d.Netns, name, hostByte, d.IPv4, d.IPv6); err != nil {
		_ = l.RemoveDevice(ctx, d)
		return nil, err
	}
	return d, nil
}

// RemoveDevice unplugs a device and deletes its namespace.
func (l *Lab) RemoveDevice(ctx context.Context, d *Device) error {
	_ = ip(ctx, l.ns("fabric"), "link", "del", d.Name)
	_, err := run(ctx, "ip", "netns", "del", d.Netns)
	return err
}

// SetLink sets the node's fabric interface (eth0, inside the node) down or up, as a failing
// NIC or an administrator would; up again, its routes are put back.
func (n *Node) SetLink(ctx context.Context, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if err := ip(ctx, n.Netns, "link", "set", "dev", "eth0", state); err != nil {
		return err
	}
	if !up {
		return nil
	}
	return n.lab.nodeRoutes(ctx, n)
}

// RecreateLink deletes the node's fabric link and makes it again with a new MAC (a new
// interface index too), its addresses and routes restored, as when a VLAN or bond is
// re-created under a running speaker.
func (n *Node) RecreateLink(ctx context.Context, mac string) error {
	fabric := n.lab.ns("fabric")
	if err := ip(ctx, fabric, "link", "del", n.Name); err != nil {
		return err
	}
	if err := (link{nsA: fabric, a: n.Name, nsB: n.Netns, b: "eth0", macB: mac}).create(ctx); err != nil {
		return err
	}
	if err := ip(ctx, fabric, "link", "set", n.Name, "master", "br0", "up"); err != nil {
		return err
	}
	if err := addrs(ctx, n.Netns, "eth0", netip.PrefixFrom(n.IPv4, FabricV4.Bits()), netip.PrefixFrom(n.IPv6, FabricV6.Bits())); err != nil {
		return err
	}
	return n.lab.nodeRoutes(ctx, n)
}

// Uplink is a second link between a node (eth1) and the router, on a subnet of its own: a
// node with two NICs, whose BGP sessions may run over either.
type Uplink struct {
	Node *Node
	// NodeAddrs are the node's two addresses on the link: the kernel picks the first as
	// source, the second only when asked (a BGPPeer's sourceAddress).
	NodeAddrs [2]netip.Addr
	Router    netip.Addr
	dev       string
}

// AddUplink links n to the router over its /29 of UplinksV4: the node gets the first and
// third addresses, the router the second. The router accepts BGP sessions from there like
// from the fabric.
func (l *Lab) AddUplink(ctx context.Context, n *Node) (*Uplink, error) {
	if n.Index >= 32 {
		return nil, fmt.Errorf("%s: uplinks hold nodes 1 to 31", n.Name)
	}
	base := UplinksV4.Addr().As4()
	base[3] = byte(8 * n.Index)
	first := netip.AddrFrom4(base)
	u := &Uplink{Node: n, NodeAddrs: [2]netip.Addr{first.Next(), first.Next().Next().Next()}, Router: first.Next().Next(), dev: "up-" + n.Name}
	router := l.Router.Netns
	if err := (link{nsA: router, a: u.dev, nsB: n.Netns, b: "eth1"}).create(ctx); err != nil {
		return nil, err
	}
	err := addrs(ctx, router, u.dev, netip.PrefixFrom(u.Router, 29))
	if err == nil {
		err = addrs(ctx, n.Netns, "eth1", netip.PrefixFrom(u.NodeAddrs[0], 29), netip.PrefixFrom(u.NodeAddrs[1], 29))
	}
	if err != nil {
		return nil, errors.Join(err, l.RemoveUplink(ctx, u))
	}
	return u, nil
}

// RemoveUplink takes the link away again.
func (l *Lab) RemoveUplink(ctx context.Context, u *Uplink) error {
	return ip(ctx, l.Router.Netns, "link", "del", u.dev)
}
