package announce

import (
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
	"github.com/vipcast/vipcast/internal/planner"
)

// status is node's report announcing ips over L2 on eth0.
func status(node string, members []string, ips ...string) v1alpha1.SpeakerStatus {
	st := v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: node}}
	st.Status.Members = members
	if len(ips) > 0 {
		st.Status.Announced = []v1alpha1.AnnouncedSet{set(v1alpha1.ModeL2, []string{"eth0"}, nil, ips...)}
	}
	return st
}

func set(mode v1alpha1.AnnouncementMode, ifs, peers []string, ips ...string) v1alpha1.AnnouncedSet {
	s := v1alpha1.AnnouncedSet{Mode: mode, Peers: peers, Count: int32(len(ips))}
	for _, i := range ifs {
		s.Interfaces = append(s.Interfaces, v1alpha1.InterfaceName(i))
	}
	var addrs []netip.Addr
	for _, ip := range ips {
		addrs = append(addrs, netip.MustParseAddr(ip))
	}
	s.Addresses = addrset.Encode(addrs)
	return s
}

// announcers indexes the reports and returns the live announcers of ips.
func announcers(t *testing.T, statuses []v1alpha1.SpeakerStatus, ips ...netip.Addr) map[netip.Addr][]announcer {
	t.Helper()
	x := NewIndex()
	for i := range statuses {
		if _, err := x.Put(&statuses[i]); err != nil {
			t.Fatal(err)
		}
	}
	return x.view(ips).announced
}

func TestLiveSpeakers(t *testing.T) {
	all := []string{"a", "b", "c"}
	for _, tc := range []struct {
		name     string
		statuses []v1alpha1.SpeakerStatus
		want     string
	}{
		{"all see each other", []v1alpha1.SpeakerStatus{status("a", all), status("b", all), status("c", all)}, "a b c"},
		// c lost power: its last report still lists everyone, the others no longer list c.
		{"a dead node's stale report", []v1alpha1.SpeakerStatus{status("a", []string{"a", "b"}), status("b", []string{"a", "b"}), status("c", all)}, "a b"},
		{"a lone speaker", []v1alpha1.SpeakerStatus{status("a", []string{"a"})}, "a"},
		{"a stopped speaker (no members)", []v1alpha1.SpeakerStatus{status("a", []string{"a", "b"}), status("b", nil)}, "a"},
		{"a member without a report", []v1alpha1.SpeakerStatus{status("a", []string{"a", "x"}), status("b", []string{"a", "b"})}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live := LiveSpeakers(tc.statuses)
			var got []string
			for _, n := range []string{"a", "b", "c", "x"} {
				if live[n] {
					got = append(got, n)
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("live %v, want %s", got, tc.want)
			}
		})
	}
}

func TestDesired(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.240"), netip.MustParseAddr("2001:db8::240")
	statuses := []v1alpha1.SpeakerStatus{status("a", []string{"a", "b"}, "192.0.2.240"), status("b", []string{"a", "b"}, "2001:db8::240")}
	ann := announcers(t, statuses, v4, v6)
	c := Desired([]netip.Addr{v4, v6}, ann, nil, nil, 3)
	if c.Status != metav1.ConditionTrue || c.Message != "192.0.2.240: L2 from a on eth0; 2001:db8::240: L2 from b on eth0" || c.ObservedGeneration != 3 {
		t.Errorf("both announced: %+v", c)
	}
	c = Desired([]netip.Addr{v4}, ann, nil, nil, 1)
	if c.Message != "L2 from a on eth0" {
		t.Errorf("one address: %q", c.Message)
	}
	missing := netip.MustParseAddr("192.0.2.241")
	for _, tc := range []struct {
		decision planner.Decision
		reason   string
	}{
		{planner.Decision{Reason: planner.NoLocalEndpoints}, "NoLocalEndpoints"},
		{planner.Decision{Reason: planner.NoInterface}, "NoInterface"},
		{planner.Decision{Owner: "b"}, ReasonPending},
		{planner.Decision{}, ReasonPending},
	} {
		c := Desired([]netip.Addr{v4, missing}, ann, nil, map[netip.Addr]planner.Decision{missing: tc.decision}, 1)
		if c.Status != metav1.ConditionFalse || c.Reason != tc.reason || !strings.Contains(c.Message, missing.String()) {
			t.Errorf("%+v: %+v", tc.decision, c)
		}
	}
}

func TestDesiredBGP(t *testing.T) {
	vip := netip.MustParseAddr("203.0.113.5")
	bgp := func(node string, peers ...string) v1alpha1.SpeakerStatus {
		return v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: node}, Status: v1alpha1.SpeakerReport{
			Members:   []string{"a", "b", "c"},
			Announced: []v1alpha1.AnnouncedSet{set(v1alpha1.ModeBGP, nil, peers, vip.String())}}}
	}
	statuses := []v1alpha1.SpeakerStatus{bgp("c", "tor1"), bgp("a", "tor1", "tor2"), bgp("b")}
	c := Desired([]netip.Addr{vip}, announcers(t, statuses, vip), nil, nil, 1)
	if c.Status != metav1.ConditionTrue || c.Message != "BGP from a, c to 2 peers" {
		t.Errorf("BGP from two nodes (b has no established session): %+v", c)
	}
	statuses = []v1alpha1.SpeakerStatus{bgp("b")}
	c = Desired([]netip.Addr{vip}, announcers(t, statuses, vip), nil, map[netip.Addr]planner.Decision{vip: {Owner: "b over BGP"}}, 1)
	if c.Status != metav1.ConditionFalse || c.Reason != ReasonPending || !strings.Contains(c.Message, "b over BGP") {
		t.Errorf("no established session: %+v", c)
	}
}

func TestDesiredConflict(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.240")
	statuses := []v1alpha1.SpeakerStatus{status("a", []string{"a", "b"}, "192.0.2.240"), status("b", []string{"a", "b"})}
	statuses[0].Status.Conflicts = []v1alpha1.AddressConflict{{IP: "192.0.2.240", MAC: "02:00:00:00:00:99"}}
	statuses = append(statuses, status("gone", []string{"gone"}))
	statuses[2].Status.Conflicts = []v1alpha1.AddressConflict{{IP: "192.0.2.241", MAC: "02:00:00:00:00:98"}}
	live := LiveSpeakers(statuses)
	cs := Conflicts(statuses, live)
	if len(cs) != 1 || len(cs[v4]) != 1 {
		t.Fatalf("conflicts %+v: want the live node a's only", cs)
	}
	c := Desired([]netip.Addr{v4}, announcers(t, statuses, v4), cs, nil, 1)
	if c.Status != metav1.ConditionFalse || c.Reason != ReasonConflict || !strings.Contains(c.Message, "02:00:00:00:00:99 (a device that is no speaker)") || !strings.Contains(c.Message, "announced by a") {
		t.Errorf("a foreign claim: %+v", c)
	}
	statuses[0].Status.Conflicts[0].Node = "b"
	c = Desired([]netip.Addr{v4}, announcers(t, statuses, v4), Conflicts(statuses, live), nil, 1)
	if !strings.Contains(c.Message, "(the speaker on b)") {
		t.Errorf("a speaker's claim: %+v", c)
	}
	// The conflict shows even when an address before it still waits for its node's report.
	pending := netip.MustParseAddr("192.0.2.1")
	decisions := map[netip.Addr]planner.Decision{pending: {Owner: "b"}}
	c = Desired([]netip.Addr{pending, v4}, announcers(t, statuses, v4), Conflicts(statuses, live), decisions, 1)
	if c.Reason != ReasonConflict || !strings.Contains(c.Message, "192.0.2.240") {
		t.Errorf("a conflict behind a pending address: %+v", c)
	}
	statuses[0].Status.Interfaces = []v1alpha1.SpeakerInterface{{Name: "eth0", MAC: "02:00:00:00:00:11", Prefixes: []string{"192.0.2.0/24", "bad"}}}
	links := Links(statuses, live)
	if l := links["a"]; len(l) != 1 || l[0].Name != "eth0" || len(l[0].Prefixes) != 1 {
		t.Errorf("a's links: %+v", l)
	}
	if l, ok := links["b"]; ok {
		t.Errorf("b reports no interfaces, so its are unknown: %+v", l)
	}
}
