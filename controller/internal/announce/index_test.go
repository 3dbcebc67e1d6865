package announce

import (
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// Each step changes one report (or deletes it) and expects exactly the addresses whose
// Services must be looked at again.
func TestIndexChanges(t *testing.T) {
	ab := []string{"a", "b"}
	bgp := func(node string, members []string, peers []string, ips ...string) v1alpha1.SpeakerStatus {
		st := status(node, members)
		st.Status.Announced = []v1alpha1.AnnouncedSet{set(v1alpha1.ModeBGP, nil, peers, ips...)}
		return st
	}
	type step struct {
		name   string
		put    *v1alpha1.SpeakerStatus
		delete string
		want   string // changed addresses, space-separated
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a lone speaker, then the same report again", []step{
			{name: "first", put: ptr(status("a", []string{"a"}, "192.0.2.1", "192.0.2.2")), want: "192.0.2.1 192.0.2.2"},
			{name: "again", put: ptr(status("a", []string{"a"}, "192.0.2.1", "192.0.2.2")), want: ""},
		}},
		{"one address more in a large set", []step{
			{name: "first", put: ptr(bgp("a", []string{"a"}, []string{"tor"}, "192.0.2.1", "192.0.2.2", "2001:db8::1")), want: "192.0.2.1 192.0.2.2 2001:db8::1"},
			{name: "one more", put: ptr(bgp("a", []string{"a"}, []string{"tor"}, "192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1")), want: "192.0.2.3"},
			{name: "one less", put: ptr(bgp("a", []string{"a"}, []string{"tor"}, "192.0.2.1", "192.0.2.3", "2001:db8::1")), want: "192.0.2.2"},
			{name: "one in, one out", put: ptr(bgp("a", []string{"a"}, []string{"tor"}, "192.0.2.3", "2001:db8::1", "2001:db8::2")), want: "192.0.2.1 2001:db8::2"},
			{name: "a second set", put: func() *v1alpha1.SpeakerStatus {
				st := bgp("a", []string{"a"}, []string{"tor"}, "192.0.2.3", "2001:db8::1", "2001:db8::2")
				st.Status.Announced = append(st.Status.Announced, set(v1alpha1.ModeL2, []string{"eth0"}, nil, "192.0.2.3", "192.0.2.4"))
				return &st
			}(), want: "192.0.2.3 192.0.2.4"},
		}},
		{"the peers change", []step{
			{name: "first", put: ptr(bgp("a", []string{"a"}, []string{"tor1"}, "192.0.2.1", "192.0.2.2")), want: "192.0.2.1 192.0.2.2"},
			{name: "a second peer", put: ptr(bgp("a", []string{"a"}, []string{"tor1", "tor2"}, "192.0.2.1", "192.0.2.2")), want: "192.0.2.1 192.0.2.2"},
		}},
		{"an address moves from one node to the other", []step{
			{name: "a, the only report, counts", put: ptr(status("a", ab, "192.0.2.1", "192.0.2.2")), want: "192.0.2.1 192.0.2.2"},
			{name: "b lists a: both live", put: ptr(status("b", ab)), want: ""},
			{name: "a yields", put: ptr(status("a", ab, "192.0.2.1")), want: "192.0.2.2"},
			{name: "b takes it", put: ptr(status("b", ab, "192.0.2.2")), want: "192.0.2.2"},
		}},
		{"a node stops being listed, then its report changes", []step{
			{name: "a", put: ptr(status("a", ab, "192.0.2.1")), want: "192.0.2.1"},
			{name: "b", put: ptr(status("b", ab, "192.0.2.9")), want: "192.0.2.9"},
			{name: "b no longer lists a, a still lists b", put: ptr(status("b", []string{"b"}, "192.0.2.9")), want: "192.0.2.1"},
			{name: "a, dead, changes", put: ptr(status("a", ab, "192.0.2.1", "192.0.2.2")), want: ""},
			{name: "b lists a again", put: ptr(status("b", ab, "192.0.2.9")), want: "192.0.2.1 192.0.2.2"},
		}},
		{"a speaker stops (no members) and its report goes", []step{
			{name: "a", put: ptr(status("a", ab, "192.0.2.1")), want: "192.0.2.1"},
			{name: "b", put: ptr(status("b", ab, "192.0.2.9")), want: "192.0.2.9"},
			{name: "b stopped: a is alone and live still", put: ptr(status("b", nil, "192.0.2.9")), want: "192.0.2.9"},
			{name: "a deleted", delete: "a", want: "192.0.2.1"},
		}},
		{"conflicts", []step{
			{name: "a", put: ptr(status("a", []string{"a"}, "192.0.2.1")), want: "192.0.2.1"},
			{name: "a conflict", put: func() *v1alpha1.SpeakerStatus {
				st := status("a", []string{"a"}, "192.0.2.1")
				st.Status.Conflicts = []v1alpha1.AddressConflict{{IP: "192.0.2.7", MAC: "02:00:00:00:00:99"}}
				return &st
			}(), want: "192.0.2.7"},
			{name: "over", put: ptr(status("a", []string{"a"}, "192.0.2.1")), want: "192.0.2.7"},
		}},
		{"a set that does not decode", []step{
			{name: "bad", put: func() *v1alpha1.SpeakerStatus {
				st := status("a", []string{"a"}, "192.0.2.1")
				st.Status.Announced[0].Addresses = []byte{7}
				return &st
			}(), want: ""},
			{name: "mended", put: ptr(status("a", []string{"a"}, "192.0.2.1")), want: "192.0.2.1"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := NewIndex()
			for _, s := range tc.steps {
				var changed []netip.Addr
				var err error
				if s.put != nil {
					changed, err = x.Put(s.put)
				} else {
					changed, err = x.Delete(s.delete)
				}
				if (err != nil) != (s.name == "bad") {
					t.Errorf("%s: error %v", s.name, err)
				}
				var got []string
				for _, a := range changed {
					got = append(got, a.String())
				}
				if strings.Join(got, " ") != s.want {
					t.Errorf("%s: changed %v, want %s", s.name, got, s.want)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// The view names the live announcers of an address, an address shared by nodes included, and
// leaves out BGP without an established session.
func TestIndexView(t *testing.T) {
	abc := []string{"a", "b", "c"}
	shared, alone := netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("203.0.113.6")
	a := status("a", abc)
	a.Status.Announced = []v1alpha1.AnnouncedSet{
		set(v1alpha1.ModeBGP, nil, []string{"tor1", "tor2"}, shared.String(), alone.String()),
		set(v1alpha1.ModeL2, []string{"eth0", "eth1"}, nil, shared.String()),
	}
	b := status("b", abc)
	b.Status.Announced = []v1alpha1.AnnouncedSet{set(v1alpha1.ModeBGP, nil, []string{"tor1"}, shared.String())}
	c := status("c", abc)
	c.Status.Announced = []v1alpha1.AnnouncedSet{set(v1alpha1.ModeBGP, nil, nil, shared.String())}
	dead := status("dead", []string{"dead"})
	dead.Status.Announced = []v1alpha1.AnnouncedSet{set(v1alpha1.ModeBGP, nil, []string{"tor1"}, shared.String())}
	x := NewIndex()
	for _, st := range []*v1alpha1.SpeakerStatus{&a, &b, &c, &dead} {
		if _, err := x.Put(st); err != nil {
			t.Fatal(err)
		}
	}
	v := x.view([]netip.Addr{shared, alone})
	want := map[netip.Addr][]announcer{
		shared: {{node: "a", mode: v1alpha1.ModeBGP, peers: []string{"tor1", "tor2"}}, {node: "a", mode: v1alpha1.ModeL2, interfaces: []string{"eth0", "eth1"}},
			{node: "b", mode: v1alpha1.ModeBGP, peers: []string{"tor1"}}},
		alone: {{node: "a", mode: v1alpha1.ModeBGP, peers: []string{"tor1", "tor2"}}},
	}
	if !reflect.DeepEqual(v.announced, want) {
		t.Errorf("announcers\n%+v\nwant\n%+v", v.announced, want)
	}
	if got := slices.Sorted(maps.Keys(v.live)); !slices.Equal(got, abc) {
		t.Errorf("live %v", got)
	}
	if len(v.reports) != 4 || v.reports[0].Name != "a" || v.reports[0].Status.Announced != nil {
		t.Errorf("reports %+v: want all four without their sets, by node", v.reports)
	}
	if c := Desired([]netip.Addr{shared}, v.announced, nil, nil, 1); c.Message != "L2 from a on eth0, eth1; BGP from a, b to 2 peers" {
		t.Errorf("message %q", c.Message)
	}
}

// BenchmarkIndexPut: ten nodes announce the same 50,000 addresses over BGP; each round one
// node's report gains one address and then loses it again.
func BenchmarkIndexPut(b *testing.B) {
	const n, nodes = 50000, 10
	addrs := make([]string, 0, n+1)
	for a := netip.MustParseAddr("10.0.0.0"); len(addrs) < n+1; a = a.Next() {
		addrs = append(addrs, a.String())
	}
	var names []string
	for i := range nodes {
		names = append(names, fmt.Sprintf("node-%d", i))
	}
	report := func(node string, ips []string) *v1alpha1.SpeakerStatus {
		st := status(node, names)
		st.Status.Announced = []v1alpha1.AnnouncedSet{set(v1alpha1.ModeBGP, nil, []string{"tor1", "tor2"}, ips...)}
		return &st
	}
	x := NewIndex()
	for _, name := range names {
		if _, err := x.Put(report(name, addrs[:n])); err != nil {
			b.Fatal(err)
		}
	}
	more, less := report(names[3], addrs), report(names[3], addrs[:n])
	b.ReportAllocs()
	for b.Loop() {
		for _, st := range []*v1alpha1.SpeakerStatus{more, less} {
			if changed, err := x.Put(st); err != nil || len(changed) != 1 {
				b.Fatalf("changed %v, %v", changed, err)
			}
		}
	}
}
