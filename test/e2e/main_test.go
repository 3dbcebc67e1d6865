// Package e2e holds the end-to-end tests on the network-namespace lab. They need root and
// run when VIPCAST_LAB=1 (make test sets it); otherwise they are skipped, with a note.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vipcast/vipcast/test/lab"
)

// labIndex keeps the tests' lab apart from `make demo` (2) and `vipcast-lab up` (0);
// VIPCAST_LAB_INDEX moves it, to run some tests beside a `make test` (5 is free).
var labIndex = 1

var (
	cluster *lab.Lab
	binDir  string
)

func TestMain(m *testing.M) {
	lab.ServeChild()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv("VIPCAST_LAB") != "1" {
		fmt.Println("e2e: skipped; the lab tests need root and VIPCAST_LAB=1 (make test sets it)")
		return 0
	}
	if os.Geteuid() != 0 {
		fmt.Println("e2e: VIPCAST_LAB=1 but not root: the lab needs root")
		return 1
	}
	ctx := context.Background()
	if v := os.Getenv("VIPCAST_LAB_INDEX"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil {
			fmt.Println("e2e: VIPCAST_LAB_INDEX:", err)
			return 1
		}
		labIndex = i
	}
	var err error
	if binDir, err = os.MkdirTemp("", "vipcast-e2e-bin-"); err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// The binaries under test are built from this tree, never taken stale from bin/.
	for prog, src := range map[string]string{"vipcast-controller": "controller", "vipcast-speaker": "speaker", "kubectl-vipcast": "kubectl-vipcast"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, prog), "../../"+src).CombinedOutput(); err != nil {
			fmt.Printf("building the %s: %v\n%s", prog, err, out)
			return 1
		}
	}
	start := time.Now()
	cluster, err = lab.Up(ctx, lab.Config{Index: labIndex, Nodes: 3, Log: func(f string, a ...any) {
		fmt.Printf("lab: "+f+"\n", a...)
	}})
	if err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	defer cluster.Down(context.Background())
	defer cluster.DownOnSignal()()
	fmt.Printf("lab up in %s\n", time.Since(start).Round(time.Millisecond))
	if _, err := cluster.StartController("controller", filepath.Join(binDir, "vipcast-controller")); err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	if err := createPool(ctx); err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	// --events-per-plan=3: a restarted speaker counts its addresses in one Event on its Node
	// (TestARestartedSpeakerCountsItsAddressesOnItsNode) with a handful of Services.
	if err := cluster.StartSpeakers(filepath.Join(binDir, "vipcast-speaker"), "--zap-log-level=debug", "--events-per-plan=3"); err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Println(cluster.Logs(40))
	}
	return code
}
