package allocator

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/vipcast/vipcast/internal/iprange"
)

const (
	benchPool  = "198.18.0.0/16" // 65,536 addresses
	benchUsed  = 60000
	benchBatch = 4096 // fewer than the 5,536 free addresses
)

// benchAllocator returns an allocator over a /16 with benchUsed addresses held by as many
// Services, the free ones scattered through the pool, and the free addresses.
func benchAllocator(b *testing.B) (*Allocator, []netip.Addr) {
	b.Helper()
	a := New(snap(mkPool("bench", []string{benchPool})))
	var all []netip.Addr
	for i := range 1 << 16 {
		ips, err := a.Assign(&Request{Key: "fill/" + strconv.Itoa(i), Families: []iprange.Family{iprange.IPv4}})
		if err != nil {
			b.Fatalf("filling: %v", err)
		}
		all = append(all, ips[0])
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	perm := rnd.Perm(len(all))
	var free []netip.Addr
	for _, i := range perm[:len(all)-benchUsed] {
		a.Release("fill/" + strconv.Itoa(i))
		free = append(free, all[i])
	}
	if st := a.Stats("bench"); st.AssignedIPv4 != benchUsed {
		b.Fatalf("filled %d addresses, want %d", st.AssignedIPv4, benchUsed)
	}
	return a, free
}

func benchRequests(n int, prefix string) []*Request {
	reqs := make([]*Request, n)
	for i := range reqs {
		reqs[i] = &Request{Key: prefix + strconv.Itoa(i), Namespace: "bench", Families: []iprange.Family{iprange.IPv4}}
	}
	return reqs
}

// BenchmarkAssign gives a new Service the lowest free address of a /16 that is 60,000
// addresses full. Every benchBatch Services, they are released with the timer stopped.
func BenchmarkAssign(b *testing.B) {
	a, _ := benchAllocator(b)
	reqs := benchRequests(benchBatch, "bench/new-")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(reqs) {
			b.StopTimer()
			for _, r := range reqs {
				a.Release(r.Key)
			}
			i = 0
			b.StartTimer()
		}
		if _, err := a.Assign(reqs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAssignRelease gives a new Service an address and releases it again.
func BenchmarkAssignRelease(b *testing.B) {
	a, _ := benchAllocator(b)
	reqs := benchRequests(benchBatch, "bench/new-")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r := reqs[i%len(reqs)]
		if _, err := a.Assign(r); err != nil {
			b.Fatal(err)
		}
		a.Release(r.Key)
		i++
	}
}

// BenchmarkAssignRequestedIP gives a new Service the free address it asks for.
func BenchmarkAssignRequestedIP(b *testing.B) {
	a, free := benchAllocator(b)
	reqs := benchRequests(benchBatch, "bench/req-")
	for i, r := range reqs {
		r.RequestedIPs = []netip.Addr{free[i]}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(reqs) {
			b.StopTimer()
			for _, r := range reqs {
				a.Release(r.Key)
			}
			i = 0
			b.StartTimer()
		}
		if _, err := a.Assign(reqs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAssignExisting re-assigns a Service that already holds its address: the
// common reconcile of an unchanged Service.
func BenchmarkAssignExisting(b *testing.B) {
	a, _ := benchAllocator(b)
	reqs := benchRequests(benchBatch, "bench/old-")
	for _, r := range reqs {
		if _, err := a.Assign(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := a.Assign(reqs[i%len(reqs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
