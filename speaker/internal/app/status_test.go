package app

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
)

// The report groups the addresses by how they are announced, sorted, so the same plan always
// writes the same bytes.
func TestAnnouncedSets(t *testing.T) {
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")
	l2 := func(ifs ...string) announcement {
		return announcement{mode: v1alpha1.ModeL2, services: []string{"ns/web"}, interfaces: ifs}
	}
	bgp := func(peers ...string) announcement {
		return announcement{mode: v1alpha1.ModeBGP, services: []string{"ns/web"}, peers: peers, prefix: "192.0.2.0/24"}
	}
	mine := map[annKey]announcement{
		{c, v1alpha1.ModeL2}:  l2("eth0"),
		{a, v1alpha1.ModeL2}:  l2("eth1", "eth0"), // the same interfaces as b's, in another order
		{b, v1alpha1.ModeL2}:  l2("eth0", "eth1"),
		{a, v1alpha1.ModeBGP}: bgp("tor2", "tor1"),
		{b, v1alpha1.ModeBGP}: bgp(),
		{c, v1alpha1.ModeBGP}: bgp("tor1", "tor2"),
	}
	got := announcedSets(mine)
	var desc []string
	for _, s := range got {
		addrs, err := addrset.Decode(s.Addresses)
		if err != nil || int(s.Count) != len(addrs) {
			t.Fatalf("set %+v: %d addresses, %v", s, len(addrs), err)
		}
		desc = append(desc, fmt.Sprintf("%s %v %v %v", s.Mode, s.Interfaces, s.Peers, addrs))
	}
	want := []string{
		"BGP [] [] [192.0.2.2]",
		"BGP [] [tor1 tor2] [192.0.2.1 2001:db8::1]",
		"L2 [eth0] [] [2001:db8::1]",
		"L2 [eth0 eth1] [] [192.0.2.1 192.0.2.2]",
	}
	if strings.Join(desc, "\n") != strings.Join(want, "\n") {
		t.Errorf("sets:\n%s\nwant:\n%s", strings.Join(desc, "\n"), strings.Join(want, "\n"))
	}
	if st := (report{mine: mine}).status(); st.AnnouncedCount != 6 || !sameSets(st.Announced, got) {
		t.Errorf("report: %d announced, sets %+v", st.AnnouncedCount, st.Announced)
	}
	delete(mine, annKey{b, v1alpha1.ModeBGP})
	if sameSets(announcedSets(mine), got) {
		t.Error("a set less compares the same")
	}
}
