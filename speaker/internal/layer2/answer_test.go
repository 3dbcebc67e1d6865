package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x11}
	theirMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	vip4     = netip.MustParseAddr("192.0.2.240")
	vip6     = netip.MustParseAddr("2001:db8::240")
)

func ownsVIPs(a netip.Addr) bool { return a == vip4 || a == vip6 }

func TestARPReply(t *testing.T) {
	req := func(op arp.Operation, target string) *arp.Packet {
		p, err := arp.NewPacket(op, theirMAC, netip.MustParseAddr("192.0.2.1"), net.HardwareAddr{0, 0, 0, 0, 0, 0}, netip.MustParseAddr(target))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		in     *arp.Packet
		answer bool
	}{
		{"request for an owned address", req(arp.OperationRequest, "192.0.2.240"), true},
		{"request for another address", req(arp.OperationRequest, "192.0.2.241"), false},
		{"reply for an owned address", req(arp.OperationReply, "192.0.2.240"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := arpReply(tc.in, ourMAC, ownsVIPs)
			if err != nil {
				t.Fatal(err)
			}
			if (got != nil) != tc.answer {
				t.Fatalf("reply %+v, want one: %v", got, tc.answer)
			}
			if got == nil {
				return
			}
			if got.Operation != arp.OperationReply || got.SenderIP != vip4 || !bytes.Equal(got.SenderHardwareAddr, ourMAC) ||
				got.TargetIP != tc.in.SenderIP || !bytes.Equal(got.TargetHardwareAddr, theirMAC) {
				t.Errorf("reply %+v", got)
			}
		})
	}
}

func TestGratuitousARP(t *testing.T) {
	p, err := gratuitousARP(vip4, ourMAC)
	if err != nil {
		t.Fatal(err)
	}
	if p.Operation != arp.OperationRequest || p.SenderIP != vip4 || p.TargetIP != vip4 || !bytes.Equal(p.SenderHardwareAddr, ourMAC) {
		t.Errorf("gratuitous ARP %+v", p)
	}
}

func TestNDPAnswer(t *testing.T) {
	ns := func(target netip.Addr) ndp.Message { return &ndp.NeighborSolicitation{TargetAddress: target} }
	router := netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name      string
		msg       ndp.Message
		src       netip.Addr
		wantDst   netip.Addr
		solicited bool
	}{
		{"solicitation for an owned address", ns(vip6), router, router, true},
		{"duplicate-address detection", ns(vip6), netip.IPv6Unspecified(), allNodes, false},
		{"solicitation for another address", ns(netip.MustParseAddr("2001:db8::241")), router, netip.Addr{}, false},
		{"an advertisement", advertisement(vip6, theirMAC), router, netip.Addr{}, false},
		{"a router solicitation", &ndp.RouterSolicitation{}, router, netip.Addr{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			na, dst := ndpAnswer(tc.msg, tc.src, ourMAC, ownsVIPs)
			if dst != tc.wantDst {
				t.Fatalf("answer to %s, want %s", dst, tc.wantDst)
			}
			if na == nil {
				return
			}
			lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
			if na.TargetAddress != vip6 || !na.Override || na.Solicited != tc.solicited || !ok || !bytes.Equal(lla.Addr, ourMAC) || lla.Direction != ndp.Target {
				t.Errorf("advertisement %+v", na)
			}
		})
	}
}

// FuzzARPFrame feeds arbitrary frames through parsing and the answer: nothing may panic, and
// an answer only ever claims an owned address with our MAC.
func FuzzARPFrame(f *testing.F) {
	req, _ := arp.NewPacket(arp.OperationRequest, theirMAC, netip.MustParseAddr("192.0.2.1"), ethernetBroadcast, vip4)
	pb, _ := req.MarshalBinary()
	frame, _ := (&ethernet.Frame{Destination: ethernetBroadcast, Source: theirMAC, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
	f.Add(frame)
	f.Add(pb)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parseARPFrame(b)
		if !ok {
			return
		}
		reply, err := arpReply(p, ourMAC, ownsVIPs)
		if err != nil || reply == nil {
			return
		}
		if !ownsVIPs(reply.SenderIP) || !bytes.Equal(reply.SenderHardwareAddr, ourMAC) {
			t.Fatalf("answered %+v", reply)
		}
		if _, err := reply.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzNDPMessage does the same for ICMPv6 messages.
func FuzzNDPMessage(f *testing.F) {
	b, _ := ndp.MarshalMessage(&ndp.NeighborSolicitation{TargetAddress: vip6, Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: theirMAC}}})
	f.Add(b)
	b, _ = ndp.MarshalMessage(advertisement(vip6, theirMAC))
	f.Add(b)
	f.Add([]byte{135, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ndp.ParseMessage(b)
		if err != nil {
			return
		}
		na, _ := ndpAnswer(m, netip.MustParseAddr("2001:db8::1"), ourMAC, ownsVIPs)
		if na == nil {
			return
		}
		if !ownsVIPs(na.TargetAddress) {
			t.Fatalf("answered for %s", na.TargetAddress)
		}
		if _, err := ndp.MarshalMessage(na); err != nil {
			t.Fatal(err)
		}
	})
}
