package allocator

import (
	"errors"
	"math"
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/iprange"
	"github.com/vipcast/vipcast/internal/poolset"
)

// --- pools ---

type poolOpt func(*v1alpha1.IPAddressPool)

func mkPool(name string, addrs []string, opts ...poolOpt) v1alpha1.IPAddressPool {
	p := v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(a))
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func noAutoAssign(p *v1alpha1.IPAddressPool) {
	f := false
	p.Spec.AutoAssign = &f
}

func avoidBuggy(p *v1alpha1.IPAddressPool) { p.Spec.AvoidBuggyIPs = true }

func terminating(p *v1alpha1.IPAddressPool) {
	now := metav1.Now()
	p.DeletionTimestamp = &now
}

func priority(n int32) poolOpt {
	return func(p *v1alpha1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: n}
	}
}

func namespaces(ns ...string) poolOpt {
	return func(p *v1alpha1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: ns}
	}
}

func snap(pools ...v1alpha1.IPAddressPool) *poolset.Snapshot { return poolset.Build(pools) }

// --- requests ---

type reqOpt func(*Request)

func mkReq(key string, opts ...reqOpt) *Request {
	r := &Request{Key: key, Namespace: "default", Families: []iprange.Family{iprange.IPv4}}
	for _, o := range opts {
		o(r)
	}
	return r
}

func fams(fs ...iprange.Family) reqOpt { return func(r *Request) { r.Families = fs } }

func policy(p Policy) reqOpt { return func(r *Request) { r.Policy = p } }

func wantIPs(ss ...string) reqOpt {
	return func(r *Request) {
		for _, s := range ss {
			r.RequestedIPs = append(r.RequestedIPs, netip.MustParseAddr(s))
		}
	}
}

func inPool(name string) reqOpt { return func(r *Request) { r.Pool = name } }

func inNamespace(ns string) reqOpt { return func(r *Request) { r.Namespace = ns } }

func current(ss ...string) reqOpt {
	return func(r *Request) {
		for _, s := range ss {
			r.Current = append(r.Current, netip.MustParseAddr(s))
		}
	}
}

func share(key string, ports ...int32) reqOpt {
	return func(r *Request) {
		r.SharingKey = key
		for _, p := range ports {
			r.Ports = append(r.Ports, Port{Protocol: "TCP", Port: p})
		}
	}
}

func udp(ports ...int32) reqOpt {
	return func(r *Request) {
		for _, p := range ports {
			r.Ports = append(r.Ports, Port{Protocol: "UDP", Port: p})
		}
	}
}

func local(selector string) reqOpt {
	return func(r *Request) { r.Local, r.Selector = true, selector }
}

var (
	v4   = fams(iprange.IPv4)
	v6   = fams(iprange.IPv6)
	v4v6 = fams(iprange.IPv4, iprange.IPv6)
	v6v4 = fams(iprange.IPv6, iprange.IPv4)
)

// --- checks ---

func addrStrings(ips []netip.Addr) []string {
	out := []string{}
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	var aerr *Error
	if errors.As(err, &aerr) {
		return aerr.Reason
	}
	return "non-allocator error: " + err.Error()
}

// step is one call on the allocator in a scenario.
type step struct {
	assign   *Request
	release  string
	setPools []v1alpha1.IPAddressPool
	// clearPools sets an empty snapshot (setPools nil means no SetPools call).
	clearPools bool

	// want is what Assign returns (also checked against Addresses); for Release, the
	// addresses released. nil skips the check.
	want []string
	// reason is the allocator Error reason Assign must fail with; "" means success.
	reason string
	// woken, if non-nil, is what TakeWoken must return after the step (sorted).
	woken []string
}

func assignStep(r *Request, want ...string) step { return step{assign: r, want: want} }

func failStep(r *Request, reason string, want ...string) step {
	return step{assign: r, reason: reason, want: want}
}

func runSteps(t *testing.T, a *Allocator, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch {
		case s.assign != nil:
			got, err := a.Assign(s.assign)
			if r := reasonOf(err); r != s.reason {
				t.Fatalf("step %d: Assign(%s) error %v, want reason %q", i, s.assign.Key, err, s.reason)
			}
			if s.want != nil {
				if g := addrStrings(got); !slices.Equal(g, s.want) {
					t.Fatalf("step %d: Assign(%s) = %v (err %v), want %v", i, s.assign.Key, g, err, s.want)
				}
				if g := addrStrings(a.Addresses(s.assign.Key)); !slices.Equal(g, s.want) {
					t.Fatalf("step %d: Addresses(%s) = %v, want %v", i, s.assign.Key, g, s.want)
				}
			}
		case s.release != "":
			got := a.Release(s.release)
			if s.want != nil {
				if g := addrStrings(got); !slices.Equal(g, s.want) {
					t.Fatalf("step %d: Release(%s) = %v, want %v", i, s.release, g, s.want)
				}
			}
			if len(a.Addresses(s.release)) != 0 {
				t.Fatalf("step %d: %s still holds %v after Release", i, s.release, a.Addresses(s.release))
			}
		case s.setPools != nil || s.clearPools:
			a.SetPools(snap(s.setPools...))
		default:
			t.Fatalf("step %d: empty step", i)
		}
		if s.woken != nil {
			got := a.TakeWoken()
			slices.Sort(got)
			if !slices.Equal(got, s.woken) && !(len(got) == 0 && len(s.woken) == 0) {
				t.Fatalf("step %d: TakeWoken() = %v, want %v", i, got, s.woken)
			}
		}
		checkConsistent(t, a)
	}
}

// checkConsistent checks the allocator's indexes against each other.
func checkConsistent(t *testing.T, a *Allocator) {
	t.Helper()
	held := map[netip.Addr]int{}
	for key, ips := range a.bySvc {
		for _, ip := range ips {
			held[ip]++
			if !slices.Contains(a.Holders(ip), key) {
				t.Fatalf("%s lists %s but is not among its holders %v", key, ip, a.Holders(ip))
			}
		}
	}
	for ip, hs := range a.holders {
		if len(hs) != held[ip] {
			t.Fatalf("%s has %d holders, but %d Services list it", ip, len(hs), held[ip])
		}
		if !a.used.contains(ip) {
			t.Fatalf("%s is held but not in the used set", ip)
		}
	}
	var spans int
	a.used.t.Ascend(func(s span) bool {
		for ip := s.first; ip.IsValid() && ip.Compare(s.last) <= 0; ip = ip.Next() {
			if _, ok := a.holders[ip]; !ok {
				t.Fatalf("%s is in the used set but held by nobody", ip)
			}
			spans++
		}
		return true
	})
	if spans != len(a.holders) {
		t.Fatalf("used set has %d addresses, holders %d", spans, len(a.holders))
	}
}

func TestAssign(t *testing.T) {
	tests := []struct {
		name  string
		pools []v1alpha1.IPAddressPool
		steps []step
	}{
		{
			name:  "first free address, lowest first",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.1"),
				assignStep(mkReq("ns/c"), "192.0.2.2"),
				{release: "ns/b", want: []string{"192.0.2.1"}},
				assignStep(mkReq("ns/d"), "192.0.2.1"),
				assignStep(mkReq("ns/e"), "192.0.2.3"),
			},
		},
		{
			name:  "lowest range first whatever the declared order",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.64/30", "192.0.2.8/31"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.8"),
				assignStep(mkReq("ns/b"), "192.0.2.9"),
				assignStep(mkReq("ns/c"), "192.0.2.64"),
			},
		},
		{
			name: "pools tried in priority order",
			pools: []v1alpha1.IPAddressPool{
				mkPool("a-plain", []string{"192.0.2.0/31"}),
				mkPool("z-prio", []string{"198.51.100.0/31"}, priority(1)),
			},
			steps: []step{
				assignStep(mkReq("ns/a"), "198.51.100.0"),
				assignStep(mkReq("ns/b"), "198.51.100.1"),
				assignStep(mkReq("ns/c"), "192.0.2.0"),
			},
		},
		{
			name: "pool restricted to a namespace",
			pools: []v1alpha1.IPAddressPool{
				mkPool("team", []string{"198.51.100.0/31"}, namespaces("team")),
				mkPool("other", []string{"192.0.2.0/31"}),
			},
			steps: []step{
				assignStep(mkReq("team/a", inNamespace("team")), "198.51.100.0"),
				assignStep(mkReq("ns/b"), "192.0.2.0"),
			},
		},
		{
			name:  "idempotent",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.1"),
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.1"),
			},
		},
		{
			name:  "idempotent dual stack",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29", "2001:db8::/125"})},
			steps: []step{
				assignStep(mkReq("ns/a", v4v6, policy(RequireDualStack)), "192.0.2.0", "2001:db8::"),
				assignStep(mkReq("ns/a", v4v6, policy(RequireDualStack)), "192.0.2.0", "2001:db8::"),
			},
		},
		{
			name:  "requested IP",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a", wantIPs("192.0.2.5")), "192.0.2.5"),
				assignStep(mkReq("ns/a", wantIPs("192.0.2.5")), "192.0.2.5"),
				assignStep(mkReq("ns/b"), "192.0.2.0"),
			},
		},
		{
			name: "requested IP from a pool with autoAssign false",
			pools: []v1alpha1.IPAddressPool{
				mkPool("manual", []string{"192.0.2.0/29"}, noAutoAssign),
			},
			steps: []step{
				failStep(mkReq("ns/auto"), ReasonNoMatchingPool),
				assignStep(mkReq("ns/a", wantIPs("192.0.2.3")), "192.0.2.3"),
				assignStep(mkReq("ns/b", inPool("manual")), "192.0.2.0"),
			},
		},
		{
			name:  "requested IP outside every pool",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				failStep(mkReq("ns/a", wantIPs("203.0.113.1")), ReasonRequestedIPUnavailable),
				failStep(mkReq("ns/b", wantIPs("192.0.2.8")), ReasonRequestedIPUnavailable),
			},
		},
		{
			name: "requested IP in a contested or invalid or terminating pool",
			pools: []v1alpha1.IPAddressPool{
				mkPool("x", []string{"192.0.2.0/29"}),
				mkPool("y", []string{"192.0.2.4/30"}),
				mkPool("broken", []string{"198.51.100.0/29", "junk"}),
				mkPool("dying", []string{"203.0.113.0/29"}, terminating),
			},
			steps: []step{
				failStep(mkReq("ns/a", wantIPs("192.0.2.5")), ReasonRequestedIPUnavailable),
				failStep(mkReq("ns/b", wantIPs("198.51.100.1")), ReasonRequestedIPUnavailable),
				failStep(mkReq("ns/c", wantIPs("203.0.113.1")), ReasonRequestedIPUnavailable),
				assignStep(mkReq("ns/d", wantIPs("192.0.2.3")), "192.0.2.3"),
			},
		},
		{
			name:  "requested IP in use",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				failStep(mkReq("ns/b", wantIPs("192.0.2.0")), ReasonRequestedIPUnavailable),
				// Sharing needs both sides to agree.
				failStep(mkReq("ns/c", wantIPs("192.0.2.0"), share("k", 80)), ReasonRequestedIPUnavailable),
			},
		},
		{
			name:  "requested IP of the wrong family or twice the same family",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29", "2001:db8::/125"})},
			steps: []step{
				failStep(mkReq("ns/a", v4, wantIPs("2001:db8::1")), ReasonRequestedIPUnavailable),
				failStep(mkReq("ns/b", v4v6, policy(RequireDualStack), wantIPs("192.0.2.1")), ReasonRequestedIPUnavailable),
				failStep(mkReq("ns/c", v4v6, policy(RequireDualStack), wantIPs("192.0.2.1", "192.0.2.2")), ReasonInvalidAnnotation),
				assignStep(mkReq("ns/d", v4v6, policy(RequireDualStack), wantIPs("2001:db8::3", "192.0.2.3")), "2001:db8::3", "192.0.2.3"),
				assignStep(mkReq("ns/e", v4v6, policy(PreferDualStack), wantIPs("192.0.2.4")), "192.0.2.4"),
			},
		},
		{
			name:  "requested IP in another pool than the requested one",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"}), mkPool("q", []string{"198.51.100.0/29"})},
			steps: []step{
				failStep(mkReq("ns/a", inPool("q"), wantIPs("192.0.2.1")), ReasonRequestedIPUnavailable),
				assignStep(mkReq("ns/a", inPool("q"), wantIPs("198.51.100.1")), "198.51.100.1"),
			},
		},
		{
			name: "requested pool",
			pools: []v1alpha1.IPAddressPool{
				mkPool("a", []string{"192.0.2.0/29"}, priority(1)),
				mkPool("b", []string{"198.51.100.0/29"}),
			},
			steps: []step{
				assignStep(mkReq("ns/x", inPool("b")), "198.51.100.0"),
				assignStep(mkReq("ns/y"), "192.0.2.0"),
				// A Service moved to another pool gets a new address there.
				assignStep(mkReq("ns/y", inPool("b")), "198.51.100.1"),
				assignStep(mkReq("ns/z"), "192.0.2.0"),
			},
		},
		{
			name: "missing, invalid, terminating or wrong-family pool",
			pools: []v1alpha1.IPAddressPool{
				mkPool("broken", []string{"192.0.2.0/29", "junk"}),
				mkPool("dying", []string{"198.51.100.0/29"}, terminating),
				mkPool("v6only", []string{"2001:db8::/125"}),
			},
			steps: []step{
				failStep(mkReq("ns/a", inPool("nope")), ReasonNoMatchingPool),
				failStep(mkReq("ns/a", inPool("broken")), ReasonNoMatchingPool),
				failStep(mkReq("ns/a", inPool("dying")), ReasonNoMatchingPool),
				failStep(mkReq("ns/a", inPool("v6only")), ReasonNoMatchingPool),
				failStep(mkReq("ns/a"), ReasonNoMatchingPool),
				failStep(mkReq("ns/a", fams()), ReasonNoMatchingPool),
				assignStep(mkReq("ns/a", v6), "2001:db8::"),
			},
		},
		{
			name:  "no pools at all",
			pools: nil,
			steps: []step{failStep(mkReq("ns/a"), ReasonNoMatchingPool)},
		},
		{
			name:  "avoidBuggyIPs skips .0 and .255",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.254-192.0.3.1"}, avoidBuggy)},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.254"),
				assignStep(mkReq("ns/b"), "192.0.3.1"),
				failStep(mkReq("ns/c"), ReasonPoolExhausted),
				failStep(mkReq("ns/d", wantIPs("192.0.3.0")), ReasonRequestedIPUnavailable),
				failStep(mkReq("ns/e", wantIPs("192.0.2.255")), ReasonRequestedIPUnavailable),
			},
		},
		{
			name:  "avoidBuggyIPs leaves IPv6 alone",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"2001:db8::ff-2001:db8::100"}, avoidBuggy)},
			steps: []step{
				assignStep(mkReq("ns/a", v6), "2001:db8::ff"),
				assignStep(mkReq("ns/b", v6), "2001:db8::100"),
			},
		},
		{
			name:  "exhausted pool wakes the waiting Service on release",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/31"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.1"),
				{assign: mkReq("ns/c"), reason: ReasonPoolExhausted, want: []string{}, woken: []string{}},
				{release: "ns/a", want: []string{"192.0.2.0"}, woken: []string{"ns/c"}},
				assignStep(mkReq("ns/c"), "192.0.2.0"),
				{release: "ns/b", woken: []string{}},
			},
		},
		{
			name:  "one freed address wakes the longest waiting Service only",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/32"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				failStep(mkReq("ns/b"), ReasonPoolExhausted),
				failStep(mkReq("ns/c"), ReasonPoolExhausted),
				{release: "ns/a", woken: []string{"ns/b"}},
				assignStep(mkReq("ns/b"), "192.0.2.0"),
				{release: "ns/b", woken: []string{"ns/c"}},
			},
		},
		{
			name:  "a waiting Service that is released is not woken",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/32"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				failStep(mkReq("ns/b"), ReasonPoolExhausted),
				{release: "ns/b", woken: []string{}},
				{release: "ns/a", woken: []string{}},
			},
		},
		{
			name:  "a Service waiting for a requested IP is woken when it frees",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				failStep(mkReq("ns/b", wantIPs("192.0.2.0")), ReasonRequestedIPUnavailable),
				assignStep(mkReq("ns/c")),
				{release: "ns/c", woken: []string{}},
				{release: "ns/a", woken: []string{"ns/b"}},
				assignStep(mkReq("ns/b", wantIPs("192.0.2.0")), "192.0.2.0"),
			},
		},
		{
			name:  "SetPools wakes every waiting Service",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/32"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				failStep(mkReq("ns/b"), ReasonPoolExhausted),
				failStep(mkReq("ns/c", inPool("missing")), ReasonNoMatchingPool),
				failStep(mkReq("ns/d", wantIPs("203.0.113.1")), ReasonRequestedIPUnavailable),
				{setPools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/30"})}, woken: []string{"ns/b", "ns/c", "ns/d"}},
				assignStep(mkReq("ns/b"), "192.0.2.1"),
			},
		},
		{
			name:  "sharing with the same key and disjoint ports",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/dns-tcp", share("dns", 53)), "192.0.2.0"),
				assignStep(mkReq("ns/dns-udp", share("dns"), udp(53)), "192.0.2.0"),
				assignStep(mkReq("ns/web", share("web", 80)), "192.0.2.1"),
				assignStep(mkReq("ns/plain"), "192.0.2.2"),
				assignStep(mkReq("ns/dns-alt", share("dns", 5353)), "192.0.2.0"),
				// One of them leaving keeps the address for the others.
				{release: "ns/dns-tcp", want: []string{"192.0.2.0"}},
				assignStep(mkReq("ns/other"), "192.0.2.3"),
				assignStep(mkReq("ns/dns-tcp", share("dns", 53)), "192.0.2.0"),
			},
		},
		{
			name:  "same key with clashing ports gets another address",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80, 443)), "192.0.2.0"),
				assignStep(mkReq("ns/b", share("k", 443)), "192.0.2.1"),
				// c clashes with b but not with a: it joins a.
				assignStep(mkReq("ns/c", share("k", 8443)), "192.0.2.0"),
				assignStep(mkReq("ns/d", share("k", 80)), "192.0.2.1"),
			},
		},
		{
			name:  "same key with clashing ports in a full pool",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/32"})},
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80)), "192.0.2.0"),
				failStep(mkReq("ns/b", share("k", 80)), ReasonSharingConflict),
				failStep(mkReq("ns/c", share("other", 8080)), ReasonPoolExhausted),
				failStep(mkReq("ns/d", share("k", 80), wantIPs("192.0.2.0")), ReasonSharingConflict),
				assignStep(mkReq("ns/e", share("k", 81)), "192.0.2.0"),
			},
		},
		{
			name:  "Local sharing needs the same selector",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80), local("app=web")), "192.0.2.0"),
				assignStep(mkReq("ns/b", share("k", 443), local("app=web")), "192.0.2.0"),
				assignStep(mkReq("ns/c", share("k", 8080), local("app=db")), "192.0.2.1"),
				// Local and Cluster do not mix.
				assignStep(mkReq("ns/d", share("k", 9090)), "192.0.2.2"),
				failStep(mkReq("ns/e", share("k", 9091), wantIPs("192.0.2.0")), ReasonSharingConflict),
				assignStep(mkReq("ns/f", share("k", 9091), local("app=db")), "192.0.2.1"),
				assignStep(mkReq("ns/g", share("k", 9092), wantIPs("192.0.2.2")), "192.0.2.2"),
			},
		},
		{
			name:  "a Service that changes its ports onto a shared clash moves",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80)), "192.0.2.0"),
				assignStep(mkReq("ns/b", share("k", 443)), "192.0.2.0"),
				assignStep(mkReq("ns/b", share("k", 80)), "192.0.2.1"),
				assignStep(mkReq("ns/c", share("k", 443)), "192.0.2.0"),
			},
		},
		{
			name:  "a Service that drops its sharing key moves off a shared address",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80)), "192.0.2.0"),
				assignStep(mkReq("ns/b", share("k", 443)), "192.0.2.0"),
				assignStep(mkReq("ns/b", udp(443)), "192.0.2.1"),
				// Alone on its address, a Service may change its key freely.
				assignStep(mkReq("ns/a", share("j", 80)), "192.0.2.0"),
				assignStep(mkReq("ns/c", share("j", 443)), "192.0.2.0"),
				assignStep(mkReq("ns/d", share("k", 8080)), "192.0.2.2"),
			},
		},
		{
			name:  "dual-stack pool: SingleStack gets its first family",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29", "2001:db8::/125"})},
			steps: []step{
				assignStep(mkReq("ns/a", v4), "192.0.2.0"),
				assignStep(mkReq("ns/b", v6), "2001:db8::"),
				assignStep(mkReq("ns/c", v6v4, policy(SingleStack)), "2001:db8::1"),
			},
		},
		{
			name:  "dual-stack pool: PreferDualStack and RequireDualStack get both",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29", "2001:db8::/125"})},
			steps: []step{
				assignStep(mkReq("ns/a", v4v6, policy(PreferDualStack)), "192.0.2.0", "2001:db8::"),
				assignStep(mkReq("ns/b", v6v4, policy(PreferDualStack)), "2001:db8::1", "192.0.2.1"),
				assignStep(mkReq("ns/c", v4v6, policy(RequireDualStack)), "192.0.2.2", "2001:db8::2"),
				assignStep(mkReq("ns/d", v6v4, policy(RequireDualStack)), "2001:db8::3", "192.0.2.3"),
				// Growing to dual stack keeps the address it has and adds the other family.
				assignStep(mkReq("ns/g", v4), "192.0.2.4"),
				assignStep(mkReq("ns/g", v4v6, policy(RequireDualStack)), "192.0.2.4", "2001:db8::4"),
				{release: "ns/g"},
				// Going back to single stack frees the second family and keeps the first.
				assignStep(mkReq("ns/d", v6, policy(SingleStack)), "2001:db8::3"),
				assignStep(mkReq("ns/e", v4), "192.0.2.3"),
				assignStep(mkReq("ns/f", v4), "192.0.2.4"),
			},
		},
		{
			name:  "v4-only pool",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a", v4), "192.0.2.0"),
				failStep(mkReq("ns/b", v6), ReasonNoMatchingPool),
				assignStep(mkReq("ns/c", v4v6, policy(PreferDualStack)), "192.0.2.1"),
				failStep(mkReq("ns/d", v6v4, policy(PreferDualStack)), ReasonNoMatchingPool),
				failStep(mkReq("ns/e", v4v6, policy(RequireDualStack)), ReasonNoMatchingPool),
			},
		},
		{
			name: "PreferDualStack prefers a pool with both families",
			pools: []v1alpha1.IPAddressPool{
				mkPool("first-v4", []string{"192.0.2.0/29"}, priority(1)),
				mkPool("second-dual", []string{"198.51.100.0/29", "2001:db8::/125"}, priority(2)),
			},
			steps: []step{
				assignStep(mkReq("ns/single", v4), "192.0.2.0"),
				assignStep(mkReq("ns/dual", v4v6, policy(PreferDualStack)), "198.51.100.0", "2001:db8::"),
				failStep(mkReq("ns/req", v4v6, policy(RequireDualStack), inPool("first-v4")), ReasonNoMatchingPool),
				assignStep(mkReq("ns/req", v4v6, policy(RequireDualStack)), "198.51.100.1", "2001:db8::1"),
			},
		},
		{
			name:  "RequireDualStack with one family exhausted",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29", "2001:db8::/128"})},
			steps: []step{
				assignStep(mkReq("ns/a", v6), "2001:db8::"),
				failStep(mkReq("ns/b", v4v6, policy(RequireDualStack)), ReasonPoolExhausted),
				// PreferDualStack settles for one family, and adds the other when it frees.
				assignStep(mkReq("ns/c", v4v6, policy(PreferDualStack)), "192.0.2.0"),
				{release: "ns/a"},
				assignStep(mkReq("ns/c", v4v6, policy(PreferDualStack)), "192.0.2.0", "2001:db8::"),
			},
		},
		{
			name:  "a failed re-allocation keeps the old address",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.1"),
				failStep(mkReq("ns/a", wantIPs("192.0.2.1")), ReasonRequestedIPUnavailable, "192.0.2.0"),
				failStep(mkReq("ns/a", inPool("missing")), ReasonNoMatchingPool, "192.0.2.0"),
				failStep(mkReq("ns/a", v6), ReasonNoMatchingPool, "192.0.2.0"),
				// The kept address is still a's: nobody else gets it.
				assignStep(mkReq("ns/c"), "192.0.2.2"),
				{release: "ns/b", woken: []string{"ns/a"}},
				assignStep(mkReq("ns/a", wantIPs("192.0.2.1")), "192.0.2.1"),
				assignStep(mkReq("ns/d"), "192.0.2.0"),
			},
		},
		{
			name:  "a requested IP change moves the Service",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/a", wantIPs("192.0.2.6")), "192.0.2.6"),
				assignStep(mkReq("ns/b"), "192.0.2.0"),
				// Dropping the request keeps the address it has.
				assignStep(mkReq("ns/a"), "192.0.2.6"),
			},
		},
		{
			name:  "Current is adopted when free",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a", current("192.0.2.5")), "192.0.2.5"),
				// Outside every pool, still kept: pools may have been edited while down.
				assignStep(mkReq("ns/b", current("203.0.113.9")), "203.0.113.9"),
				// Held by a: b gets a fresh one.
				assignStep(mkReq("ns/c", current("192.0.2.5")), "192.0.2.0"),
				// Current is ignored once the Service holds something.
				assignStep(mkReq("ns/c", current("192.0.2.7")), "192.0.2.0"),
			},
		},
		{
			name:  "SetPools keeps held addresses",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.1"),
				{setPools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.1-192.0.2.7"})}},
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.1"),
				assignStep(mkReq("ns/c"), "192.0.2.2"),
				{clearPools: true},
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				failStep(mkReq("ns/d"), ReasonNoMatchingPool),
				// Naming a pool that no longer holds the address moves nothing.
				failStep(mkReq("ns/b", inPool("p")), ReasonNoMatchingPool, "192.0.2.1"),
				{setPools: []v1alpha1.IPAddressPool{mkPool("q", []string{"192.0.2.0/29"})}},
				assignStep(mkReq("ns/d"), "192.0.2.3"),
			},
		},
		{
			name:  "a terminating pool hands out nothing new but holders keep theirs",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"}), mkPool("q", []string{"198.51.100.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a", inPool("p")), "192.0.2.0"),
				{setPools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"}, terminating), mkPool("q", []string{"198.51.100.0/29"})}},
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "198.51.100.0"),
				failStep(mkReq("ns/c", inPool("p")), ReasonNoMatchingPool),
			},
		},
		{
			name: "pools that become overlapping stop handing out the contested part",
			pools: []v1alpha1.IPAddressPool{
				mkPool("p", []string{"192.0.2.0/30"}),
			},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				{setPools: []v1alpha1.IPAddressPool{
					mkPool("p", []string{"192.0.2.0/30"}),
					mkPool("q", []string{"192.0.2.0-192.0.2.1"}),
				}},
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.2"),
				failStep(mkReq("ns/c", wantIPs("192.0.2.1")), ReasonRequestedIPUnavailable),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(snap(tc.pools...))
			runSteps(t, a, tc.steps)
		})
	}
}

// TestAssignRefreshesKeptHolder covers a Service that keeps an address while being
// re-allocated (here, because it now also needs an IPv6 address): the ports and sharing
// key recorded for the kept address must be the new ones, or another Service could share
// it on a port it now uses.
func TestAssignRefreshesKeptHolder(t *testing.T) {
	pools := []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29", "2001:db8::/125"})}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "ports added while going dual-stack",
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80)), "192.0.2.0"),
				assignStep(mkReq("ns/a", v4v6, policy(RequireDualStack), share("k", 80, 443)), "192.0.2.0", "2001:db8::"),
				// 443 is a's now: b must not share.
				failStep(mkReq("ns/b", share("k", 443), wantIPs("192.0.2.0")), ReasonSharingConflict),
				assignStep(mkReq("ns/b", share("k", 443)), "192.0.2.1"),
			},
		},
		{
			name: "sharing key dropped while requesting a second family",
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80), wantIPs("192.0.2.0")), "192.0.2.0"),
				assignStep(mkReq("ns/a", v4v6, policy(RequireDualStack), udp(80), wantIPs("192.0.2.0", "2001:db8::5")), "192.0.2.0", "2001:db8::5"),
				// a no longer shares: b may not join it, and is not steered to it.
				failStep(mkReq("ns/b", share("k", 443), wantIPs("192.0.2.0")), ReasonRequestedIPUnavailable),
				assignStep(mkReq("ns/b", share("k", 443)), "192.0.2.1"),
			},
		},
		{
			name: "sharing key changed while requesting a second family",
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80), wantIPs("192.0.2.0")), "192.0.2.0"),
				assignStep(mkReq("ns/a", v4v6, policy(RequireDualStack), share("j", 80), wantIPs("192.0.2.0", "2001:db8::5")), "192.0.2.0", "2001:db8::5"),
				assignStep(mkReq("ns/b", share("k", 443)), "192.0.2.1"),
				assignStep(mkReq("ns/c", share("j", 443)), "192.0.2.0"),
			},
		},
		{
			name: "requested addresses extended to a second family",
			steps: []step{
				assignStep(mkReq("ns/a", share("k", 80), wantIPs("192.0.2.3")), "192.0.2.3"),
				assignStep(mkReq("ns/a", v4v6, policy(RequireDualStack), share("k", 80, 443), wantIPs("192.0.2.3", "2001:db8::3")), "192.0.2.3", "2001:db8::3"),
				failStep(mkReq("ns/b", share("k", 443), wantIPs("192.0.2.3")), ReasonSharingConflict),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, New(snap(pools...)), tc.steps)
		})
	}
}

func TestLoad(t *testing.T) {
	pools := []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29", "2001:db8::/125"})}
	type load struct {
		req      *Request
		ips      []string
		rejected []string
	}
	tests := []struct {
		name  string
		loads []load
		held  map[string][]string
		then  []step
	}{
		{
			name:  "addresses in a pool",
			loads: []load{{req: mkReq("ns/a"), ips: []string{"192.0.2.3"}}},
			held:  map[string][]string{"ns/a": {"192.0.2.3"}},
			then: []step{
				assignStep(mkReq("ns/a"), "192.0.2.3"),
				assignStep(mkReq("ns/b"), "192.0.2.0"),
			},
		},
		{
			name:  "addresses outside every pool are kept",
			loads: []load{{req: mkReq("ns/a", v4v6, policy(RequireDualStack)), ips: []string{"203.0.113.7", "2001:db8:ffff::1"}}},
			held:  map[string][]string{"ns/a": {"203.0.113.7", "2001:db8:ffff::1"}},
			then: []step{
				assignStep(mkReq("ns/a", v4v6, policy(RequireDualStack)), "203.0.113.7", "2001:db8:ffff::1"),
				failStep(mkReq("ns/b", wantIPs("203.0.113.7")), ReasonRequestedIPUnavailable),
			},
		},
		{
			name: "an address held by an incompatible Service is refused",
			loads: []load{
				{req: mkReq("ns/a"), ips: []string{"192.0.2.3"}},
				{req: mkReq("ns/b"), ips: []string{"192.0.2.3"}, rejected: []string{"192.0.2.3"}},
				{req: mkReq("ns/c", share("k", 80)), ips: []string{"192.0.2.3"}, rejected: []string{"192.0.2.3"}},
			},
			held: map[string][]string{"ns/a": {"192.0.2.3"}, "ns/b": nil, "ns/c": nil},
		},
		{
			name: "clashing ports are refused",
			loads: []load{
				{req: mkReq("ns/a", share("k", 80)), ips: []string{"192.0.2.3"}},
				{req: mkReq("ns/b", share("k", 80)), ips: []string{"192.0.2.3"}, rejected: []string{"192.0.2.3"}},
				{req: mkReq("ns/c", share("j", 81)), ips: []string{"192.0.2.3"}, rejected: []string{"192.0.2.3"}},
			},
			held: map[string][]string{"ns/a": {"192.0.2.3"}, "ns/b": nil, "ns/c": nil},
		},
		{
			name: "compatible sharers both load",
			loads: []load{
				{req: mkReq("ns/a", share("k", 80)), ips: []string{"192.0.2.3"}},
				{req: mkReq("ns/b", share("k", 443)), ips: []string{"192.0.2.3"}},
			},
			held: map[string][]string{"ns/a": {"192.0.2.3"}, "ns/b": {"192.0.2.3"}},
			then: []step{
				assignStep(mkReq("ns/c", share("k", 8080)), "192.0.2.3"),
			},
		},
		{
			name: "one address per family",
			loads: []load{
				{req: mkReq("ns/a", v4v6, policy(RequireDualStack)), ips: []string{"192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"}, rejected: []string{"192.0.2.2", "2001:db8::2"}},
			},
			held: map[string][]string{"ns/a": {"192.0.2.1", "2001:db8::1"}},
			then: []step{assignStep(mkReq("ns/b"), "192.0.2.0"), assignStep(mkReq("ns/c"), "192.0.2.2")},
		},
		{
			name: "loading twice is harmless",
			loads: []load{
				{req: mkReq("ns/a"), ips: []string{"192.0.2.1"}},
				{req: mkReq("ns/a"), ips: []string{"192.0.2.1"}},
			},
			held: map[string][]string{"ns/a": {"192.0.2.1"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(snap(pools...))
			for i, l := range tc.loads {
				var ips []netip.Addr
				for _, s := range l.ips {
					ips = append(ips, netip.MustParseAddr(s))
				}
				rejected := addrStrings(a.Load(l.req, ips))
				if !slices.Equal(rejected, append([]string{}, l.rejected...)) {
					t.Fatalf("load %d: Load(%s, %v) rejected %v, want %v", i, l.req.Key, l.ips, rejected, l.rejected)
				}
				checkConsistent(t, a)
			}
			for key, want := range tc.held {
				if got := addrStrings(a.Addresses(key)); !slices.Equal(got, append([]string{}, want...)) {
					t.Errorf("Addresses(%s) = %v, want %v", key, got, want)
				}
			}
			runSteps(t, a, tc.then)
		})
	}
}

func TestHolders(t *testing.T) {
	a := New(snap(mkPool("p", []string{"192.0.2.0/29"})))
	runSteps(t, a, []step{
		assignStep(mkReq("ns/a", share("k", 80)), "192.0.2.0"),
		assignStep(mkReq("ns/b", share("k", 81)), "192.0.2.0"),
		assignStep(mkReq("ns/c"), "192.0.2.1"),
	})
	tests := []struct {
		name string
		ip   string
		want []string
	}{
		{name: "shared", ip: "192.0.2.0", want: []string{"ns/a", "ns/b"}},
		{name: "single", ip: "192.0.2.1", want: []string{"ns/c"}},
		{name: "free", ip: "192.0.2.2", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := a.Holders(netip.MustParseAddr(tc.ip))
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Holders(%s) = %v, want %v", tc.ip, got, tc.want)
			}
		})
	}
	if got := a.Release("ns/none"); len(got) != 0 {
		t.Errorf("Release of an unknown Service = %v", got)
	}
}

func TestStats(t *testing.T) {
	tests := []struct {
		name  string
		pools []v1alpha1.IPAddressPool
		steps []step
		pool  string
		want  Stats
	}{
		{
			name:  "unknown pool",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/24"})},
			pool:  "nope",
			want:  Stats{},
		},
		{
			name:  "empty pool",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/24", "2001:db8::/120"})},
			pool:  "p",
			want:  Stats{AvailableIPv4: 256, AvailableIPv6: 256},
		},
		{
			name:  "counts per family",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/24", "2001:db8::/120"})},
			steps: []step{
				assignStep(mkReq("ns/a")),
				assignStep(mkReq("ns/b", v4v6, policy(RequireDualStack))),
				assignStep(mkReq("ns/c", v6)),
				// Shared addresses count once.
				assignStep(mkReq("ns/d", share("k", 80))),
				assignStep(mkReq("ns/e", share("k", 81))),
			},
			pool: "p",
			want: Stats{AssignedIPv4: 3, AssignedIPv6: 2, AvailableIPv4: 253, AvailableIPv6: 254},
		},
		{
			name:  "avoidBuggyIPs leaves .0 and .255 out of the total",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/23"}, avoidBuggy)},
			steps: []step{assignStep(mkReq("ns/a"), "192.0.2.1")},
			pool:  "p",
			want:  Stats{AssignedIPv4: 1, AvailableIPv4: 512 - 4 - 1},
		},
		{
			name:  "released addresses are available again",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/30"})},
			steps: []step{assignStep(mkReq("ns/a")), assignStep(mkReq("ns/b")), {release: "ns/a"}},
			pool:  "p",
			want:  Stats{AssignedIPv4: 1, AvailableIPv4: 3},
		},
		{
			name:  "addresses in other pools or outside pools are not counted",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/30"}), mkPool("q", []string{"198.51.100.0/30"})},
			steps: []step{
				assignStep(mkReq("ns/a", inPool("q"))),
				assignStep(mkReq("ns/b", current("203.0.113.1"))),
			},
			pool: "p",
			want: Stats{AvailableIPv4: 4},
		},
		{
			name:  "huge IPv6 pool saturates",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"2001:db8::/64", "2001:db8:1::/64"})},
			steps: []step{assignStep(mkReq("ns/a", v6), "2001:db8::")},
			pool:  "p",
			want:  Stats{AssignedIPv6: 1, AvailableIPv6: math.MaxInt64},
		},
		{
			name:  "full pool",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/31"})},
			steps: []step{assignStep(mkReq("ns/a")), assignStep(mkReq("ns/b")), failStep(mkReq("ns/c"), ReasonPoolExhausted)},
			pool:  "p",
			want:  Stats{AssignedIPv4: 2},
		},
		{
			name:  "terminating pool has nothing available",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/30"})},
			steps: []step{
				assignStep(mkReq("ns/a")),
				{setPools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/30"}, terminating)}},
			},
			pool: "p",
			want: Stats{AssignedIPv4: 1},
		},
		{
			name:  "counts follow SetPools",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/29"})},
			steps: []step{
				assignStep(mkReq("ns/a"), "192.0.2.0"),
				assignStep(mkReq("ns/b"), "192.0.2.1"),
				assignStep(mkReq("ns/c"), "192.0.2.2"),
				{setPools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.1-192.0.2.7"})}},
			},
			pool: "p",
			want: Stats{AssignedIPv4: 2, AvailableIPv4: 5},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(snap(tc.pools...))
			runSteps(t, a, tc.steps)
			if got := a.Stats(tc.pool); got != tc.want {
				t.Fatalf("Stats(%s) = %+v, want %+v", tc.pool, got, tc.want)
			}
		})
	}
}

func TestHolderKeys(t *testing.T) {
	pools := []v1alpha1.IPAddressPool{
		mkPool("p", []string{"192.0.2.0/29", "2001:db8::/125"}),
		mkPool("q", []string{"198.51.100.0/29"}),
	}
	setup := []step{
		assignStep(mkReq("ns/e"), "192.0.2.0"),
		assignStep(mkReq("ns/d", v6), "2001:db8::"),
		assignStep(mkReq("ns/c", share("k", 80)), "192.0.2.1"),
		assignStep(mkReq("ns/b", share("k", 81)), "192.0.2.1"),
		assignStep(mkReq("ns/a", inPool("q")), "198.51.100.0"),
	}
	tests := []struct {
		name  string
		pool  string
		limit int
		want  []string
		more  bool
	}{
		{name: "all", pool: "p", limit: 10, want: []string{"ns/b", "ns/c", "ns/d", "ns/e"}},
		{name: "exactly the limit", pool: "p", limit: 4, want: []string{"ns/b", "ns/c", "ns/d", "ns/e"}},
		{name: "over the limit", pool: "p", limit: 2, want: []string{"ns/c", "ns/e"}, more: true},
		{name: "limit zero", pool: "p", limit: 0, want: nil, more: true},
		{name: "other pool", pool: "q", limit: 10, want: []string{"ns/a"}},
		{name: "unknown pool", pool: "nope", limit: 10, want: nil},
	}
	a := New(snap(pools...))
	runSteps(t, a, setup)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, more := a.HolderKeys(tc.pool, tc.limit)
			if !slices.Equal(got, tc.want) || more != tc.more {
				t.Fatalf("HolderKeys(%s, %d) = %v, %v, want %v, %v", tc.pool, tc.limit, got, more, tc.want, tc.more)
			}
		})
	}

	t.Run("contested and terminating addresses still count", func(t *testing.T) {
		a := New(snap(mkPool("p", []string{"192.0.2.0/29"})))
		runSteps(t, a, []step{
			assignStep(mkReq("ns/a"), "192.0.2.0"),
			assignStep(mkReq("ns/b"), "192.0.2.1"),
			{setPools: []v1alpha1.IPAddressPool{
				mkPool("p", []string{"192.0.2.0/29"}, terminating),
				mkPool("q", []string{"192.0.2.0/32"}),
			}},
		})
		for _, name := range []string{"p", "q"} {
			got, more := a.HolderKeys(name, 10)
			want := []string{"ns/a", "ns/b"}
			if name == "q" {
				want = []string{"ns/a"}
			}
			if !slices.Equal(got, want) || more {
				t.Errorf("HolderKeys(%s) = %v, %v, want %v, false", name, got, more, want)
			}
		}
	})
}

func TestErrorString(t *testing.T) {
	a := New(snap(mkPool("p", []string{"192.0.2.0/32"})))
	if _, err := a.Assign(mkReq("ns/a", inPool("nope"))); err == nil {
		t.Fatal("no error")
	} else if got, want := err.Error(), `NoMatchingPool: IPAddressPool "nope" does not exist`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if a.Pools() == nil {
		t.Fatal("Pools() = nil")
	}
}

// A freed IPv4 address wakes the Service waiting for IPv4, even when a Service that needs
// an IPv6 address too has waited longer.
func TestFreedAddressWakesAWaiterOfItsFamily(t *testing.T) {
	a := New(poolset.Build([]v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.1/32", "2001:db8::1/128"})}))
	for _, r := range []*Request{mkReq("ns/v4", v4), mkReq("ns/v6", fams(iprange.IPv6))} {
		if _, err := a.Assign(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Assign(mkReq("ns/dual", v4v6, policy(RequireDualStack))); reasonOf(err) != ReasonPoolExhausted {
		t.Fatalf("dual: %v", err)
	}
	if _, err := a.Assign(mkReq("ns/plain", v4)); reasonOf(err) != ReasonPoolExhausted {
		t.Fatalf("plain: %v", err)
	}
	a.Release("ns/v4")
	// The dual-stack Service waited longest and is woken first; it still lacks IPv6, and
	// its failure passes the wake-up on.
	if woken := a.TakeWoken(); !slices.Equal(woken, []string{"ns/dual"}) {
		t.Fatalf("woken %v, want [ns/dual]", woken)
	}
	if _, err := a.Assign(mkReq("ns/dual", v4v6, policy(RequireDualStack))); reasonOf(err) != ReasonPoolExhausted {
		t.Fatalf("dual again: %v", err)
	}
	if woken := a.TakeWoken(); !slices.Equal(woken, []string{"ns/plain"}) {
		t.Fatalf("woken %v, want [ns/plain]", woken)
	}
	if got, err := a.Assign(mkReq("ns/plain", v4)); err != nil || got[0].String() != "192.0.2.1" {
		t.Fatalf("plain: %v %v", got, err)
	}
}

// A Service that grows to dual stack keeps its address even when a pool tried earlier has
// room again.
func TestGrowingToDualStackKeepsThePool(t *testing.T) {
	first := mkPool("a", []string{"192.0.2.1/32", "2001:db8:a::/126"})
	first.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: 1}
	a := New(poolset.Build([]v1alpha1.IPAddressPool{first, mkPool("b", []string{"192.0.2.8/30", "2001:db8:b::/126"})}))
	if got, err := a.Assign(mkReq("ns/filler", v4)); err != nil || got[0].String() != "192.0.2.1" {
		t.Fatalf("filler: %v %v", got, err)
	}
	if got, err := a.Assign(mkReq("ns/s", v4)); err != nil || got[0].String() != "192.0.2.8" {
		t.Fatalf("s: %v %v", got, err)
	}
	a.Release("ns/filler")
	got, err := a.Assign(mkReq("ns/s", v4v6, policy(RequireDualStack)))
	if err != nil || len(got) != 2 || got[0].String() != "192.0.2.8" || got[1].String() != "2001:db8:b::" {
		t.Fatalf("s after growing: %v %v, want 192.0.2.8 and 2001:db8:b::", got, err)
	}
}
