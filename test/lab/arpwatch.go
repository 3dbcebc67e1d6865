package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ARPWatch follows many IPv4 addresses at once from one interface: it records the frames
// that claim an address of some prefixes (gratuitous ARP, answers; read as a ClaimWatch
// reads them) and asks, in turn, for the addresses it is told to ask for. Where a ClaimWatch
// keeps every claim of one address, an ARPWatch keeps, per address, the first claim of each
// MAC since the address was last forgotten: enough to tell when tens of thousands of
// addresses were first announced, or when each of a sample moved to another MAC.
type ARPWatch struct {
	within  []netip.Prefix
	every   time.Duration
	perTick int
	mac     net.HardwareAddr
	src     netip.Addr
	ifindex int
	file    *os.File
	raw     syscall.RawConn
	stop    chan struct{}
	done    sync.WaitGroup
	once    sync.Once
	closing atomic.Bool

	mu     sync.Mutex
	first  map[netip.Addr]map[string]Claim
	queue  []netip.Addr          // addresses to ask for, in turn
	ignore map[netip.Addr]string // asked-for address → the MAC whose claims do not end the asking
	asked  int
}

// StartARPWatch opens a raw socket inside network namespace netns on interface dev and
// records every claim for an IPv4 address within one of the prefixes. Every `every` it asks
// for up to perTick of the addresses given to Ask (0: all of them), the next ones in turn, from
// dev's IPv4 address. Stop ends the watch.
func StartARPWatch(netns, dev string, within []netip.Prefix, every time.Duration, perTick int) (*ARPWatch, error) {
	if len(within) == 0 || every <= 0 || perTick < 0 {
		return nil, fmt.Errorf("an ARP watch needs prefixes and a positive period, not %v every %s", within, every)
	}
	w := &ARPWatch{within: within, every: every, perTick: perTick, stop: make(chan struct{}),
		first: map[netip.Addr]map[string]Claim{}, ignore: map[netip.Addr]string{}}
	if err := InNetns(netns, func() error { return w.open(dev) }); err != nil {
		if w.file != nil {
			_ = w.file.Close()
		}
		return nil, fmt.Errorf("watching ARP on %s in %s: %w", dev, netns, err)
	}
	w.done.Add(2)
	go w.read()
	go w.askEvery()
	return w, nil
}

func (w *ARPWatch) open(dev string) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return err
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("interface %s has no Ethernet address", dev)
	}
	w.mac, w.ifindex = ifi.HardwareAddr, ifi.Index
	// Any IPv4 address outside the watched prefixes will do as the asker's.
	if w.src, err = askSource(ifi, netip.IPv4Unspecified()); err != nil {
		return err
	}
	if w.file, err = openPacketSocket(ifi.Index); err != nil {
		return err
	}
	w.raw, err = w.file.SyscallConn()
	return err
}

// Ask asks for each address in turn until a MAC other than ignore ("": any MAC) has claimed it.
func (w *ARPWatch) Ask(ignore string, addrs ...netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range addrs {
		if _, queued := w.ignore[a]; !queued {
			w.queue = append(w.queue, a)
		}
		w.ignore[a] = ignore
	}
}

// Forget drops what was recorded for the addresses: their next claims count as first ones.
func (w *ARPWatch) Forget(addrs ...netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range addrs {
		delete(w.first, a)
	}
}

// First is the earliest claim recorded for addr by a MAC other than except ("": any MAC).
func (w *ARPWatch) First(addr netip.Addr, except string) (Claim, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstLocked(addr, except)
}

func (w *ARPWatch) firstLocked(addr netip.Addr, except string) (Claim, bool) {
	var best Claim
	found := false
	for mac, c := range w.first[addr] {
		if mac != except && (!found || c.At.Before(best.At)) {
			best, found = c, true
		}
	}
	return best, found
}

// Asked is the number of questions sent so far.
func (w *ARPWatch) Asked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.asked
}

// Stop ends the watch: it closes the socket and waits for the reader and the asker. Calling
// it again does nothing; what was recorded stays readable.
func (w *ARPWatch) Stop() {
	w.once.Do(func() {
		close(w.stop)
		w.closing.Store(true)
		_ = w.file.Close()
		w.done.Wait()
	})
}

func (w *ARPWatch) read() {
	defer w.done.Done()
	readFrames(w.raw, &w.closing, func(frame []byte, at time.Time) {
		addr, c, ok := arpClaimOf(frame, w.mac)
		if !ok || !w.watches(addr) {
			return
		}
		c.At = at
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.first[addr] == nil {
			w.first[addr] = map[string]Claim{}
		}
		if _, seen := w.first[addr][c.MAC]; !seen {
			w.first[addr][c.MAC] = c
		}
	})
}

func (w *ARPWatch) watches(addr netip.Addr) bool {
	return slices.ContainsFunc(w.within, func(p netip.Prefix) bool { return p.Contains(addr) })
}

func (w *ARPWatch) askEvery() {
	defer w.done.Done()
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	for {
		for _, a := range w.nextAsks() {
			if w.send(a) == nil {
				w.mu.Lock()
				w.asked++
				w.mu.Unlock()
			}
		}
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

// nextAsks drops the answered addresses from the queue and returns the next ones to ask
// for, moving them to its end.
func (w *ARPWatch) nextAsks() []netip.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queue = slices.DeleteFunc(w.queue, func(a netip.Addr) bool {
		if _, answered := w.firstLocked(a, w.ignore[a]); answered {
			delete(w.ignore, a)
			return true
		}
		return false
	})
	n := len(w.queue)
	if w.perTick > 0 {
		n = min(n, w.perTick)
	}
	out := slices.Clone(w.queue[:n])
	w.queue = append(w.queue[n:], out...)
	return out
}

func (w *ARPWatch) send(addr netip.Addr) error {
	frame := arpFrame(arpRequest, w.mac, ethBroadcast, w.src, make(net.HardwareAddr, 6), addr)
	to := &syscall.SockaddrLinklayer{Protocol: htons(etherTypeARP), Ifindex: w.ifindex, Halen: 6}
	copy(to.Addr[:], ethBroadcast)
	var sendErr error
	err := w.raw.Write(func(fd uintptr) bool {
		sendErr = syscall.Sendto(int(fd), frame, 0, to)
		return !errors.Is(sendErr, syscall.EAGAIN)
	})
	if err != nil {
		return err
	}
	return sendErr
}

// recvFrame reads one frame from a packet socket and tells whether this host sent it and
// when the kernel received it (the socket's SO_TIMESTAMPNS; the time of the read when the
// kernel gave none). The kernel's time does not depend on how soon this process ran: on a
// busy machine a burst of frames may wait in the socket long before it is read.
func recvFrame(raw syscall.RawConn, buf, oob []byte) (n int, outgoing bool, at time.Time, err error) {
	var from syscall.Sockaddr
	var oobn int
	var recvErr error
	err = raw.Read(func(fd uintptr) bool {
		n, oobn, _, from, recvErr = syscall.Recvmsg(int(fd), buf, oob, 0)
		return !errors.Is(recvErr, syscall.EAGAIN)
	})
	at = time.Now()
	if err == nil {
		err = recvErr
	}
	if ll, ok := from.(*syscall.SockaddrLinklayer); ok {
		outgoing = ll.Pkttype == syscall.PACKET_OUTGOING
	}
	if err == nil {
		if ts, ok := kernelTime(oob[:oobn]); ok {
			at = ts
		}
	}
	return n, outgoing, at, err
}

// kernelTime finds the receive time in a frame's control messages (SCM_TIMESTAMPNS).
func kernelTime(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// arpClaimOf reads one Ethernet frame and tells whether it is an ARP packet claiming its
// sender address, which address, and for which MAC (the rules of claimIn; frames from own
// claim nothing).
func arpClaimOf(frame []byte, own net.HardwareAddr) (netip.Addr, Claim, bool) {
	const senderIP = ethHeaderLen + 14
	if len(frame) < ethHeaderLen+arpLen || binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP {
		return netip.Addr{}, Claim{}, false
	}
	addr := netip.AddrFrom4([4]byte(frame[senderIP : senderIP+4]))
	c, ok := claimIn(frame, addr, own)
	return addr, c, ok
}
