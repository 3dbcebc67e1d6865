package iprange

import "testing"

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"192.0.2.0/28", "192.0.2.7/24", "192.0.2.7/32", "0.0.0.0/0",
		"192.0.2.10-192.0.2.20", " 192.0.2.10 - 192.0.2.20 ", "192.0.2.20-192.0.2.10",
		"2001:db8::/124", "2001:db8::1/128", "::/0", "::/80", "2001:db8::1-2001:db8::ff",
		"192.0.2.1-2001:db8::1", "::ffff:192.0.2.0/120", "fe80::1%eth0-fe80::2%eth0",
		"", "-", "pool", "1.2.3.4", "255.255.255.255/32",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if !r.First.IsValid() || !r.Last.IsValid() {
			t.Fatalf("Parse(%q) = %v..%v: invalid address", s, r.First, r.Last)
		}
		if r.First.BitLen() != r.Last.BitLen() {
			t.Fatalf("Parse(%q) = %v..%v: mixed families", s, r.First, r.Last)
		}
		if r.Last.Less(r.First) {
			t.Fatalf("Parse(%q) = %v..%v: First > Last", s, r.First, r.Last)
		}
		if r.First.Zone() != "" || r.Last.Zone() != "" {
			t.Fatalf("Parse(%q) = %v..%v: zone kept", s, r.First, r.Last)
		}
		if r.Size() == 0 {
			t.Fatalf("Parse(%q) = %v..%v: Size() = 0", s, r.First, r.Last)
		}
		if !r.Contains(r.First) || !r.Contains(r.Last) {
			t.Fatalf("Parse(%q) = %v..%v: does not contain its own ends", s, r.First, r.Last)
		}
		str := r.String()
		back, err := Parse(str)
		if err != nil {
			t.Fatalf("Parse(%q) = %v..%v, but Parse(String() = %q): %v", s, r.First, r.Last, str, err)
		}
		if back != r {
			t.Fatalf("Parse(%q) = %v..%v, but Parse(%q) = %v..%v", s, r.First, r.Last, str, back.First, back.Last)
		}
	})
}
