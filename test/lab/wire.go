package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The kinds of Claim.
const (
	// ClaimReply is an ARP reply to someone's request.
	ClaimReply = "reply"
	// ClaimGratuitous is an ARP packet sent unsolicited: a request whose sender is the
	// address, or a reply sent to everyone or naming the address as its own target.
	ClaimGratuitous = "gratuitous"
	// ClaimNA is a neighbour advertisement, solicited or not.
	ClaimNA = "na"
)

// Claim is one frame on the wire that says addr is at MAC.
type Claim struct {
	// At is when the watcher read the frame.
	At time.Time
	// MAC is the Ethernet address the frame gives for addr, as 02:00:00:00:00:11.
	MAC string
	// Kind is ClaimReply, ClaimGratuitous or ClaimNA.
	Kind string
}

// ClaimWatch asks who has an address at a fixed rate and records every frame that claims it.
// The watcher reads raw frames, so it also sees claims nobody asked it for: gratuitous ARP,
// unsolicited advertisements and answers to other hosts that reach its port.
//
// The watcher builds and parses frames itself rather than with the mdlayher packages the
// speaker uses: it should not share the code it measures, and the linter keeps mdlayher
// inside speaker/internal/layer2.
type ClaimWatch struct {
	addr    netip.Addr
	every   time.Duration
	mac     net.HardwareAddr
	ask     []byte                     // the frame sent every `every`
	askTo   *syscall.SockaddrLinklayer // where it goes
	file    *os.File
	raw     syscall.RawConn
	start   time.Time
	stop    chan struct{}
	done    sync.WaitGroup
	once    sync.Once
	closing atomic.Bool

	mu     sync.Mutex
	asked  int
	claims []Claim
	result ClaimResult
}

const (
	// claimFrameBuffer holds any ARP or neighbour-discovery frame; longer frames are read
	// truncated, which does no harm as they claim nothing.
	claimFrameBuffer = 2048
	// claimSocketBuffer is the receive buffer asked for, so a burst of other traffic on the
	// interface does not crowd out claims (the kernel caps it at net.core.rmem_max).
	claimSocketBuffer = 4 << 20
	// claimReadPause is the pause after a failed read (an interface that went down), so the
	// reader does not spin.
	claimReadPause = 10 * time.Millisecond
)

// StartClaimWatch opens raw sockets inside network namespace netns on interface dev, asks who
// has addr every `every` (an ARP request from dev's IPv4 address for IPv4; a neighbour
// solicitation to addr's solicited-node multicast group for IPv6, from dev's link-local or
// else global address) and records every frame that claims addr: ARP packets (request or
// reply) whose sender IP is addr, and neighbour advertisements whose target is addr (MAC from
// the target link-layer address option, else the Ethernet source). Frames sent from dev's
// own MAC are never counted. Stop ends the watch.
func StartClaimWatch(netns, dev string, addr netip.Addr, every time.Duration) (*ClaimWatch, error) {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() || every <= 0 {
		return nil, fmt.Errorf("a claim watch needs an address and a positive period, not %v every %s", addr, every)
	}
	w := &ClaimWatch{addr: addr, every: every, stop: make(chan struct{})}
	if err := InNetns(netns, func() error { return w.open(dev) }); err != nil {
		if w.file != nil {
			_ = w.file.Close()
		}
		return nil, fmt.Errorf("watching claims for %s on %s in %s: %w", addr, dev, netns, err)
	}
	w.start = time.Now()
	w.done.Add(2)
	go w.read()
	go w.askEvery()
	return w, nil
}

// open finds dev and its source address and opens the socket; it runs inside the namespace.
func (w *ClaimWatch) open(dev string) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return err
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("interface %s has no Ethernet address", dev)
	}
	w.mac = ifi.HardwareAddr
	src, err := askSource(ifi, w.addr)
	if err != nil {
		return err
	}
	var dst net.HardwareAddr
	w.ask, dst = askFrame(w.mac, src, w.addr)
	w.askTo = &syscall.SockaddrLinklayer{
		Protocol: htons(binary.BigEndian.Uint16(w.ask[12:14])),
		Ifindex:  ifi.Index,
		Halen:    6,
	}
	copy(w.askTo.Addr[:], dst)
	if w.file, err = openPacketSocket(ifi.Index); err != nil {
		return err
	}
	w.raw, err = w.file.SyscallConn()
	return err
}

// askSource picks the address dev asks from: its first IPv4 address for an IPv4 addr, its
// link-local address (else a global one) for IPv6. It never picks addr itself.
func askSource(ifi *net.Interface, addr netip.Addr) (netip.Addr, error) {
	list, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	var v4, linkLocal, global netip.Addr
	for _, a := range list {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if ip = ip.Unmap(); !ok || ip == addr {
			continue
		}
		switch {
		case ip.Is4() && !v4.IsValid():
			v4 = ip
		case ip.Is6() && ip.IsLinkLocalUnicast() && !linkLocal.IsValid():
			linkLocal = ip
		case ip.Is6() && ip.IsGlobalUnicast() && !global.IsValid():
			global = ip
		}
	}
	for _, a := range []netip.Addr{v4, linkLocal, global} {
		if a.IsValid() && a.Is4() == addr.Is4() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no address to ask for %s from", ifi.Name, addr)
}

// openPacketSocket opens a non-blocking AF_PACKET socket that reads every frame on one
// interface, in both directions, as an *os.File so that Go's poller serves it and Close
// wakes a pending read.
func openPacketSocket(ifindex int) (*os.File, error) {
	// Protocol 0 receives nothing until the bind below, so no other interface's frames slip in.
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening a packet socket: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, claimSocketBuffer); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("sizing the packet socket: %w", err)
	}
	// Each frame carries the time the kernel received it (recvFrame).
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("asking for receive times: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("binding the packet socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "packet"), nil
}

// htons puts a 16-bit number in network byte order, as socket addresses hold protocols.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

func (w *ClaimWatch) askEvery() {
	defer w.done.Done()
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		if w.send() == nil {
			w.mu.Lock()
			w.asked++
			w.mu.Unlock()
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

func (w *ClaimWatch) send() error {
	var sendErr error
	err := w.raw.Write(func(fd uintptr) bool {
		sendErr = syscall.Sendto(int(fd), w.ask, 0, w.askTo)
		return !errors.Is(sendErr, syscall.EAGAIN)
	})
	if err != nil {
		return err
	}
	return sendErr
}

func (w *ClaimWatch) read() {
	defer w.done.Done()
	readFrames(w.raw, &w.closing, func(frame []byte, at time.Time) {
		if c, ok := claimIn(frame, w.addr, w.mac); ok {
			c.At = at
			w.mu.Lock()
			w.claims = append(w.claims, c)
			w.mu.Unlock()
		}
	})
}

// readFrames hands every incoming frame read from raw, and when it arrived (recvFrame), to handle until
// a read fails while closing is set; other read errors pause and retry.
func readFrames(raw syscall.RawConn, closing *atomic.Bool, handle func(frame []byte, at time.Time)) {
	buf := make([]byte, claimFrameBuffer)
	oob := make([]byte, syscall.CmsgSpace(16))
	for {
		n, outgoing, at, err := recvFrame(raw, buf, oob)
		if err != nil {
			if closing.Load() {
				return
			}
			time.Sleep(claimReadPause)
			continue
		}
		if !outgoing {
			handle(buf[:n], at)
		}
	}
}

// Stop ends the watch: it closes the socket, waits for the reader and the asker, and returns
// what was seen, claims in the order they were read. Calling it again returns the same result.
func (w *ClaimWatch) Stop() ClaimResult {
	w.once.Do(func() {
		close(w.stop)
		w.closing.Store(true)
		_ = w.file.Close()
		w.done.Wait()
		w.mu.Lock()
		defer w.mu.Unlock()
		w.result = ClaimResult{Addr: w.addr, Start: w.start, End: time.Now(), Every: w.every, Asked: w.asked, Claims: slices.Clone(w.claims)}
	})
	return w.result
}

// ClaimResult is what a claim watch saw.
type ClaimResult struct {
	// Addr is the address watched.
	Addr netip.Addr
	// Start and End bound the watch.
	Start, End time.Time
	// Every is the period of the questions and the length of a slot.
	Every time.Duration
	// Asked counts the questions sent (a question that could not be sent is not counted).
	Asked int
	// Claims are the frames that claimed Addr, in the order read.
	Claims []Claim
}

// Slot is a window of length Every in which two or more MACs claimed the address.
type Slot struct {
	// At is where the window starts.
	At time.Time
	// MACs are the distinct MACs that claimed the address in it, sorted.
	MACs []string
}

// Span is a run of consecutive claims by one MAC.
type Span struct {
	MAC         string
	First, Last time.Time
	Claims      int
}

// inOrder is the claims sorted by time (a copy when they were not).
func (r ClaimResult) inOrder() []Claim {
	byTime := func(a, b Claim) int { return a.At.Compare(b.At) }
	if slices.IsSortedFunc(r.Claims, byTime) {
		return r.Claims
	}
	c := slices.Clone(r.Claims)
	slices.SortStableFunc(c, byTime)
	return c
}

// TwoMACSlots lists the slots (consecutive windows of length Every from Start) in which two
// or more distinct MACs claimed the address, in time order. Claims before Start belong to
// no slot.
func (r ClaimResult) TwoMACSlots() []Slot {
	if r.Every <= 0 {
		return nil
	}
	bySlot := map[int64]map[string]bool{}
	for _, c := range r.Claims {
		if c.At.Before(r.Start) {
			continue
		}
		k := int64(c.At.Sub(r.Start) / r.Every)
		if bySlot[k] == nil {
			bySlot[k] = map[string]bool{}
		}
		bySlot[k][c.MAC] = true
	}
	var out []Slot
	for _, k := range slices.Sorted(maps.Keys(bySlot)) {
		if macs := bySlot[k]; len(macs) >= 2 {
			out = append(out, Slot{At: r.Start.Add(time.Duration(k) * r.Every), MACs: slices.Sorted(maps.Keys(macs))})
		}
	}
	return out
}

// ByMAC counts the claims of each MAC.
func (r ClaimResult) ByMAC() map[string]int {
	m := map[string]int{}
	for _, c := range r.Claims {
		m[c.MAC]++
	}
	return m
}

// Spans lists the runs of consecutive claims by one MAC, in time order: a hand-over from A
// to B with no overlap is two spans, and a flapping owner shows as many.
func (r ClaimResult) Spans() []Span {
	var out []Span
	for _, c := range r.inOrder() {
		if n := len(out); n > 0 && out[n-1].MAC == c.MAC {
			out[n-1].Last = c.At
			out[n-1].Claims++
			continue
		}
		out = append(out, Span{MAC: c.MAC, First: c.At, Last: c.At, Claims: 1})
	}
	return out
}

// LongestSilence is the longest interval without any claim between Start and End,
// counting the stretches from Start to the first claim and from the last claim to End.
func (r ClaimResult) LongestSilence() time.Duration {
	var longest time.Duration
	last := r.Start
	for _, c := range r.inOrder() {
		if c.At.Before(last) {
			continue
		}
		if c.At.After(r.End) {
			break
		}
		longest = max(longest, c.At.Sub(last))
		last = c.At
	}
	return max(longest, r.End.Sub(last))
}

// String sums the watch up on one line for a test log.
func (r ClaimResult) String() string {
	by := r.ByMAC()
	var who []string
	for _, mac := range slices.Sorted(maps.Keys(by)) {
		who = append(who, fmt.Sprintf("%s=%d", mac, by[mac]))
	}
	if len(who) == 0 {
		who = []string{"nobody"}
	}
	return fmt.Sprintf("%s: %d claims by %s to %d questions every %s over %s; %d spans, longest silence %s, %d slots with two MACs",
		r.Addr, len(r.Claims), strings.Join(who, " "), r.Asked, r.Every, r.End.Sub(r.Start).Round(time.Millisecond),
		len(r.Spans()), r.LongestSilence().Round(100*time.Microsecond), len(r.TwoMACSlots()))
}

// Frame layouts (RFC 826, RFC 8200, RFC 4861).
const (
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	ethHeaderLen  = 14
	ethMinFrame   = 60

	arpHardwareEthernet = 1
	arpLen              = 28
	arpRequest          = 1
	arpReply            = 2

	ipv6HeaderLen    = 40
	protoICMPv6      = 58
	ndHopLimit       = 255
	ndMessageLen     = 24 // type, code, checksum, flags or reserved, target
	icmpNeighborSol  = 135
	icmpNeighborAdv  = 136
	ndOptSourceLLA   = 1
	ndOptTargetLLA   = 2
	ndOptUnit        = 8
	ethAddrOptionLen = 8
)

var ethBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// claimIn reads one Ethernet frame and tells whether it claims addr, and for which MAC (At
// is left for the caller). Frames sent from own, the watcher's MAC, claim nothing; a frame
// from another host that gives own as addr's MAC is a claim like any other.
func claimIn(frame []byte, addr netip.Addr, own net.HardwareAddr) (Claim, bool) {
	if len(frame) < ethHeaderLen || bytes.Equal(frame[6:12], own) {
		return Claim{}, false
	}
	dst, src, payload := frame[0:6], frame[6:12], frame[ethHeaderLen:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeARP:
		return arpClaim(dst, payload, addr)
	case etherTypeIPv6:
		return naClaim(src, payload, addr)
	}
	return Claim{}, false
}

func arpClaim(ethDst, p []byte, addr netip.Addr) (Claim, bool) {
	if !addr.Is4() || len(p) < arpLen || binary.BigEndian.Uint16(p[0:2]) != arpHardwareEthernet ||
		binary.BigEndian.Uint16(p[2:4]) != etherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		return Claim{}, false
	}
	op := binary.BigEndian.Uint16(p[6:8])
	sender, target := netip.AddrFrom4([4]byte(p[14:18])), netip.AddrFrom4([4]byte(p[24:28]))
	if sender != addr {
		return Claim{}, false
	}
	c := Claim{MAC: net.HardwareAddr(p[8:14]).String()}
	switch {
	case op == arpRequest, op == arpReply && (target == sender || bytes.Equal(ethDst, ethBroadcast)):
		c.Kind = ClaimGratuitous
	case op == arpReply:
		c.Kind = ClaimReply
	default:
		return Claim{}, false
	}
	return c, true
}

func naClaim(ethSrc, p []byte, addr netip.Addr) (Claim, bool) {
	if !addr.Is6() || len(p) < ipv6HeaderLen+ndMessageLen || p[0]>>4 != 6 || p[6] != protoICMPv6 {
		return Claim{}, false
	}
	m := p[ipv6HeaderLen:]
	if n := int(binary.BigEndian.Uint16(p[4:6])); n < len(m) {
		m = m[:n]
	}
	if len(m) < ndMessageLen || m[0] != icmpNeighborAdv || m[1] != 0 || netip.AddrFrom16([16]byte(m[8:24])) != addr {
		return Claim{}, false
	}
	mac := net.HardwareAddr(ethSrc)
	for opts := m[ndMessageLen:]; len(opts) >= 2; {
		n := int(opts[1]) * ndOptUnit
		if n == 0 || n > len(opts) {
			break
		}
		if opts[0] == ndOptTargetLLA && n == ethAddrOptionLen {
			mac = net.HardwareAddr(opts[2:8])
		}
		opts = opts[n:]
	}
	return Claim{MAC: mac.String(), Kind: ClaimNA}, true
}

// askFrame builds the question for addr, from MAC mac and address src, and says where it
// goes: a broadcast ARP request for IPv4, a neighbour solicitation to the solicited-node
// group for IPv6.
func askFrame(mac net.HardwareAddr, src, addr netip.Addr) ([]byte, net.HardwareAddr) {
	if addr.Is4() {
		return arpFrame(arpRequest, mac, ethBroadcast, src, make(net.HardwareAddr, 6), addr), ethBroadcast
	}
	a := addr.As16()
	group := netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]})
	dst := net.HardwareAddr{0x33, 0x33, 0xff, a[13], a[14], a[15]}
	return ndFrame(icmpNeighborSol, 0, mac, dst, src, group, addr, linkAddrOption(ndOptSourceLLA, mac)), dst
}

// arpFrame builds an ARP packet from sha (also the Ethernet source) in an Ethernet frame.
func arpFrame(op uint16, sha, ethDst net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := make([]byte, 0, ethMinFrame)
	b = append(append(b, ethDst...), sha...)
	b = binary.BigEndian.AppendUint16(b, etherTypeARP)
	b = binary.BigEndian.AppendUint16(b, arpHardwareEthernet)
	b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
	b = append(b, 6, 4)
	b = binary.BigEndian.AppendUint16(b, op)
	s, t := spa.As4(), tpa.As4()
	b = append(append(b, sha...), s[:]...)
	b = append(append(b, tha...), t[:]...)
	return append(b, make([]byte, ethMinFrame-len(b))...)
}

// ndFrame builds a neighbour-discovery message (flags are the 32 bits after the checksum) in
// an IPv6 packet in an Ethernet frame.
func ndFrame(typ uint8, flags uint32, ethSrc, ethDst net.HardwareAddr, src, dst, target netip.Addr, opts []byte) []byte {
	m := []byte{typ, 0, 0, 0}
	m = binary.BigEndian.AppendUint32(m, flags)
	t := target.As16()
	m = append(append(m, t[:]...), opts...)
	binary.BigEndian.PutUint16(m[2:4], icmpv6Checksum(src, dst, m))

	b := append(append([]byte{}, ethDst...), ethSrc...)
	b = binary.BigEndian.AppendUint16(b, etherTypeIPv6)
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
	b = append(b, protoICMPv6, ndHopLimit)
	s, d := src.As16(), dst.As16()
	b = append(append(b, s[:]...), d[:]...)
	return append(b, m...)
}

// linkAddrOption is a source or target link-layer address option.
func linkAddrOption(typ uint8, mac net.HardwareAddr) []byte {
	return append([]byte{typ, ethAddrOptionLen / ndOptUnit}, mac...)
}

// icmpv6Checksum is the checksum of an ICMPv6 message over the IPv6 pseudo-header; a message
// whose checksum field is right sums to zero.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	sum += uint32(len(msg)) + protoICMPv6
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
