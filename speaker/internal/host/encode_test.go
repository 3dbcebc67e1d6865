package host

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
)

// metaMaxSize is memberlist.MetaMaxSize; only the membership package imports memberlist.
const metaMaxSize = 512

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestEncodeWireFormat(t *testing.T) {
	links := []Link{{Name: "eth0", Index: 2, MAC: mac("02:00:00:00:07:01"), Prefixes: prefixes("192.0.2.0/24", "2001:db8:1::/64", "0.0.0.0/0")}}
	want := "0100" + // version 1, no flags
		"04" + hex.EncodeToString([]byte("eth0")) + "020000000701" + "03" +
		"04" + "18" + "c00002" + // 192.0.2.0/24: three bytes
		"06" + "40" + "20010db800010000" + // 2001:db8:1::/64: eight bytes
		"04" + "00" // 0.0.0.0/0: no bytes
	if got := hex.EncodeToString(Encode(links, metaMaxSize)); got != want {
		t.Errorf("Encode =\n%s\nwant\n%s", got, want)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		links []Link
	}{
		{name: "no links"},
		{name: "one link without prefixes", links: []Link{{Name: "eth0", MAC: mac("02:00:00:00:07:01")}}},
		{name: "dual stack", links: []Link{
			{Name: "bond0.10", MAC: mac("02:00:00:00:07:01"), Prefixes: prefixes("192.0.2.0/24", "2001:db8:1::/64")},
			{Name: "eth1", MAC: mac("02:00:00:00:07:02"), Prefixes: prefixes("198.51.100.128/25", "2001:db8::/32")},
		}},
		{name: "every prefix length edge", links: []Link{{Name: "a", MAC: mac("02:00:00:00:07:03"), Prefixes: prefixes(
			"0.0.0.0/0", "128.0.0.0/1", "192.0.2.0/23", "192.0.2.0/24", "192.0.2.128/25", "192.0.2.1/32",
			"::/0", "2001:db8::/33", "2001:db8:1::/64", "2001:db8::1:0/127", "2001:db8::1/128", "::ffff:192.0.2.0/120")}}},
		{name: "fifteen-byte name", links: []Link{{Name: "abcdefghijklmno", MAC: mac("02:00:00:00:07:04")}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := Encode(tc.links, metaMaxSize)
			got, truncated, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%x): %v", b, err)
			}
			if truncated {
				t.Error("truncated")
			}
			if !reflect.DeepEqual(got, tc.links) {
				t.Errorf("Decode(Encode(links)) =\n%v\nwant\n%v", got, tc.links)
			}
		})
	}
}

func TestEncodeDropsIndexAndBadLinks(t *testing.T) {
	links := []Link{
		{Name: "eth0", Index: 7, MAC: mac("02:00:00:00:07:01")},
		{Name: "", MAC: mac("02:00:00:00:07:02")},
		{Name: "abcdefghijklmnop", MAC: mac("02:00:00:00:07:03")},
		{Name: "ib0", MAC: make([]byte, 20)},
		{Name: "eth1", MAC: mac("02:00:00:00:07:05"), Prefixes: []netip.Prefix{{}, netip.MustParsePrefix("192.0.2.7/24")}},
	}
	got, truncated, err := Decode(Encode(links, metaMaxSize))
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{
		{Name: "eth0", MAC: mac("02:00:00:00:07:01")},
		{Name: "eth1", MAC: mac("02:00:00:00:07:05"), Prefixes: prefixes("192.0.2.0/24")},
	}
	if truncated || !reflect.DeepEqual(got, want) {
		t.Errorf("Decode(Encode(links)) = %v, truncated %v; want %v, not truncated", got, truncated, want)
	}
}

// manyLinks returns n links with two prefixes each, 31 bytes encoded.
func manyLinks(n int) []Link {
	var links []Link
	for i := range n {
		links = append(links, Link{
			Name:     fmt.Sprintf("vlan%d", 1000+i),
			MAC:      mac(fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)),
			Prefixes: prefixes(fmt.Sprintf("192.0.%d.0/24", i%256), fmt.Sprintf("2001:db8:%x::/64", i)),
		})
	}
	return links
}

func TestEncodeTruncates(t *testing.T) {
	full := Encode(manyLinks(3), metaMaxSize)
	tests := []struct {
		name          string
		links         []Link
		limit         int
		wantTruncated bool
		wantLinks     int
		// wantLast is how many prefixes the last decoded link keeps; -1 for all of them.
		wantLast int
	}{
		{name: "many links at memberlist's limit", links: manyLinks(100), limit: metaMaxSize, wantTruncated: true, wantLinks: 16, wantLast: -1},
		{name: "exactly the limit", links: manyLinks(3), limit: len(full), wantLinks: 3, wantLast: -1},
		{name: "one byte short: the last prefix goes", links: manyLinks(3), limit: len(full) - 1, wantTruncated: true, wantLinks: 3, wantLast: 1},
		{name: "room for the last link's header only", links: manyLinks(3), limit: len(full) - 15, wantTruncated: true, wantLinks: 3, wantLast: 0},
		{name: "no room for the last link's header", links: manyLinks(3), limit: len(full) - 16, wantTruncated: true, wantLinks: 2, wantLast: -1},
		{name: "header only", links: manyLinks(3), limit: 2, wantTruncated: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := Encode(tc.links, tc.limit)
			if len(b) > tc.limit {
				t.Fatalf("%d bytes, limit %d", len(b), tc.limit)
			}
			got, truncated, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if truncated != tc.wantTruncated {
				t.Errorf("truncated = %v, want %v", truncated, tc.wantTruncated)
			}
			for i, l := range got {
				want := tc.links[i]
				want.Index = 0
				if i == len(got)-1 && tc.wantLast >= 0 {
					want.Prefixes = want.Prefixes[:tc.wantLast]
					if tc.wantLast == 0 {
						want.Prefixes = nil
					}
				}
				if !reflect.DeepEqual(l, want) {
					t.Errorf("link %d = %v, want %v", i, l, want)
				}
			}
			if len(got) != tc.wantLinks {
				t.Errorf("%d links decoded, want %d", len(got), tc.wantLinks)
			}
		})
	}
}

func TestEncodeKeepsAtMost255Prefixes(t *testing.T) {
	l := Link{Name: "eth0", MAC: mac("02:00:00:00:07:01")}
	for i := range 300 {
		l.Prefixes = append(l.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	got, truncated, err := Decode(Encode([]Link{l, {Name: "eth1", MAC: mac("02:00:00:00:07:02")}}, 4096))
	if err != nil {
		t.Fatal(err)
	}
	if !truncated || len(got) != 2 || !reflect.DeepEqual(got[0].Prefixes, l.Prefixes[:255]) || got[1].Name != "eth1" {
		t.Errorf("got %d links, truncated %v, first with %d prefixes; want 2, true, 255", len(got), truncated, len(got[0].Prefixes))
	}
}

func TestEncodeBelowHeader(t *testing.T) {
	for _, limit := range []int{-1, 0, 1} {
		if b := Encode(manyLinks(1), limit); b != nil {
			t.Errorf("Encode(limit %d) = %x, want nil", limit, b)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	link := "0465746830" + "020000000701" // "eth0", MAC
	tests := []struct {
		name string
		hex  string
	}{
		{name: "empty", hex: ""},
		{name: "version only", hex: "01"},
		{name: "version 0", hex: "0000"},
		{name: "version 2", hex: "0200"},
		{name: "unknown flag", hex: "0102"},
		{name: "name length 0", hex: "0100" + "00" + "020000000701" + "00"},
		{name: "name length 16", hex: "0100" + "10" + "61616161616161616161616161616161" + "020000000701" + "00"},
		{name: "name past the end", hex: "0100" + "0565746830"},
		{name: "MAC short", hex: "0100" + "0465746830" + "0200000007"},
		{name: "no prefix count", hex: "0100" + link},
		{name: "prefix missing", hex: "0100" + link + "01"},
		{name: "family missing length", hex: "0100" + link + "01" + "04"},
		{name: "unknown family", hex: "0100" + link + "01" + "05" + "00"},
		{name: "IPv4 length 33", hex: "0100" + link + "01" + "04" + "21" + "c0000201ff"},
		{name: "IPv6 length 129", hex: "0100" + link + "01" + "06" + "81" + "20010db8000000000000000000000001ff"},
		{name: "address short", hex: "0100" + link + "01" + "04" + "18" + "c000"},
		{name: "bits past the prefix length", hex: "0100" + link + "01" + "04" + "16" + "c00002"},
		{name: "trailing byte", hex: "0100" + link + "00" + "04"},
		{name: "trailing partial link", hex: "0100" + link + "00" + "0465746831"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			if links, _, err := Decode(b); err == nil {
				t.Errorf("Decode(%s) = %v, want an error", tc.hex, links)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, metaMaxSize))
	f.Add(Encode(manyLinks(2), metaMaxSize))
	f.Add(Encode(manyLinks(100), metaMaxSize))
	f.Add(Encode([]Link{{Name: "eth0", MAC: mac("02:00:00:00:07:01"), Prefixes: prefixes("0.0.0.0/0", "192.0.2.1/32", "::/0", "2001:db8::1/128")}}, metaMaxSize))
	f.Add([]byte{1, 0, 15})
	f.Add([]byte{1, 1, 1, 'a', 2, 0, 0, 0, 7, 1, 1, 6, 128})
	f.Fuzz(func(t *testing.T, b []byte) {
		links, truncated, err := Decode(b)
		if err != nil {
			return
		}
		want := bytes.Clone(b)
		want[1] &^= flagTruncated // the links alone do not say they were cut
		if got := Encode(links, len(b)); !bytes.Equal(got, want) {
			t.Fatalf("Encode(Decode(%x)) = %x (truncated %v)", b, got, truncated)
		}
	})
}
