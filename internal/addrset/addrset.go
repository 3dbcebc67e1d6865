package addrset

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// Version is the first byte of every encoding this package writes.
const Version = 1

// Encode returns the encoding of the set of addrs: sorted (IPv4 first, as
// netip.Addr.Compare sorts), duplicates once, zones dropped, invalid addresses left out.
// addrs is not changed. An empty set is encoded too (three bytes).
func Encode(addrs []netip.Addr) []byte {
	sorted := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			sorted = append(sorted, a.WithZone(""))
		}
	}
	slices.SortFunc(sorted, netip.Addr.Compare)
	sorted = slices.Compact(sorted)
	v6 := len(sorted)
	for i, a := range sorted {
		if a.Is6() {
			v6 = i
			break
		}
	}
	out := make([]byte, 0, 3+len(sorted)+2*binary.MaxVarintLen64)
	out = append(out, Version)
	out = appendFamily(out, sorted[:v6])
	return appendFamily(out, sorted[v6:])
}

// appendFamily appends the count of addrs (sorted, one family), the first and then each
// address minus the one before minus one.
func appendFamily(out []byte, addrs []netip.Addr) []byte {
	out = binary.AppendUvarint(out, uint64(len(addrs)))
	var prev u128
	for i, a := range addrs {
		v := valueOf(a)
		d := v
		if i > 0 {
			d = v.sub(prev).sub(u128{lo: 1})
		}
		out = appendVarint(out, d)
		prev = v
	}
	return out
}

// Decode returns the addresses b encodes, sorted as Encode sorts them. Anything but an
// encoding Encode could have written is an error: a wrong version, a count larger than the
// bytes left could hold, a varint that is cut short, longer than it needs to be or wider
// than the family, an address past the family's last, bytes after the end.
func Decode(b []byte) ([]netip.Addr, error) {
	if len(b) == 0 {
		return nil, errors.New("addrset: empty")
	}
	if b[0] != Version {
		return nil, fmt.Errorf("addrset: version %d, want %d", b[0], Version)
	}
	d := decoder{b: b, off: 1}
	v4, err := d.family(32)
	if err != nil {
		return nil, fmt.Errorf("addrset: IPv4: %w", err)
	}
	v6, err := d.family(128)
	if err != nil {
		return nil, fmt.Errorf("addrset: IPv6: %w", err)
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("addrset: %d bytes after the addresses", len(b)-d.off)
	}
	if len(v4) == 0 {
		return v6, nil
	}
	return append(v4, v6...), nil
}

type decoder struct {
	b   []byte
	off int
}

// family reads one family's count and addresses; width is its address length in bits.
func (d *decoder) family(width int) ([]netip.Addr, error) {
	at := d.off
	n, err := d.varint()
	if err != nil {
		return nil, fmt.Errorf("count: %w", err)
	}
	// Every address takes at least one byte: a count is never trusted beyond that.
	if left := len(d.b) - d.off; n.hi != 0 || n.lo > uint64(left) {
		return nil, fmt.Errorf("count at byte %d is %s, more than the %d bytes left", at, n, left)
	}
	out := make([]netip.Addr, 0, n.lo)
	var prev u128
	for i := range n.lo {
		pos := d.off
		x, err := d.varint()
		if err != nil {
			return nil, fmt.Errorf("address %d: %w", i, err)
		}
		v := x
		if i > 0 {
			var carry uint64
			if v, carry = prev.add(x, 1); carry != 0 {
				return nil, fmt.Errorf("address %d at byte %d is past the last address", i, pos)
			}
		}
		if width == 32 && (v.hi != 0 || v.lo > 0xffffffff) {
			return nil, fmt.Errorf("address %d at byte %d is past 255.255.255.255", i, pos)
		}
		out = append(out, v.addr(width))
		prev = v
	}
	return out, nil
}

// varint reads an unsigned LEB128 number of up to 128 bits, in its shortest form.
func (d *decoder) varint() (u128, error) {
	if d.off < len(d.b) && d.b[d.off] < 0x80 {
		d.off++
		return u128{lo: uint64(d.b[d.off-1])}, nil
	}
	var x u128
	start := d.off
	for shift := 0; ; shift += 7 {
		if d.off >= len(d.b) {
			return u128{}, fmt.Errorf("varint at byte %d is cut short", start)
		}
		c := d.b[d.off]
		d.off++
		v := uint64(c & 0x7f)
		if shift >= 128 || shift > 121 && v>>(128-shift) != 0 {
			return u128{}, fmt.Errorf("varint at byte %d is wider than 128 bits", start)
		}
		x = x.or(v, shift)
		if c&0x80 == 0 {
			if c == 0 && d.off-start > 1 {
				return u128{}, fmt.Errorf("varint at byte %d is longer than it needs to be", start)
			}
			return x, nil
		}
	}
}

func appendVarint(b []byte, x u128) []byte {
	for x.hi != 0 || x.lo >= 0x80 {
		b = append(b, byte(x.lo)|0x80)
		x = u128{hi: x.hi >> 7, lo: x.lo>>7 | x.hi<<57}
	}
	return append(b, byte(x.lo))
}

// u128 is an address as a number: an IPv4 address in the low 32 bits.
type u128 struct{ hi, lo uint64 }

func valueOf(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

func (x u128) addr(width int) netip.Addr {
	if width == 32 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(x.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, borrow)
	return u128{hi, lo}
}

// add returns x+y+c and the carry out of 128 bits.
func (x u128) add(y u128, c uint64) (u128, uint64) {
	lo, carry := bits.Add64(x.lo, y.lo, c)
	hi, carry := bits.Add64(x.hi, y.hi, carry)
	return u128{hi, lo}, carry
}

// or sets the bits of v (7 at most) at shift.
func (x u128) or(v uint64, shift int) u128 {
	switch {
	case shift >= 64:
		x.hi |= v << (shift - 64)
	case shift > 57:
		x.lo |= v << shift
		x.hi |= v >> (64 - shift)
	default:
		x.lo |= v << shift
	}
	return x
}

func (x u128) String() string {
	if x.hi == 0 {
		return fmt.Sprint(x.lo)
	}
	return fmt.Sprintf("0x%x%016x", x.hi, x.lo)
}
