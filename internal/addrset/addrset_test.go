package addrset

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in, out []netip.Addr
	}{
		{"empty", nil, nil},
		{"one IPv4", addrs("192.0.2.1"), addrs("192.0.2.1")},
		{"the ends of IPv4", addrs("255.255.255.255", "0.0.0.0"), addrs("0.0.0.0", "255.255.255.255")},
		{"the ends of IPv6", addrs("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::"), addrs("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
		{"unsorted, mixed, duplicates", addrs("2001:db8::1", "192.0.2.9", "192.0.2.1", "2001:db8::1", "192.0.2.9"),
			addrs("192.0.2.1", "192.0.2.9", "2001:db8::1")},
		{"an IPv4-mapped address is IPv6", addrs("::ffff:192.0.2.1", "192.0.2.1"), addrs("192.0.2.1", "::ffff:192.0.2.1")},
		{"zones dropped", addrs("fe80::1%eth0", "fe80::1"), addrs("fe80::1")},
		{"invalid left out", []netip.Addr{{}, netip.MustParseAddr("192.0.2.1")}, addrs("192.0.2.1")},
		{"a gap of 2^64 and more", addrs("::", "0:0:0:1::", "8000::"), addrs("::", "0:0:0:1::", "8000::")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			b := Encode(in)
			if !slices.Equal(in, tc.in) {
				t.Errorf("Encode changed its input: %v", in)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%x): %v", b, err)
			}
			if !slices.Equal(got, tc.out) {
				t.Errorf("Decode(Encode(%v)) = %v, want %v", tc.in, got, tc.out)
			}
		})
	}
}

// The bytes themselves: a SpeakerStatus written by one version is read by the next.
func TestEncoding(t *testing.T) {
	got := Encode(addrs("192.0.2.4", "192.0.2.1", "192.0.2.2", "2001:db8::1"))
	want := []byte{
		Version,
		3, 0x81, 0x84, 0x80, 0x80, 0x0c, // 3 IPv4: 192.0.2.1 = 0xc0000201
		0, // 192.0.2.2: one after
		1, // 192.0.2.4: one skipped
		1, // 1 IPv6: 2001:db8::1 = 0x20010db8 << 96 | 1, 18 bytes
		0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0xee, 0x86, 0x81, 0x40,
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Encode = % x\nwant     % x", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"nothing", nil, "empty"},
		{"another version", []byte{2, 0, 0}, "version 2"},
		{"no IPv6 count", []byte{Version, 0}, "IPv6: count: varint at byte 2 is cut short"},
		{"a count beyond the bytes", []byte{Version, 4, 1, 2, 0}, "count at byte 1 is 4, more than the 3 bytes left"},
		{"a huge count", []byte{Version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0}, "more than the 1 bytes left"},
		{"a count wider than 128 bits", append(append([]byte{Version}, bytes.Repeat([]byte{0xff}, 19)...), 1), "wider than 128 bits"},
		{"an address cut short", []byte{Version, 1, 0x80}, "address 0: varint at byte 2 is cut short"},
		{"a varint longer than needed", []byte{Version, 1, 0x81, 0x00, 0}, "varint at byte 2 is longer than it needs to be"},
		{"a zero count longer than needed", []byte{Version, 0x80, 0x00, 0}, "longer than it needs to be"},
		{"IPv4 past 255.255.255.255", []byte{Version, 1, 0x80, 0x80, 0x80, 0x80, 0x10, 0}, "address 0 at byte 2 is past 255.255.255.255"},
		{"IPv4 stepping past the end", []byte{Version, 2, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1, 0}, "address 1 at byte 7 is past 255.255.255.255"},
		{"IPv6 stepping past the end", append(append(append([]byte{Version, 0, 2}, bytes.Repeat([]byte{0xff}, 18)...), 0x03), 0), "address 1 at byte 22 is past the last address"},
		{"bytes after the end", []byte{Version, 0, 0, 0}, "1 bytes after the addresses"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode(% x) = %v, %v; want an error about %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// The sizes that decide how many addresses a SpeakerStatus holds (etcd takes requests up to
// 1.5 MiB; the whole report is to stay under 512 KiB).
func TestSizes(t *testing.T) {
	const n = 50000
	rnd := rand.New(rand.NewPCG(1, 2))
	sequential := make([]netip.Addr, 0, n)
	a := netip.MustParseAddr("10.0.0.0")
	for range n {
		sequential = append(sequential, a)
		a = a.Next()
	}
	var random4 []netip.Addr
	for _, i := range rnd.Perm(1 << 16)[:n] {
		random4 = append(random4, netip.AddrFrom4([4]byte{10, 7, byte(i >> 8), byte(i)}))
	}
	var random6 []netip.Addr
	for range n {
		b := netip.MustParseAddr("2001:db8:7:42::").As16()
		for i := 8; i < 16; i++ {
			b[i] = byte(rnd.Uint32())
		}
		random6 = append(random6, netip.AddrFrom16(b))
	}
	// Two pools handed out in order, in two far apart ranges, and IPv6 beside them.
	var pools []netip.Addr
	for _, first := range []string{"192.0.2.0", "198.51.0.0", "2001:db8::"} {
		a := netip.MustParseAddr(first)
		for range n / 3 {
			pools = append(pools, a)
			a = a.Next()
		}
	}
	for _, tc := range []struct {
		name     string
		addrs    []netip.Addr
		maxBytes int // encoded, before base64
	}{
		{"sequential IPv4", sequential, n + 10},
		{"random IPv4 in a /16", random4, n + 10},
		{"random IPv6 in a /64", random6, 375 * 1000},
		{"three pools, IPv4 and IPv6", pools, n + 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Encode(tc.addrs)
			b64 := base64.StdEncoding.EncodedLen(len(b))
			t.Logf("%d addresses: %d bytes (%.2f per address), %d bytes in base64 (%.1f KiB)", len(tc.addrs), len(b), float64(len(b))/float64(len(tc.addrs)), b64, float64(b64)/1024)
			if len(b) > tc.maxBytes {
				t.Errorf("%d bytes, want at most %d", len(b), tc.maxBytes)
			}
			if b64 >= 512<<10 {
				t.Errorf("%d bytes in base64: not under 512 KiB", b64)
			}
			got, err := Decode(b)
			if err != nil || len(got) != len(tc.addrs) {
				t.Fatalf("Decode: %d addresses, %v", len(got), err)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var in []netip.Addr
	for range 50000 {
		in = append(in, netip.AddrFrom4([4]byte{10, byte(rnd.Uint32()), byte(rnd.Uint32()), byte(rnd.Uint32())}))
	}
	enc := Encode(in)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}
