package layer2

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

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
		f, p, ok := parseARPFrame(b)
		if !ok {
			return
		}
		_ = classify(f, ourMAC)
		if claimsOwned(p, ourMAC, ownsVIPs) && (bytes.Equal(p.SenderHardwareAddr, ourMAC) || !ownsVIPs(p.SenderIP)) {
			t.Fatalf("a claim by our own MAC or for an address not owned: %+v", p)
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
		if a, mac, ok := naClaim(m, ourMAC, ownsVIPs); ok && (bytes.Equal(mac, ourMAC) || !ownsVIPs(a)) {
			t.Fatalf("a claim by our own MAC or for an address not owned: %s %s", a, mac)
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

func TestClaims(t *testing.T) {
	other := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name string
		op   arp.Operation
		mac  net.HardwareAddr
		ip   netip.Addr
		want bool
	}{
		{"another MAC's gratuitous ARP for an owned address", arp.OperationRequest, theirMAC, vip4, true},
		{"another MAC's reply for an owned address", arp.OperationReply, theirMAC, vip4, true},
		{"our own announcement", arp.OperationRequest, ourMAC, vip4, false},
		{"a request from a host using another address", arp.OperationRequest, theirMAC, other, false},
		{"a probe (no sender address)", arp.OperationRequest, theirMAC, netip.IPv4Unspecified(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := arp.NewPacket(tc.op, tc.mac, tc.ip, ethernetBroadcast, vip4)
			if err != nil {
				t.Fatal(err)
			}
			if got := claimsOwned(p, ourMAC, ownsVIPs); got != tc.want {
				t.Errorf("claimsOwned = %v, want %v", got, tc.want)
			}
		})
	}
	if a, mac, ok := naClaim(advertisement(vip6, theirMAC), ourMAC, ownsVIPs); !ok || a != vip6 || !bytes.Equal(mac, theirMAC) {
		t.Errorf("another MAC's advertisement for an owned address: %s %s %v", a, mac, ok)
	}
	if _, _, ok := naClaim(advertisement(vip6, ourMAC), ourMAC, ownsVIPs); ok {
		t.Error("our own advertisement is a claim")
	}
	if _, _, ok := naClaim(advertisement(netip.MustParseAddr("2001:db8::99"), theirMAC), ourMAC, ownsVIPs); ok {
		t.Error("an advertisement for an address not owned is a claim")
	}
}

func TestClassify(t *testing.T) {
	multicast := net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
	for _, tc := range []struct {
		name     string
		src, dst net.HardwareAddr
		want     frameVerdict
	}{
		{"broadcast", theirMAC, ethernetBroadcast, frameAnswer},
		{"to us", theirMAC, ourMAC, frameAnswer},
		{"multicast", theirMAC, multicast, frameAnswer},
		{"to another host", theirMAC, net.HardwareAddr{0x02, 0, 0, 0, 0, 0x77}, frameNotOurs},
		{"our own, going out", ourMAC, theirMAC, frameOwn},
	} {
		if got := classify(&ethernet.Frame{Source: tc.src, Destination: tc.dst}, ourMAC); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := limiter{every: 10 * time.Second}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ok, n := l.allow(t0); !ok || n != 0 {
		t.Fatalf("first: %v %d", ok, n)
	}
	for i := range 5 {
		if ok, _ := l.allow(t0.Add(time.Duration(i+1) * time.Second)); ok {
			t.Fatalf("let through %d s after the first", i+1)
		}
	}
	if ok, n := l.allow(t0.Add(11 * time.Second)); !ok || n != 5 {
		t.Errorf("after the interval: %v, %d held back (want 5)", ok, n)
	}
}
