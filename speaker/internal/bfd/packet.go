package bfd

import "encoding/binary"

// State is a session state (RFC 5880 4.1), as on the wire.
type State uint8

// The session states.
const (
	AdminDown State = iota
	Down
	Init
	Up
)

func (s State) String() string { return [...]string{"AdminDown", "Down", "Init", "Up"}[s&3] }

// Diagnostic codes (RFC 5880 4.1) the sessions send.
const (
	diagNone         = 0
	diagTimeExpired  = 1 // Control Detection Time Expired
	diagNeighborDown = 3 // Neighbor Signaled Session Down
	diagAdminDown    = 7 // Administratively Down
)

// packetLen is a control packet without authentication.
const packetLen = 24

// packet is a BFD control packet; the intervals are in microseconds.
type packet struct {
	diag                  uint8
	state                 State
	poll, final           bool
	mult                  uint8
	myDisc, yourDisc      uint32
	desiredTx, requiredRx uint32
}

func (p packet) marshal() []byte {
	b := make([]byte, packetLen)
	b[0] = 1<<5 | p.diag&0x1f
	b[1] = uint8(p.state) << 6
	if p.poll {
		b[1] |= 0x20
	}
	if p.final {
		b[1] |= 0x10
	}
	b[2], b[3] = p.mult, packetLen
	binary.BigEndian.PutUint32(b[4:], p.myDisc)
	binary.BigEndian.PutUint32(b[8:], p.yourDisc)
	binary.BigEndian.PutUint32(b[12:], p.desiredTx)
	binary.BigEndian.PutUint32(b[16:], p.requiredRx)
	return b // Required Min Echo RX Interval 0: no echo
}

// parse reads a control packet and makes the checks of RFC 5880 6.8.6 that need no session:
// version 1, a sane length, no authentication (none is configured), not multipoint, a
// detection multiplier and a discriminator, and Your Discriminator only missing from a
// system that has not heard from us (Down or AdminDown).
func parse(b []byte) (packet, bool) {
	if len(b) < packetLen || b[0]>>5 != 1 || int(b[3]) < packetLen || int(b[3]) > len(b) || b[1]&0x04 != 0 || b[1]&0x01 != 0 {
		return packet{}, false
	}
	p := packet{diag: b[0] & 0x1f, state: State(b[1] >> 6), poll: b[1]&0x20 != 0, final: b[1]&0x10 != 0, mult: b[2],
		myDisc: binary.BigEndian.Uint32(b[4:]), yourDisc: binary.BigEndian.Uint32(b[8:]),
		desiredTx: binary.BigEndian.Uint32(b[12:]), requiredRx: binary.BigEndian.Uint32(b[16:])}
	if p.mult == 0 || p.myDisc == 0 || (p.yourDisc == 0 && p.state != Down && p.state != AdminDown) || (p.poll && p.final) {
		return packet{}, false
	}
	return p, true
}
