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

// DialerIn returns a dial function whose connections start inside the named network
// namespace: the socket is made on a thread moved into that namespace and keeps living
// there, so a test on the host can act as the client, a pod or the router.
func DialerIn(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		target, err := netns.GetFromName(name)
		if err != nil {
			return nil, fmt.Errorf("opening network namespace %s: %w", name, err)
		}
		defer target.Close()
		runtime.LockOSThread()
		home, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			return nil, err
		}
		defer home.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			return nil, fmt.Errorf("entering network namespace %s: %w", name, err)
		}
		var d net.Dialer
		conn, dialErr := d.DialContext(ctx, network, addr)
		if err := netns.Set(home); err != nil {
			// The thread stays locked and so dies with this goroutine, never to be reused in
			// the wrong namespace.
			if conn != nil {
				conn.Close()
			}
			return nil, fmt.Errorf("leaving network namespace %s: %w", name, err)
		}
		runtime.UnlockOSThread()
		return conn, dialErr
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
