// Command vipcast-lab brings the network-namespace lab up (and keeps it up until
// interrupted) or cleans up what a crashed run left behind.
//
//	vipcast-lab up [--nodes 3] [--index 0] [--router bird|frr]   # as root; Ctrl-C takes it down
//	vipcast-lab down [--index 0 | --all]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vipcast/vipcast/test/lab"
)

func main() {
	lab.ServeChild()
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	index := fs.Int("index", 0, "lab index: labs with different indexes can run at once")
	nodes := fs.Int("nodes", 3, "number of nodes")
	controller := fs.String("controller", "", "a vipcast-controller binary to run in the lab")
	all := fs.Bool("all", false, "down: clean up the labs of every index")
	router := fs.String("router", "bird", "the router's daemon: bird or frr")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "up":
		err = up(lab.Config{Index: *index, Nodes: *nodes, Router: lab.RouterKind(*router)}, *controller)
	case "down":
		err = down(*index, *all)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vipcast-lab:", err)
		os.Exit(1)
	}
}

func down(index int, all bool) error {
	if !all {
		return lab.Cleanup(context.Background(), index)
	}
	var errs []error
	for i := 0; i <= lab.MaxIndex; i++ {
		errs = append(errs, lab.Cleanup(context.Background(), i))
	}
	return errors.Join(errs...)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: vipcast-lab up [--index N] [--nodes N] [--router bird|frr] [--controller PATH] | down [--index N | --all]")
	os.Exit(2)
}

func up(cfg lab.Config, controller string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Printf("%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
	cfg.Log = logf
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		return err
	}
	defer l.Down(context.Background())
	if controller != "" {
		if _, err := l.StartController("controller", controller); err != nil {
			return err
		}
	}
	fmt.Printf("\nThe lab is up. In another shell:\n  export KUBECONFIG=%s\n  kubectl get nodes -o wide\n", l.Kubeconfig)
	fmt.Printf("  ip netns exec %s curl http://<vip>/   # the client behind the router\n", l.ClientNetns)
	if l.Router.Kind() == lab.BIRD {
		fmt.Printf("  birdc -s %s show protocols          # the router\n", l.Router.Socket())
	} else {
		fmt.Printf("  vtysh --vty_socket %s -c 'show bgp summary'   # the router\n", filepath.Dir(l.Router.Socket()))
	}
	fmt.Printf("Logs are in %s/logs. Ctrl-C takes the lab down.\n", l.Dir)
	<-ctx.Done()
	return nil
}
