package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netns"
)

// InNetns runs fn on a thread inside the named network namespace. Sockets fn opens stay in
// that namespace for good, so a test on the host can run a node's network code (an ARP
// responder, a client) in-process; goroutines fn starts run elsewhere and must only use
// sockets opened by fn.
func InNetns(name string, fn func() error) error {
	target, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", name, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	home, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer home.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %s: %w", name, err)
	}
	fnErr := fn()
	if err := netns.Set(home); err != nil {
		// The thread stays locked and so dies with this goroutine, never to be reused in the
		// wrong namespace.
		return fmt.Errorf("leaving network namespace %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// DialerIn returns a dial function whose connections start inside the named network
// namespace (see InNetns), so a test on the host can act as the client, a pod or the router.
func DialerIn(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
		nsErr := InNetns(name, func() error {
			var d net.Dialer
			conn, err = d.DialContext(ctx, network, addr)
			return nil
		})
		if nsErr != nil {
			if conn != nil {
				conn.Close()
			}
			return nil, nsErr
		}
		return conn, err
	}
}

// HTTPClientIn is an HTTP client whose connections start in the named namespace. It opens a
// new connection for every request, as a new client would.
func HTTPClientIn(name string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       DialerIn(name),
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

// Get sends one HTTP GET from inside the named namespace and returns the body.
func Get(ctx context.Context, name, url string, timeout time.Duration) (string, error) {
	return get(ctx, HTTPClientIn(name, timeout), url)
}

func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// URL is http://addr:port/ with IPv6 addresses bracketed.
func URL(addr fmt.Stringer, port int) string {
	return "http://" + net.JoinHostPort(addr.String(), fmt.Sprint(port)) + "/"
}

// Reply is a pod server's answer, parsed.
type Reply struct{ Pod, Node, Client string }

// ParseReply reads a PodReply line.
func ParseReply(s string) (Reply, error) {
	var r Reply
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "pod":
			r.Pod = v
		case "node":
			r.Node = v
		case "client":
			r.Client = v
		}
	}
	if r.Pod == "" || r.Node == "" || r.Client == "" {
		return r, fmt.Errorf("not a pod reply: %q", s)
	}
	return r, nil
}
