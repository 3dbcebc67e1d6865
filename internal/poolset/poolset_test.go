package poolset

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/iprange"
)

type poolOpt func(*v1alpha1.IPAddressPool)

func pool(name string, addrs []string, opts ...poolOpt) v1alpha1.IPAddressPool {
	p := v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(a))
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func autoAssign(v bool) poolOpt {
	return func(p *v1alpha1.IPAddressPool) { p.Spec.AutoAssign = &v }
}

func avoidBuggy(p *v1alpha1.IPAddressPool) { p.Spec.AvoidBuggyIPs = true }

func terminating(p *v1alpha1.IPAddressPool) {
	now := metav1.Now()
	p.DeletionTimestamp = &now
}

func allocation(sa v1alpha1.ServiceAllocation) poolOpt {
	return func(p *v1alpha1.IPAddressPool) { p.Spec.ServiceAllocation = &sa }
}

func rangeStrings(rs []iprange.Range) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return out
}

func names(ps []*Pool) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

func TestBuildSinglePool(t *testing.T) {
	tests := []struct {
		name       string
		obj        v1alpha1.IPAddressPool
		ranges     []string
		autoAssign bool
		avoidBuggy bool
		families   []iprange.Family
	}{
		{
			name:       "defaults",
			obj:        pool("a", []string{"192.0.2.0/28"}),
			ranges:     []string{"192.0.2.0/28"},
			autoAssign: true,
			families:   []iprange.Family{iprange.IPv4},
		},
		{
			name:     "autoAssign false",
			obj:      pool("a", []string{"192.0.2.0/28"}, autoAssign(false)),
			ranges:   []string{"192.0.2.0/28"},
			families: []iprange.Family{iprange.IPv4},
		},
		{
			name:       "autoAssign true explicitly, avoidBuggyIPs",
			obj:        pool("a", []string{"192.0.2.0/28"}, autoAssign(true), avoidBuggy),
			ranges:     []string{"192.0.2.0/28"},
			autoAssign: true,
			avoidBuggy: true,
			families:   []iprange.Family{iprange.IPv4},
		},
		{
			name:       "entries normalized",
			obj:        pool("a", []string{"192.0.2.16/28", "192.0.2.0/28", "192.0.2.5-192.0.2.20"}),
			ranges:     []string{"192.0.2.0/27"},
			autoAssign: true,
			families:   []iprange.Family{iprange.IPv4},
		},
		{
			name:       "dual stack",
			obj:        pool("a", []string{"2001:db8::/124", "192.0.2.0/28"}),
			ranges:     []string{"192.0.2.0/28", "2001:db8::/124"},
			autoAssign: true,
			families:   []iprange.Family{iprange.IPv4, iprange.IPv6},
		},
		{
			name:       "v6 only",
			obj:        pool("a", []string{"2001:db8::/124"}),
			ranges:     []string{"2001:db8::/124"},
			autoAssign: true,
			families:   []iprange.Family{iprange.IPv6},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Build([]v1alpha1.IPAddressPool{tc.obj})
			p := s.Pool(tc.obj.Name)
			if p == nil {
				t.Fatalf("Pool(%q) = nil", tc.obj.Name)
			}
			if p.Err != nil {
				t.Fatalf("Err = %v", p.Err)
			}
			if got := rangeStrings(p.Ranges); !slices.Equal(got, tc.ranges) {
				t.Errorf("Ranges = %v, want %v", got, tc.ranges)
			}
			if got := rangeStrings(p.Declared); !slices.Equal(got, tc.ranges) {
				t.Errorf("Declared = %v, want %v", got, tc.ranges)
			}
			if p.AutoAssign != tc.autoAssign || p.AvoidBuggy != tc.avoidBuggy {
				t.Errorf("AutoAssign, AvoidBuggy = %v, %v, want %v, %v", p.AutoAssign, p.AvoidBuggy, tc.autoAssign, tc.avoidBuggy)
			}
			if got := p.Families(); !slices.Equal(got, tc.families) {
				t.Errorf("Families() = %v, want %v", got, tc.families)
			}
			if !p.Usable() {
				t.Errorf("Usable() = false")
			}
			if len(p.Conflicts) != 0 {
				t.Errorf("Conflicts = %v, want none", p.Conflicts)
			}
		})
	}
}

func TestBuildOverlaps(t *testing.T) {
	tests := []struct {
		name      string
		pools     []v1alpha1.IPAddressPool
		ranges    map[string][]string
		declared  map[string][]string
		conflicts map[string][]string
		contested []string // addresses for which PoolOf is nil
		claimants map[string][]string
		owner     map[string]string // address -> PoolOf name
	}{
		{
			name: "partial overlap",
			pools: []v1alpha1.IPAddressPool{
				pool("a", []string{"192.0.2.0/28"}),
				pool("b", []string{"192.0.2.8-192.0.2.31"}),
			},
			ranges: map[string][]string{
				"a": {"192.0.2.0/29"},
				"b": {"192.0.2.16/28"},
			},
			declared: map[string][]string{
				"a": {"192.0.2.0/28"},
				"b": {"192.0.2.8-192.0.2.31"},
			},
			conflicts: map[string][]string{"a": {"b"}, "b": {"a"}},
			contested: []string{"192.0.2.8", "192.0.2.15", "192.0.2.10"},
			claimants: map[string][]string{
				"192.0.2.8":  {"a", "b"},
				"192.0.2.15": {"a", "b"},
				"192.0.2.7":  {"a"},
				"192.0.2.16": {"b"},
				"192.0.2.32": nil,
			},
			owner: map[string]string{"192.0.2.0": "a", "192.0.2.7": "a", "192.0.2.16": "b", "192.0.2.31": "b"},
		},
		{
			name: "one inside the other",
			pools: []v1alpha1.IPAddressPool{
				pool("outer", []string{"192.0.2.0/24"}),
				pool("inner", []string{"192.0.2.64/26"}),
			},
			ranges: map[string][]string{
				"outer": {"192.0.2.0/26", "192.0.2.128/25"},
				"inner": nil,
			},
			conflicts: map[string][]string{"outer": {"inner"}, "inner": {"outer"}},
			contested: []string{"192.0.2.64", "192.0.2.127"},
			claimants: map[string][]string{"192.0.2.100": {"inner", "outer"}, "192.0.2.1": {"outer"}},
			owner:     map[string]string{"192.0.2.63": "outer", "192.0.2.128": "outer"},
		},
		{
			name: "identical pools",
			pools: []v1alpha1.IPAddressPool{
				pool("x", []string{"2001:db8::/120"}),
				pool("y", []string{"2001:db8::/120"}),
			},
			ranges:    map[string][]string{"x": nil, "y": nil},
			conflicts: map[string][]string{"x": {"y"}, "y": {"x"}},
			contested: []string{"2001:db8::", "2001:db8::ff"},
			claimants: map[string][]string{"2001:db8::1": {"x", "y"}},
		},
		{
			name: "three way overlap",
			pools: []v1alpha1.IPAddressPool{
				pool("a", []string{"192.0.2.0-192.0.2.20"}),
				pool("b", []string{"192.0.2.10-192.0.2.30"}),
				pool("c", []string{"192.0.2.15-192.0.2.40"}),
			},
			ranges: map[string][]string{
				"a": {"192.0.2.0-192.0.2.9"},
				"b": nil,
				"c": {"192.0.2.31-192.0.2.40"},
			},
			conflicts: map[string][]string{"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a", "b"}},
			contested: []string{"192.0.2.10", "192.0.2.17", "192.0.2.30"},
			claimants: map[string][]string{
				"192.0.2.17": {"a", "b", "c"},
				"192.0.2.12": {"a", "b"},
				"192.0.2.25": {"b", "c"},
			},
			owner: map[string]string{"192.0.2.9": "a", "192.0.2.31": "c"},
		},
		{
			name: "touching pools do not conflict",
			pools: []v1alpha1.IPAddressPool{
				pool("a", []string{"192.0.2.0/25"}),
				pool("b", []string{"192.0.2.128/25"}),
			},
			ranges:    map[string][]string{"a": {"192.0.2.0/25"}, "b": {"192.0.2.128/25"}},
			conflicts: map[string][]string{"a": nil, "b": nil},
			owner:     map[string]string{"192.0.2.127": "a", "192.0.2.128": "b"},
		},
		{
			name: "overlap in one family only",
			pools: []v1alpha1.IPAddressPool{
				pool("a", []string{"192.0.2.0/28", "2001:db8::/124"}),
				pool("b", []string{"198.51.100.0/28", "2001:db8::8/125"}),
			},
			ranges: map[string][]string{
				"a": {"192.0.2.0/28", "2001:db8::/125"},
				"b": {"198.51.100.0/28"},
			},
			conflicts: map[string][]string{"a": {"b"}, "b": {"a"}},
			contested: []string{"2001:db8::8", "2001:db8::f"},
			owner:     map[string]string{"192.0.2.3": "a", "2001:db8::7": "a", "198.51.100.3": "b"},
		},
		{
			name: "overlap with an invalid pool still contests addresses",
			pools: []v1alpha1.IPAddressPool{
				pool("good", []string{"192.0.2.0/28"}),
				pool("bad", []string{"192.0.2.8/29", "nonsense"}),
			},
			ranges:    map[string][]string{"good": {"192.0.2.0/29"}},
			conflicts: map[string][]string{"good": {"bad"}, "bad": {"good"}},
			contested: []string{"192.0.2.8"},
			claimants: map[string][]string{"192.0.2.8": {"bad", "good"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Build(tc.pools)
			for name, want := range tc.ranges {
				if got := rangeStrings(s.Pool(name).Ranges); !slices.Equal(got, want) {
					t.Errorf("%s: Ranges = %v, want %v", name, got, want)
				}
			}
			for name, want := range tc.declared {
				if got := rangeStrings(s.Pool(name).Declared); !slices.Equal(got, want) {
					t.Errorf("%s: Declared = %v, want %v", name, got, want)
				}
			}
			for name, want := range tc.conflicts {
				if got := s.Pool(name).Conflicts; !slices.Equal(got, want) {
					t.Errorf("%s: Conflicts = %v, want %v", name, got, want)
				}
			}
			for _, a := range tc.contested {
				if p := s.PoolOf(netip.MustParseAddr(a)); p != nil {
					t.Errorf("PoolOf(%s) = %s, want nil: the address is contested", a, p.Name)
				}
			}
			for a, want := range tc.claimants {
				if got := s.DeclaringPools(netip.MustParseAddr(a)); !slices.Equal(got, want) {
					t.Errorf("DeclaringPools(%s) = %v, want %v", a, got, want)
				}
			}
			for a, want := range tc.owner {
				p := s.PoolOf(netip.MustParseAddr(a))
				if p == nil || p.Name != want {
					t.Errorf("PoolOf(%s) = %v, want %s", a, p, want)
				}
			}
			// No address that PoolOf resolves is in two pools' Ranges.
			for _, p := range tc.pools {
				for _, q := range tc.pools {
					if p.Name >= q.Name {
						continue
					}
					for _, r := range s.Pool(p.Name).Ranges {
						for _, o := range s.Pool(q.Name).Ranges {
							if r.Overlaps(o) {
								t.Errorf("Ranges of %s (%v) and %s (%v) overlap", p.Name, r, q.Name, o)
							}
						}
					}
				}
			}
		})
	}
}

func TestOrdered(t *testing.T) {
	prio := func(n int32) poolOpt { return allocation(v1alpha1.ServiceAllocation{Priority: n}) }
	noPrio := allocation(v1alpha1.ServiceAllocation{Namespaces: []string{"ns"}})
	tests := []struct {
		name  string
		pools []v1alpha1.IPAddressPool
		want  []string
	}{
		{
			name: "plain pools by name",
			pools: []v1alpha1.IPAddressPool{
				pool("c", []string{"192.0.2.32/28"}),
				pool("a", []string{"192.0.2.0/28"}),
				pool("b", []string{"192.0.2.16/28"}),
			},
			want: []string{"a", "b", "c"},
		},
		{
			name: "priority ascending, then allocation without priority, then the rest",
			pools: []v1alpha1.IPAddressPool{
				pool("plain-a", []string{"192.0.2.0/28"}),
				pool("alloc-b", []string{"192.0.2.16/28"}, noPrio),
				pool("prio-10", []string{"192.0.2.32/28"}, prio(10)),
				pool("prio-2", []string{"192.0.2.48/28"}, prio(2)),
				pool("alloc-a", []string{"192.0.2.64/28"}, noPrio),
				pool("plain-b", []string{"192.0.2.80/28"}),
				pool("prio-1", []string{"192.0.2.96/28"}, prio(1)),
			},
			want: []string{"prio-1", "prio-2", "prio-10", "alloc-a", "alloc-b", "plain-a", "plain-b"},
		},
		{
			name: "equal priority by name",
			pools: []v1alpha1.IPAddressPool{
				pool("zeta", []string{"192.0.2.0/28"}, prio(5)),
				pool("alpha", []string{"192.0.2.16/28"}, prio(5)),
				pool("mid", []string{"192.0.2.32/28"}, prio(3)),
			},
			want: []string{"mid", "alpha", "zeta"},
		},
		{
			name: "priority zero counts as none",
			pools: []v1alpha1.IPAddressPool{
				pool("zero", []string{"192.0.2.0/28"}, prio(0)),
				pool("plain", []string{"192.0.2.16/28"}),
				pool("one", []string{"192.0.2.32/28"}, prio(1)),
			},
			want: []string{"one", "zero", "plain"},
		},
		{
			name: "terminating and invalid pools excluded",
			pools: []v1alpha1.IPAddressPool{
				pool("a", []string{"192.0.2.0/28"}),
				pool("dying", []string{"192.0.2.16/28"}, terminating),
				pool("broken", []string{"bogus"}),
				pool("b", []string{"192.0.2.32/28"}, prio(1)),
			},
			want: []string{"b", "a"},
		},
		{
			name: "autoAssign false still ordered",
			pools: []v1alpha1.IPAddressPool{
				pool("b", []string{"192.0.2.0/28"}, autoAssign(false)),
				pool("a", []string{"192.0.2.16/28"}),
			},
			want: []string{"a", "b"},
		},
		{name: "no pools", want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Build(tc.pools)
			if got := names(s.Ordered()); !slices.Equal(got, tc.want) {
				t.Fatalf("Ordered() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTerminatingPool(t *testing.T) {
	s := Build([]v1alpha1.IPAddressPool{
		pool("dying", []string{"192.0.2.0/28"}, terminating),
		pool("live", []string{"192.0.2.16/28"}),
	})
	dying := s.Pool("dying")
	if dying == nil || !dying.Terminating {
		t.Fatalf("Pool(dying) = %+v, want a terminating pool", dying)
	}
	if dying.Usable() {
		t.Errorf("a terminating pool is Usable")
	}
	if p := s.PoolOf(netip.MustParseAddr("192.0.2.5")); p != dying {
		t.Errorf("PoolOf(192.0.2.5) = %v, want the terminating pool", p)
	}
	if got := names(s.Ordered()); !slices.Equal(got, []string{"live"}) {
		t.Errorf("Ordered() = %v, want [live]", got)
	}
	if got := s.Names(); !slices.Equal(got, []string{"dying", "live"}) {
		t.Errorf("Names() = %v, want [dying live]", got)
	}
}

func TestInvalidPools(t *testing.T) {
	tests := []struct {
		name    string
		obj     v1alpha1.IPAddressPool
		wantErr []string
		ranges  []string
	}{
		{
			name:    "unparsable address",
			obj:     pool("p", []string{"192.0.2.0/28", "not-an-address"}),
			wantErr: []string{"not-an-address"},
			ranges:  []string{"192.0.2.0/28"},
		},
		{
			name:    "reversed range",
			obj:     pool("p", []string{"192.0.2.20-192.0.2.10"}),
			wantErr: []string{"reversed"},
		},
		{
			name:    "mixed family range",
			obj:     pool("p", []string{"192.0.2.1-2001:db8::1"}),
			wantErr: []string{"mix"},
		},
		{
			name:    "two bad entries",
			obj:     pool("p", []string{"x", "192.0.2.0/40"}),
			wantErr: []string{`"x"`, "192.0.2.0/40"},
		},
		{
			name: "bad namespace selector",
			obj: pool("p", []string{"192.0.2.0/28"}, allocation(v1alpha1.ServiceAllocation{
				NamespaceSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Bogus"}}}},
			})),
			wantErr: []string{"namespaceSelectors"},
			ranges:  []string{"192.0.2.0/28"},
		},
		{
			name: "bad service selector",
			obj: pool("p", []string{"192.0.2.0/28"}, allocation(v1alpha1.ServiceAllocation{
				ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"bad key!": "x"}}},
			})),
			wantErr: []string{"serviceSelectors"},
			ranges:  []string{"192.0.2.0/28"},
		},
		{
			name: "In without values",
			obj: pool("p", []string{"192.0.2.0/28"}, allocation(v1alpha1.ServiceAllocation{
				ServiceSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}}},
			})),
			wantErr: []string{"serviceSelectors"},
			ranges:  []string{"192.0.2.0/28"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Build([]v1alpha1.IPAddressPool{tc.obj})
			p := s.Pool(tc.obj.Name)
			if p.Err == nil {
				t.Fatalf("Err = nil, want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(p.Err.Error(), w) {
					t.Errorf("Err = %q, want it to mention %q", p.Err, w)
				}
			}
			if p.Usable() {
				t.Errorf("an invalid pool is Usable")
			}
			if got := rangeStrings(p.Declared); !slices.Equal(got, tc.ranges) {
				t.Errorf("Declared = %v, want %v", got, tc.ranges)
			}
			if len(s.Ordered()) != 0 {
				t.Errorf("Ordered() = %v, want no pools", names(s.Ordered()))
			}
			for _, r := range p.Declared {
				if got := s.PoolOf(r.First); got != nil {
					t.Errorf("PoolOf(%s) = %s, want nil for an invalid pool", r.First, got.Name)
				}
				if got := s.DeclaringPools(r.First); !slices.Equal(got, []string{tc.obj.Name}) {
					t.Errorf("DeclaringPools(%s) = %v, want [%s]", r.First, got, tc.obj.Name)
				}
			}
		})
	}
}

func TestServes(t *testing.T) {
	sel := func(kv ...string) metav1.LabelSelector {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return metav1.LabelSelector{MatchLabels: m}
	}
	tests := []struct {
		name      string
		sa        *v1alpha1.ServiceAllocation
		namespace string
		nsLabels  map[string]string
		svcLabels map[string]string
		want      bool
	}{
		{name: "no allocation serves all", sa: nil, namespace: "any", want: true},
		{name: "empty allocation serves all", sa: &v1alpha1.ServiceAllocation{Priority: 3}, namespace: "any", want: true},
		{name: "namespace listed", sa: &v1alpha1.ServiceAllocation{Namespaces: []string{"a", "b"}}, namespace: "b", want: true},
		{name: "namespace not listed", sa: &v1alpha1.ServiceAllocation{Namespaces: []string{"a", "b"}}, namespace: "c"},
		{
			name:      "namespace selector matches",
			sa:        &v1alpha1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{sel("team", "red")}},
			namespace: "x", nsLabels: map[string]string{"team": "red", "env": "prod"}, want: true,
		},
		{
			name:      "namespace selector does not match",
			sa:        &v1alpha1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{sel("team", "red")}},
			namespace: "x", nsLabels: map[string]string{"team": "blue"},
		},
		{
			name:      "namespace selector with no namespace labels",
			sa:        &v1alpha1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{sel("team", "red")}},
			namespace: "x",
		},
		{
			name:      "any namespace selector may match",
			sa:        &v1alpha1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{sel("team", "red"), sel("team", "blue")}},
			namespace: "x", nsLabels: map[string]string{"team": "blue"}, want: true,
		},
		{
			name:      "service selector matches",
			sa:        &v1alpha1.ServiceAllocation{ServiceSelectors: []metav1.LabelSelector{sel("app", "web")}},
			namespace: "x", svcLabels: map[string]string{"app": "web"}, want: true,
		},
		{
			name:      "service selector does not match",
			sa:        &v1alpha1.ServiceAllocation{ServiceSelectors: []metav1.LabelSelector{sel("app", "web")}},
			namespace: "x", svcLabels: map[string]string{"app": "db"},
		},
		{
			name: "service selector with expressions",
			sa: &v1alpha1.ServiceAllocation{ServiceSelectors: []metav1.LabelSelector{{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"internal"}}},
			}}},
			namespace: "x", svcLabels: map[string]string{"tier": "public"}, want: true,
		},
		{
			name:      "empty selector matches everything",
			sa:        &v1alpha1.ServiceAllocation{ServiceSelectors: []metav1.LabelSelector{{}}},
			namespace: "x", want: true,
		},
		{
			name: "all three must hold",
			sa: &v1alpha1.ServiceAllocation{
				Namespaces:         []string{"x"},
				NamespaceSelectors: []metav1.LabelSelector{sel("team", "red")},
				ServiceSelectors:   []metav1.LabelSelector{sel("app", "web")},
			},
			namespace: "x", nsLabels: map[string]string{"team": "red"}, svcLabels: map[string]string{"app": "web"}, want: true,
		},
		{
			name: "all three, namespace wrong",
			sa: &v1alpha1.ServiceAllocation{
				Namespaces:         []string{"x"},
				NamespaceSelectors: []metav1.LabelSelector{sel("team", "red")},
				ServiceSelectors:   []metav1.LabelSelector{sel("app", "web")},
			},
			namespace: "y", nsLabels: map[string]string{"team": "red"}, svcLabels: map[string]string{"app": "web"},
		},
		{
			name: "all three, service selector wrong",
			sa: &v1alpha1.ServiceAllocation{
				Namespaces:         []string{"x"},
				NamespaceSelectors: []metav1.LabelSelector{sel("team", "red")},
				ServiceSelectors:   []metav1.LabelSelector{sel("app", "web")},
			},
			namespace: "x", nsLabels: map[string]string{"team": "red"}, svcLabels: map[string]string{"app": "db"},
		},
		{
			name: "all three, namespace selector wrong",
			sa: &v1alpha1.ServiceAllocation{
				Namespaces:         []string{"x"},
				NamespaceSelectors: []metav1.LabelSelector{sel("team", "red")},
				ServiceSelectors:   []metav1.LabelSelector{sel("app", "web")},
			},
			namespace: "x", nsLabels: map[string]string{"team": "blue"}, svcLabels: map[string]string{"app": "web"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []poolOpt
			if tc.sa != nil {
				opts = append(opts, allocation(*tc.sa))
			}
			s := Build([]v1alpha1.IPAddressPool{pool("p", []string{"192.0.2.0/28"}, opts...)})
			p := s.Pool("p")
			if p.Err != nil {
				t.Fatalf("Err = %v", p.Err)
			}
			if got := p.Serves(tc.namespace, tc.nsLabels, tc.svcLabels); got != tc.want {
				t.Fatalf("Serves(%q, %v, %v) = %v, want %v", tc.namespace, tc.nsLabels, tc.svcLabels, got, tc.want)
			}
		})
	}
}

func TestPoolOfAndLookups(t *testing.T) {
	s := Build([]v1alpha1.IPAddressPool{
		pool("v4", []string{"192.0.2.0/28", "198.51.100.10-198.51.100.20"}),
		pool("v6", []string{"2001:db8::/124"}),
		pool("top", []string{"255.255.255.254/31"}),
	})
	tests := []struct {
		name string
		a    string
		want string
	}{
		{name: "first of first range", a: "192.0.2.0", want: "v4"},
		{name: "last of first range", a: "192.0.2.15", want: "v4"},
		{name: "between ranges", a: "192.0.2.16"},
		{name: "second range", a: "198.51.100.15", want: "v4"},
		{name: "below everything", a: "0.0.0.1"},
		{name: "v6", a: "2001:db8::5", want: "v6"},
		{name: "v6 after range", a: "2001:db8::10"},
		{name: "v6 whose low bits match a v4 range", a: "::c000:201"},
		{name: "v4-mapped form of a member", a: "::ffff:192.0.2.1"},
		{name: "top of v4", a: "255.255.255.255", want: "top"},
		{name: "top of v6", a: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := s.PoolOf(netip.MustParseAddr(tc.a))
			got := ""
			if p != nil {
				got = p.Name
			}
			if got != tc.want {
				t.Fatalf("PoolOf(%s) = %q, want %q", tc.a, got, tc.want)
			}
		})
	}
	if s.Pool("missing") != nil {
		t.Errorf("Pool(missing) != nil")
	}
	if got := s.Names(); !slices.Equal(got, []string{"top", "v4", "v6"}) {
		t.Errorf("Names() = %v", got)
	}
}

func TestBuildEmpty(t *testing.T) {
	s := Build(nil)
	if got := s.Names(); len(got) != 0 {
		t.Errorf("Names() = %v, want none", got)
	}
	if p := s.PoolOf(netip.MustParseAddr("192.0.2.1")); p != nil {
		t.Errorf("PoolOf on an empty snapshot = %v", p)
	}
	if got := s.DeclaringPools(netip.MustParseAddr("192.0.2.1")); got != nil {
		t.Errorf("DeclaringPools on an empty snapshot = %v", got)
	}
}
