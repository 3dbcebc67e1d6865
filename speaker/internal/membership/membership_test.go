package membership

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// freePort finds a port free for both UDP and TCP on loopback.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type member struct {
	*Cluster
	addr string
}

func startMember(t *testing.T, name string, key []byte) member {
	t.Helper()
	port := freePort(t)
	c, err := Start(Config{Node: name, BindAddr: "127.0.0.1", Port: port, Key: key, Timers: FastTimers(), Log: logr.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown() })
	return member{c, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
}

func waitMembers(t *testing.T, c member, want ...string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		got := c.Members()
		if len(got) != len(want) {
			return false, nil
		}
		for _, w := range want {
			if !got[w] {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("members %v, want %v", c.Members(), want)
	}
}

var key = []byte("0123456789abcdef")

func TestJoinLeaveAndCrash(t *testing.T) {
	a, b, c := startMember(t, "a", key), startMember(t, "b", key), startMember(t, "c", key)
	if n, err := b.Join([]string{a.addr}); err != nil || n != 1 {
		t.Fatalf("b joins a: %d %v", n, err)
	}
	if _, err := c.Join([]string{a.addr, b.addr, "127.0.0.1:1"}); err != nil {
		t.Fatalf("c joins a and b (and a dead address): %v", err)
	}
	for _, m := range []member{a, b, c} {
		waitMembers(t, m, "a", "b", "c")
	}
	select {
	case <-a.Changes():
	default:
		t.Error("no change was signalled")
	}

	// A graceful leave is seen at once.
	start := time.Now()
	if err := c.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "a", "b")
	t.Logf("leave seen after %s", time.Since(start).Round(time.Millisecond))
	_ = c.Shutdown()

	// A crash (no leave) is detected by probing.
	start = time.Now()
	_ = b.Shutdown()
	waitMembers(t, a, "a")
	t.Logf("crash detected after %s", time.Since(start).Round(time.Millisecond))
}

func TestWrongKeyCannotJoin(t *testing.T) {
	a := startMember(t, "a", key)
	intruder := startMember(t, "intruder", []byte("fedcba9876543210"))
	if _, err := intruder.Join([]string{a.addr}); err == nil {
		t.Error("a member with another key joined")
	}
	time.Sleep(300 * time.Millisecond)
	if a.Members()["intruder"] {
		t.Error("the intruder is a member")
	}
}

func TestBadKey(t *testing.T) {
	if _, err := Start(Config{Node: "x", BindAddr: "127.0.0.1", Port: 0, Key: []byte("short"), Timers: FastTimers(), Log: logr.Discard()}); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

func TestJoinedAndMeta(t *testing.T) {
	a, b := startMember(t, "a", key), startMember(t, "b", key)
	if a.Joined() || b.Joined() {
		t.Fatal("a member alone says it joined")
	}
	if err := a.SetMeta([]byte("links of a"), time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join([]string{a.addr}); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, b, "a", "b")
	if !a.Joined() && !b.Joined() {
		t.Error("neither member says it joined")
	}
	waitMeta := func(m member, name, want string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return string(m.Meta()[name]) == want, nil
		})
		if err != nil {
			t.Fatalf("%s's metadata seen as %q, want %q", name, m.Meta()[name], want)
		}
	}
	waitMeta(b, "a", "links of a")
	// An update reaches the others and signals a change.
	for len(b.Changes()) > 0 {
		<-b.Changes()
	}
	if err := a.SetMeta([]byte("new links"), time.Second); err != nil {
		t.Fatal(err)
	}
	waitMeta(b, "a", "new links")
	select {
	case <-b.Changes():
	default:
		t.Error("a metadata update was not signalled")
	}
	if err := a.SetMeta(make([]byte, 600), time.Second); err == nil {
		t.Error("metadata over memberlist's limit was accepted")
	}
	// Joined stays true when the other member is gone.
	_ = a.Shutdown()
	waitMembers(t, b, "b")
	if !b.Joined() {
		t.Error("b forgot it had joined")
	}
}

// Peers that accept a connection and never answer (a hung speaker) cost a join no more than
// the timeout, and do not stop it from joining the one that answers.
func TestJoinPastSilentPeers(t *testing.T) {
	a := startMember(t, "a", key)
	port := freePort(t)
	b, err := Start(Config{Node: "b", BindAddr: "127.0.0.1", Port: port, Key: key, Timers: FastTimers(), Log: logr.Discard(), JoinTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown() })
	var silent []string
	for range 4 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		silent = append(silent, l.Addr().String())
	}
	n, err := b.Join(append(silent, a.addr))
	if err != nil || n != 1 {
		t.Fatalf("joined %d, %v", n, err)
	}
	if _, err := b.Join(silent); err == nil {
		t.Error("joining only silent peers succeeded")
	}
}

// The last metadata of a member that left is kept until it returns.
func TestDeparted(t *testing.T) {
	a, b := startMember(t, "a", key), startMember(t, "b", key)
	if _, err := b.Join([]string{a.addr}); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "a", "b")
	if err := b.SetMeta([]byte("restarting"), time.Second); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return string(a.Meta()["b"]) == "restarting", nil
	})
	if err != nil {
		t.Fatal("b's metadata never reached a")
	}
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "a")
	if got := string(a.Departed()["b"]); got != "restarting" {
		t.Errorf("b's last metadata %q", got)
	}
}
