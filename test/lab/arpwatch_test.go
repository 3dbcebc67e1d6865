package lab

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The receive time is read from the SCM_TIMESTAMPNS control message, and only from it.
func TestKernelTime(t *testing.T) {
	want := time.Date(2026, 12, 2, 5, 40, 1, 123456789, time.UTC)
	msg := func(level, typ int32) []byte {
		b := make([]byte, syscall.CmsgSpace(16))
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(syscall.CmsgLen(16))
		data := b[syscall.CmsgLen(0):]
		binary.NativeEndian.PutUint64(data[0:8], uint64(want.Unix()))
		binary.NativeEndian.PutUint64(data[8:16], uint64(want.Nanosecond()))
		return b
	}
	if at, ok := kernelTime(msg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS)); !ok || !at.Equal(want) {
		t.Errorf("kernelTime = %s, %v; want %s", at, ok, want)
	}
	if at, ok := kernelTime(append(msg(syscall.SOL_SOCKET, syscall.SCM_RIGHTS), msg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS)...)); !ok || !at.Equal(want) {
		t.Errorf("after another message: kernelTime = %s, %v; want %s", at, ok, want)
	}
	for name, oob := range map[string][]byte{"none": nil, "another message": msg(syscall.SOL_SOCKET, syscall.SCM_RIGHTS), "cut short": msg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS)[:12]} {
		if at, ok := kernelTime(oob); ok {
			t.Errorf("%s: kernelTime = %s, want none", name, at)
		}
	}
}

func TestARPClaimOf(t *testing.T) {
	a, w := mustMAC(macA), mustMAC(macW)
	vip, other, w4 := netip.MustParseAddr("198.18.64.7"), netip.MustParseAddr("198.18.64.8"), netip.MustParseAddr("192.0.2.1")
	zero := make(net.HardwareAddr, 6)
	for _, tc := range []struct {
		name  string
		frame []byte
		addr  netip.Addr
		want  *Claim
	}{
		{"reply", arpFrame(arpReply, a, w, vip, w, w4), vip, &Claim{MAC: macA, Kind: ClaimReply}},
		{"reply for another address", arpFrame(arpReply, a, w, other, w, w4), other, &Claim{MAC: macA, Kind: ClaimReply}},
		{"gratuitous request", arpFrame(arpRequest, a, ethBroadcast, vip, zero, vip), vip, &Claim{MAC: macA, Kind: ClaimGratuitous}},
		{"the watcher's own question", arpFrame(arpRequest, w, ethBroadcast, w4, zero, vip), netip.Addr{}, nil},
		{"a node asking for the router", arpFrame(arpRequest, a, ethBroadcast, netip.MustParseAddr("192.0.2.11"), zero, w4),
			netip.MustParseAddr("192.0.2.11"), &Claim{MAC: macA, Kind: ClaimGratuitous}},
		{"cut short", arpFrame(arpReply, a, w, vip, w, w4)[:ethHeaderLen+20], netip.Addr{}, nil},
		{"not ARP", ndFrame(icmpNeighborAdv, 0, a, w, netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2"), netip.MustParseAddr("2001:db8::1"), nil), netip.Addr{}, nil},
		{"runt", []byte{1, 2, 3}, netip.Addr{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, got, ok := arpClaimOf(tc.frame, w)
			var want Claim
			if tc.want != nil {
				want = *tc.want
			}
			if ok != (tc.want != nil) || got != want || (ok && addr != tc.addr) {
				t.Errorf("claim %+v for %s (%t), want %+v for %s", got, addr, ok, tc.want, tc.addr)
			}
		})
	}
}

func FuzzARPClaimOf(f *testing.F) {
	a, w := mustMAC(macA), mustMAC(macW)
	vip, w4 := netip.MustParseAddr("198.18.64.7"), netip.MustParseAddr("192.0.2.1")
	f.Add(arpFrame(arpReply, a, w, vip, w, w4))
	f.Add(arpFrame(arpRequest, a, ethBroadcast, vip, make(net.HardwareAddr, 6), vip))
	f.Fuzz(func(t *testing.T, frame []byte) {
		addr, c, ok := arpClaimOf(frame, w)
		if !ok {
			return
		}
		if !addr.Is4() {
			t.Errorf("claim for %s", addr)
		}
		if m, err := net.ParseMAC(c.MAC); err != nil || len(m) != 6 {
			t.Errorf("claim by %q", c.MAC)
		}
		if net.HardwareAddr(frame[6:12]).String() == macW {
			t.Errorf("the watcher's own frame counted as %+v", c)
		}
	})
}

func TestStartARPWatchRefuses(t *testing.T) {
	within := []netip.Prefix{netip.MustParsePrefix("198.18.64.0/24")}
	for _, tc := range []struct {
		name    string
		within  []netip.Prefix
		every   time.Duration
		perTick int
	}{
		{"no prefixes", nil, time.Millisecond, 1},
		{"no period", within, 0, 1},
		{"negative budget", within, time.Millisecond, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w, err := StartARPWatch("vc-none", "eth0", tc.within, tc.every, tc.perTick); err == nil {
				w.Stop()
				t.Error("started")
			}
		})
	}
}

func TestARPWatchWire(t *testing.T) {
	if os.Getenv("VIPCAST_LAB") != "1" {
		t.Skip("the wire test needs root and VIPCAST_LAB=1 (make test sets it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("VIPCAST_LAB=1 but not root: the wire test makes network namespaces")
	}
	l := newWireLab(t)
	silent := netip.MustParseAddr("192.0.2.241")
	w, err := StartARPWatch(l.sw, "watch0", []netip.Prefix{netip.PrefixFrom(wireVIP4, 31)}, 10*time.Millisecond, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	start := time.Now()
	w.Ask("", wireVIP4, silent)
	var c Claim
	for ok := false; !ok; c, ok = w.First(wireVIP4, "") {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("no claim for %s after %d questions", wireVIP4, w.Asked())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c.MAC != macA || c.Kind != ClaimReply || c.At.Before(start) || c.At.After(time.Now()) {
		t.Errorf("first claim %+v, want a reply from %s after %s (and before now)", c, macA, start)
	}
	if _, ok := w.First(wireVIP4, macA); ok {
		t.Error("a claim by another MAC than the only owner's")
	}
	// The answered address leaves the turn; the silent one is asked on alone.
	time.Sleep(100 * time.Millisecond)
	before := w.Asked()
	time.Sleep(200 * time.Millisecond)
	if n := w.Asked() - before; n < 5 || n > 30 {
		t.Errorf("%d questions in 200 ms with one address left at one per 10 ms", n)
	}
	w.Forget(wireVIP4)
	if _, ok := w.First(wireVIP4, ""); ok {
		t.Error("a claim left after Forget")
	}
}
