package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// The encoding, for memberlist node metadata (at most memberlist.MetaMaxSize, 512 bytes):
//
//	version (1) | flags (bit 0: truncated)
//	per link: name length | name | MAC (6) | prefix count |
//	          per prefix: family (4 or 6) | prefix length | the ceil(length/8) leading address bytes
//
// Every byte string has at most one reading and every reading one byte string, so Decode
// accepts exactly what Encode writes.
const (
	version       = 1
	flagTruncated = 1 << 0
	headerLen     = 2
	maxNameLen    = 15 // IFNAMSIZ less the terminating NUL
	macLen        = 6
	maxPrefixes   = 255
	family4       = 4
	family6       = 6
)

// Encode packs links into at most limit bytes. When they do not fit, it keeps the longest
// run from the start: prefixes go from the end first, then the whole link, then the
// previous link's prefixes, and the truncated flag is set. A link with more than 255
// prefixes keeps the first 255 (also truncated). Links that cannot be encoded (a name
// empty or longer than 15 bytes, a MAC that is not 6 bytes) are left out. Below the two
// header bytes, Encode returns nil.
func Encode(links []Link, limit int) []byte {
	if limit < headerLen {
		return nil
	}
	b := make([]byte, headerLen, min(limit, 128))
	b[0] = version
	truncated := false
	for _, l := range links {
		if len(l.Name) == 0 || len(l.Name) > maxNameLen || len(l.MAC) != macLen {
			continue
		}
		if len(b)+1+len(l.Name)+macLen+1 > limit {
			truncated = true
			break
		}
		b = append(b, byte(len(l.Name)))
		b = append(b, l.Name...)
		b = append(b, l.MAC...)
		count := len(b)
		b = append(b, 0)
		full := true
		for _, p := range l.Prefixes {
			if !p.IsValid() {
				continue
			}
			if b[count] == maxPrefixes {
				truncated = true
				break
			}
			if len(b)+prefixLen(p) > limit {
				full = false
				break
			}
			b = appendPrefix(b, p)
			b[count]++
		}
		if !full {
			truncated = true
			break
		}
	}
	if truncated {
		b[1] |= flagTruncated
	}
	return b
}

func prefixLen(p netip.Prefix) int {
	return 2 + (p.Bits()+7)/8
}

func appendPrefix(b []byte, p netip.Prefix) []byte {
	p = p.Masked()
	family := byte(family6)
	if p.Addr().Is4() {
		family = family4
	}
	b = append(b, family, byte(p.Bits()))
	return append(b, p.Addr().AsSlice()[:(p.Bits()+7)/8]...)
}

// Decode reads what Encode wrote; truncated says the sender had more than fitted. It
// rejects anything else with an error and never panics.
func Decode(b []byte) (links []Link, truncated bool, err error) {
	if len(b) < headerLen {
		return nil, false, errors.New("short header")
	}
	if b[0] != version {
		return nil, false, fmt.Errorf("unknown version %d", b[0])
	}
	if b[1]&^flagTruncated != 0 {
		return nil, false, fmt.Errorf("unknown flags %#x", b[1])
	}
	truncated = b[1]&flagTruncated != 0
	rest := b[headerLen:]
	for len(rest) > 0 {
		var l Link
		at := len(b) - len(rest)
		if l, rest, err = decodeLink(rest); err != nil {
			return nil, false, fmt.Errorf("link %d at byte %d: %w", len(links), at, err)
		}
		links = append(links, l)
	}
	return links, truncated, nil
}

func decodeLink(b []byte) (Link, []byte, error) {
	n := int(b[0])
	if n == 0 || n > maxNameLen {
		return Link{}, nil, fmt.Errorf("name length %d not in 1..%d", n, maxNameLen)
	}
	if len(b) < 1+n+macLen+1 {
		return Link{}, nil, fmt.Errorf("%d bytes left, a link of name length %d needs %d", len(b), n, 1+n+macLen+1)
	}
	l := Link{Name: string(b[1 : 1+n]), MAC: net.HardwareAddr(append([]byte(nil), b[1+n:1+n+macLen]...))}
	count := int(b[1+n+macLen])
	b = b[1+n+macLen+1:]
	for i := range count {
		p, rest, err := decodePrefix(b)
		if err != nil {
			return Link{}, nil, fmt.Errorf("prefix %d: %w", i, err)
		}
		l.Prefixes = append(l.Prefixes, p)
		b = rest
	}
	return l, b, nil
}

func decodePrefix(b []byte) (netip.Prefix, []byte, error) {
	if len(b) < 2 {
		return netip.Prefix{}, nil, errors.New("short buffer")
	}
	maxBits := 0
	switch b[0] {
	case family4:
		maxBits = 32
	case family6:
		maxBits = 128
	default:
		return netip.Prefix{}, nil, fmt.Errorf("unknown family %d", b[0])
	}
	bits := int(b[1])
	if bits > maxBits {
		return netip.Prefix{}, nil, fmt.Errorf("prefix length %d longer than %d", bits, maxBits)
	}
	n := (bits + 7) / 8
	if len(b) < 2+n {
		return netip.Prefix{}, nil, errors.New("short buffer")
	}
	var a [16]byte
	copy(a[:], b[2:2+n])
	addr := netip.AddrFrom16(a)
	if b[0] == family4 {
		addr = netip.AddrFrom4([4]byte(a[:4]))
	}
	p := netip.PrefixFrom(addr, bits)
	if p.Masked() != p {
		return netip.Prefix{}, nil, fmt.Errorf("bits set past the prefix length in %s", p)
	}
	return p, b[2+n:], nil
}
