package addrset

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzDecode: Decode never panics, and what it decodes encodes back to the same bytes
// (every set has one encoding), sorted and without duplicates.
func FuzzDecode(f *testing.F) {
	for _, set := range [][]netip.Addr{
		nil,
		addrs("192.0.2.1"),
		addrs("192.0.2.1", "192.0.2.2", "192.0.2.200", "2001:db8::1", "2001:db8::2"),
		addrs("0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
		addrs("::ffff:192.0.2.1", "fe80::1"),
	} {
		f.Add(Encode(set))
	}
	for _, b := range [][]byte{{}, {2}, {Version, 0x80}, {Version, 0xff, 0xff, 0xff, 0xff, 0x0f}, {Version, 1, 0x81, 0x00, 0}} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Decode(b)
		if err != nil {
			return
		}
		for i := 1; i < len(got); i++ {
			if got[i-1].Compare(got[i]) >= 0 {
				t.Fatalf("Decode(% x): %v before %v", b, got[i-1], got[i])
			}
		}
		if again := Encode(got); !bytes.Equal(again, b) {
			t.Fatalf("Decode(% x) = %v, which encodes to % x", b, got, again)
		}
	})
}
