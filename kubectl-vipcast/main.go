// Command kubectl-vipcast is a kubectl plugin for vipcast ("kubectl vipcast ..." once it is on
// the PATH).
//
// Exit codes: 0 done; 1 failed (the cluster or a file could not be read); 2 usage error;
// 3 done, with something that needs a person (for migrate: parts of MetalLB's configuration
// not carried over, listed).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes.
const (
	exitOK        = 0
	exitFailed    = 1
	exitUsage     = 2
	exitAttention = 3
)

// errUsage marks an error in how the command was called.
var errUsage = errors.New("usage")

const usage = `kubectl vipcast: vipcast's kubectl plugin

Commands:
  status                     pools, speakers, and the Services not allocated or not announced
  explain svc NAME [-n NS]   the whole chain for one Service, in words
  whatif node-down NODE      which addresses move and which Services go dark if NODE goes down
  whatif drain NODE          the same if NODE is drained
  migrate metallb            print vipcast's configuration equivalent to MetalLB's (from the cluster or -f files)

Run "kubectl vipcast COMMAND -h" for a command's flags.
Exit codes: 0 done, 1 failed, 2 usage error, 3 done but needs attention (what and why is printed).
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	var (
		code int
		err  error
	)
	switch args[0] {
	case "migrate":
		code, err = migrateCmd(ctx, args[1:], stdout, stderr)
	case "status":
		code, err = statusCmd(ctx, args[1:], stdout, stderr)
	case "explain":
		code, err = explainCmd(ctx, args[1:], stdout, stderr)
	case "whatif":
		code, err = whatifCmd(ctx, args[1:], stdout, stderr)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "kubectl vipcast: %v\n\n%s", err, usage)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "kubectl vipcast: %v\n", err)
		return exitFailed
	}
	return code
}

// parseError marks a flag the command does not know as a usage error (-h stays help).
func parseError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", errUsage, err)
}
