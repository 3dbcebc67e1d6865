package bfd

import "testing"

func TestParse(t *testing.T) {
	good := packet{state: Up, mult: 3, myDisc: 7, yourDisc: 9, desiredTx: 300000, requiredRx: 300000, poll: true}
	if got, ok := parse(good.marshal()); !ok || got != good {
		t.Fatalf("round trip: %+v %v, want %+v", got, ok, good)
	}
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
	}{
		{"short", func(b []byte) []byte { return b[:23] }},
		{"version 0", func(b []byte) []byte { b[0] &^= 0xe0; return b }},
		{"length beyond the packet", func(b []byte) []byte { b[3] = 40; return b }},
		{"length too small", func(b []byte) []byte { b[3] = 20; return b }},
		{"authentication", func(b []byte) []byte { b[1] |= 0x04; return b }},
		{"multipoint", func(b []byte) []byte { b[1] |= 0x01; return b }},
		{"no multiplier", func(b []byte) []byte { b[2] = 0; return b }},
		{"no discriminator", func(b []byte) []byte { copy(b[4:8], []byte{0, 0, 0, 0}); return b }},
		{"Up without your discriminator", func(b []byte) []byte { copy(b[8:12], []byte{0, 0, 0, 0}); return b }},
		{"poll and final", func(b []byte) []byte { b[1] |= 0x10; return b }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, ok := parse(tc.edit(good.marshal())); ok {
				t.Errorf("accepted %+v", p)
			}
		})
	}
	down := packet{state: Down, mult: 3, myDisc: 7}
	if _, ok := parse(down.marshal()); !ok {
		t.Error("Down without your discriminator refused")
	}
}

// FuzzParse: any bytes are read without panic, and what is accepted marshals back the same.
func FuzzParse(f *testing.F) {
	f.Add((packet{state: Up, mult: 3, myDisc: 1, yourDisc: 2, desiredTx: 300000, requiredRx: 300000}).marshal())
	f.Add((packet{state: Down, mult: 3, myDisc: 1}).marshal())
	f.Add([]byte{0x20, 0xc0, 3, 24})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parse(b)
		if !ok {
			return
		}
		if q, ok := parse(p.marshal()); !ok || q != p {
			t.Fatalf("%x: %+v does not round-trip (%+v %v)", b, p, q, ok)
		}
	})
}
