package host

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// labPrefix names the network namespaces of this test: labPrefix<pid>-<n>.
	labPrefix = "vc7-host-"
	// netnsDir is where `ip netns add` mounts named namespaces.
	netnsDir = "/var/run/netns"
)

var labCount atomic.Int32

// labNetns creates an empty network namespace, removed when the test ends, and returns its
// name. Namespaces left by a run that was killed are removed first.
func labNetns(t *testing.T) string {
	t.Helper()
	if os.Getenv("VIPCAST_LAB") != "1" || os.Geteuid() != 0 {
		t.Skip("the host lab test needs root and VIPCAST_LAB=1 (make test sets it)")
	}
	removeStaleNetns(t)
	name := fmt.Sprintf("%s%d-%d", labPrefix, os.Getpid(), labCount.Add(1))
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	// No duplicate address detection: addresses are final at once, and no late flag
	// change is mistaken for the notification of a step.
	run(t, "ip", "netns", "exec", name, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return name
}

// removeStaleNetns removes this test's namespaces whose process is gone.
func removeStaleNetns(t *testing.T) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), labPrefix)
		if !ok {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
				t.Logf("removing stale namespace %s: %v: %s", e.Name(), err, out)
			}
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// ipIn runs one `ip -n ns` command per line of script.
func ipIn(t *testing.T, ns string, script string) {
	t.Helper()
	for line := range strings.Lines(script) {
		if f := strings.Fields(line); len(f) > 0 {
			run(t, "ip", append([]string{"-n", ns}, f...)...)
		}
	}
}

func find(links []Link, name string) *Link {
	for i := range links {
		if links[i].Name == name {
			return &links[i]
		}
	}
	return nil
}

// waitLinks reads the links until check passes, again after each notification, and fails
// the test when none comes within waitTimeout or check still fails then.
func waitLinks(t *testing.T, h *Host, notes <-chan struct{}, what string, check func([]Link) error) []Link {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		links, err := h.Links()
		if err != nil {
			t.Fatal(err)
		}
		if err = check(links); err == nil {
			return links
		}
		select {
		case _, ok := <-notes:
			if !ok {
				t.Fatalf("%s: watch ended", what)
			}
		case <-deadline:
			t.Fatalf("%s: %v after %v; links %+v", what, err, waitTimeout, links)
		}
	}
}

// step runs one `ip` command, wants a notification after it, and waits for check to pass.
func step(t *testing.T, h *Host, notes <-chan struct{}, ns, command string, check func([]Link) error) {
	t.Helper()
	drain(notes)
	ipIn(t, ns, command)
	wantNote(t, notes, command)
	waitLinks(t, h, notes, command, check)
}

func TestLabLinksAndWatch(t *testing.T) {
	ns := labNetns(t)
	// vc7a-vc7b: the usable pair. vc7ex1-vc7ex2: excluded by name and by pattern.
	// vc7dn-vc7pr: one end down, so the other is down at its lower layer.
	// vc7port-vc7pp: vc7port is a port of the bridge vc7br.
	ipIn(t, ns, `
		link set dev lo up
		link add vc7a address 02:00:00:00:07:01 type veth peer name vc7b address 02:00:00:00:07:02
		addr add 192.0.2.1/24 dev vc7a
		addr add 2001:db8:1::1/64 dev vc7a nodad
		addr add 192.0.2.2/24 dev vc7b
		link add vc7ex1 type veth peer name vc7ex2
		link add vc7dn type veth peer name vc7pr
		link add vc7br address 02:00:00:00:07:10 type bridge
		link add vc7port type veth peer name vc7pp
		link set dev vc7port master vc7br
		link set dev vc7a up
		link set dev vc7b up
		link set dev vc7ex1 up
		link set dev vc7ex2 up
		link set dev vc7pr up
		link set dev vc7br up
		link set dev vc7port up
		link set dev vc7pp up
	`)
	h, err := OpenIn(filepath.Join(netnsDir, ns), []string{"vc7ex1", "vc7e?2"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	notes, err := h.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	wantPrefixes := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}
	links := waitLinks(t, h, notes, "initial links", func(links []Link) error {
		a := find(links, "vc7a")
		switch {
		case a == nil:
			return errors.New("vc7a missing")
		case a.MAC.String() != "02:00:00:00:07:01":
			return fmt.Errorf("vc7a has MAC %s", a.MAC)
		case !slices.Equal(a.Prefixes, wantPrefixes):
			return fmt.Errorf("vc7a has prefixes %v, want %v", a.Prefixes, wantPrefixes)
		case find(links, "vc7b") == nil:
			return errors.New("vc7b missing")
		}
		for _, name := range []string{"lo", "vc7ex1", "vc7ex2", "vc7dn", "vc7pr", "vc7port"} {
			if find(links, name) != nil {
				return fmt.Errorf("%s listed", name)
			}
		}
		return nil
	})
	a := find(links, "vc7a")
	if a.Index <= 0 || !a.Holds(netip.MustParseAddr("192.0.2.240")) || !a.Holds(netip.MustParseAddr("2001:db8:1::240")) {
		t.Errorf("vc7a = %+v: want an index and to hold 192.0.2.240 and 2001:db8:1::240", *a)
	}
	if !slices.IsSortedFunc(links, func(x, y Link) int { return strings.Compare(x.Name, y.Name) }) {
		t.Errorf("links not sorted by name: %v", names(links))
	}

	step(t, h, notes, ns, "link set dev vc7a address 02:00:00:00:07:99", func(links []Link) error {
		if a := find(links, "vc7a"); a == nil || a.MAC.String() != "02:00:00:00:07:99" {
			return fmt.Errorf("vc7a = %+v, want MAC 02:00:00:00:07:99", a)
		}
		return nil
	})
	step(t, h, notes, ns, "addr add 2001:db8:2::1/64 dev vc7a nodad", func(links []Link) error {
		if a := find(links, "vc7a"); a == nil || !slices.Contains(a.Prefixes, netip.MustParsePrefix("2001:db8:2::/64")) {
			return fmt.Errorf("vc7a = %+v, want prefix 2001:db8:2::/64", a)
		}
		return nil
	})
	step(t, h, notes, ns, "link set dev vc7b down", func(links []Link) error {
		for _, name := range []string{"vc7b", "vc7a"} { // vc7a: its peer is down
			if find(links, name) != nil {
				return fmt.Errorf("%s listed", name)
			}
		}
		return nil
	})
}
