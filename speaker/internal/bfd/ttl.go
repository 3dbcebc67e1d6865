package bfd

import (
	"encoding/binary"
	"errors"
	"net"
	"syscall"
)

// receiveTTL asks the kernel for the TTL (IPv4) and hop limit (IPv6) of every packet c
// receives; on a dual-stack socket both apply.
func receiveTTL(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		v4 := syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVTTL, 1)
		v6 := syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVHOPLIMIT, 1)
		if v4 != nil && v6 != nil {
			serr = errors.Join(v4, v6)
		}
	})
	return errors.Join(err, serr)
}

// ttl reads the TTL or hop limit from a packet's control messages (0 when there is none).
func ttl(oob []byte) int {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		if (m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_TTL) ||
			(m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_HOPLIMIT) {
			return int(int32(nativeEndian.Uint32(m.Data[:4])))
		}
	}
	return 0
}

// nativeEndian reads control message integers (host order).
var nativeEndian = binary.NativeEndian
