package bgp

import (
	"context"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// BenchmarkStateAt10000 reads the session states of a speaker that announces 10,000 routes to
// one established session, with and without the advertised counts, and measures Update of
// one prefix at that size.
func BenchmarkStateAt10000(b *testing.B) {
	rcv := newReceiverB(b, "127.0.0.4", 17903, 64513)
	s, err := New(logr.Discard(), netip.MustParseAddr("127.0.0.1"), 64513, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background(), false)
	ctx := context.Background()
	sessions := []Session{{Name: "a", Address: rcv.addr, Port: rcv.port, MyASN: 64513, PeerASN: 64512, Source: netip.MustParseAddr("127.0.0.1"), ConnectRetry: time.Second}}
	var routes []Route
	for i := range 10000 {
		routes = append(routes, Route{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32), Peers: []string{"a"}})
	}
	if err := s.Apply(ctx, sessions, routes); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st := s.State(ctx, true)
		if len(st) == 1 && st[0].Established && st[0].Advertised == 10000 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("not settled: %+v", st)
		}
	}
	b.Run("counts", func(b *testing.B) {
		for b.Loop() {
			s.State(ctx, true)
		}
	})
	b.Run("no counts", func(b *testing.B) {
		for b.Loop() {
			s.State(ctx, false)
		}
	})
	b.Run("update one", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), 32)
			if err := s.Update(ctx, []Route{{Prefix: p, Peers: []string{"a"}, Communities: []string{"65000:" + strconv.Itoa(i%3)}}}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
