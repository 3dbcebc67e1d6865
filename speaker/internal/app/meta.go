package app

import (
	"encoding/binary"
	"time"

	"github.com/vipcast/vipcast/speaker/internal/host"
	"github.com/vipcast/vipcast/speaker/internal/membership"
)

// What a speaker publishes in its memberlist metadata:
//
//	version (1) | restart hold in milliseconds (4, big endian; 0: none) | host.Encode(links)
//
// The hold is a duration, not a time, so the nodes' clocks need not agree: the others count
// it from when they see the speaker go.
const (
	metaVersion = 1
	metaHeader  = 5
)

// encodeMeta packs the restart hold and the links, within memberlist's limit.
func encodeMeta(hold time.Duration, links []host.Link) []byte {
	b := make([]byte, metaHeader, membership.MetaMaxSize)
	b[0] = metaVersion
	binary.BigEndian.PutUint32(b[1:], uint32(min(hold.Milliseconds(), 1<<32-1)))
	return append(b, host.Encode(links, membership.MetaMaxSize-metaHeader)...)
}

// nodeMeta is a member's metadata, read.
type nodeMeta struct {
	hold  time.Duration
	links []host.Link
	// complete: the links are all there (not truncated, not unreadable).
	complete bool
}

// decodeMeta reads a member's metadata; anything malformed reads as no hold and unknown links.
func decodeMeta(b []byte) nodeMeta {
	if len(b) < metaHeader || b[0] != metaVersion {
		return nodeMeta{}
	}
	m := nodeMeta{hold: time.Duration(binary.BigEndian.Uint32(b[1:])) * time.Millisecond}
	links, truncated, err := host.Decode(b[metaHeader:])
	if err == nil {
		m.links, m.complete = links, !truncated
	}
	return m
}
