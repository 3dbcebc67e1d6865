package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// The lab starts pod servers by running its own executable again with these variables set.
const (
	roleEnv       = "VIPCAST_LAB_ROLE"
	rolePodServer = "pod-server"
	podEnv        = "VIPCAST_LAB_POD"
	nodeEnv       = "VIPCAST_LAB_NODE"
	portEnv       = "VIPCAST_LAB_PORT"
)

// ServeChild turns this process into a lab pod when the lab started it as one, and then
// never returns. Every program that brings a lab up calls it first, in main or TestMain.
func ServeChild() {
	if os.Getenv(roleEnv) != rolePodServer {
		return
	}
	if err := servePod(os.Getenv(podEnv), os.Getenv(nodeEnv), os.Getenv(portEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "pod server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// PodReply is what a pod server answers: its name, its node, and the client address it saw.
func PodReply(pod, node, client string) string {
	return fmt.Sprintf("pod=%s node=%s client=%s\n", pod, node, client)
}

// servePod answers every HTTP request with PodReply, on IPv4 and IPv6, until SIGTERM.
func servePod(pod, node, port string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("::", port))
	if err != nil {
		return err
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = fmt.Fprint(w, PodReply(pod, node, r.RemoteAddr))
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
