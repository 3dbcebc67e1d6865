package app

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipcast/vipcast/speaker/internal/host"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int // key length; 0: an error
	}{
		{"base64 of 32 bytes", "dmlwY2FzdC1sYWItZ29zc2lwLWtleS0zMi1ieXRlcyE=\n", 32},
		{"base64 of 16 bytes", "MDEyMzQ1Njc4OWFiY2RlZg==", 16},
		{"raw 24 bytes", "0123456789abcdef01234567", 24},
		{"raw 32 bytes ending in a space byte", "0123456789abcdef0123456789abcde ", 32},
		{"base64 with a newline", "MDEyMzQ1Njc4OWFiY2RlZg==\n", 16},
		{"too short", "secret", 0},
		{"base64 of 7 bytes", "MDEyMzQ1Ng==", 0},
		{"empty", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := parseKey([]byte(tc.in))
			switch {
			case tc.want == 0 && err == nil:
				t.Errorf("accepted a %d-byte key", len(k))
			case tc.want != 0 && (err != nil || len(k) != tc.want):
				t.Errorf("got %d bytes, %v; want %d", len(k), err, tc.want)
			}
		})
	}
}

// FuzzParseKey: any file content gives a usable key or an error that does not repeat it.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"dmlwY2FzdC1sYWItZ29zc2lwLWtleS0zMi1ieXRlcyE=", "0123456789abcdef", "", "====", "a\x00b"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := parseKey(b)
		if err != nil {
			if text := strings.TrimSpace(string(b)); len(text) >= 8 && strings.Contains(err.Error(), text) {
				t.Fatalf("the error repeats the key: %v", err)
			}
			return
		}
		if !validKeyLen(len(k)) {
			t.Fatalf("a %d-byte key", len(k))
		}
	})
}

func TestMembersChanged(t *testing.T) {
	cases := []struct {
		name        string
		before, now map[string]bool
		want        bool
	}{
		{"first plan", nil, map[string]bool{"a": true}, true},
		{"same", map[string]bool{"a": true, "b": true}, map[string]bool{"b": true, "a": true}, false},
		{"one joined", map[string]bool{"a": true}, map[string]bool{"a": true, "b": true}, true},
		{"one left", map[string]bool{"a": true, "b": true}, map[string]bool{"a": true}, true},
		{"one replaced", map[string]bool{"a": true, "b": true}, map[string]bool{"a": true, "c": true}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := membersChanged(tc.before, tc.now); got != tc.want {
				t.Errorf("membersChanged = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMeta(t *testing.T) {
	links := []host.Link{{Name: "eth0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0x11}, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}
	m := decodeMeta(encodeMeta(10*time.Second, links))
	if m.hold != 10*time.Second || !m.complete || len(m.links) != 1 || m.links[0].Name != "eth0" {
		t.Errorf("round trip: %+v", m)
	}
	if m := decodeMeta(encodeMeta(0, nil)); m.hold != 0 || !m.complete || len(m.links) != 0 {
		t.Errorf("no hold, no links: %+v", m)
	}
	for _, b := range [][]byte{nil, {2, 0, 0, 0, 0}, {1, 0, 0}, append([]byte{1, 0, 0, 0, 1}, 9, 9, 9)} {
		if m := decodeMeta(b); m.complete || m.hold != 0 && len(b) < metaHeader {
			t.Errorf("%v read as %+v", b, m)
		}
	}
}

// FuzzDecodeMeta: no metadata a peer sends can crash the speaker.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(time.Second, []host.Link{{Name: "eth0", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := decodeMeta(b)
		if m.complete && len(b) < metaHeader {
			t.Fatalf("%v read as complete", b)
		}
	})
}
