package e2e

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vipcast/vipcast/test/lab"
)

// A lab whose owner died without Down (a crash, a SIGKILLed test) is cleaned up by the next
// Up with the same index, and Down leaves no namespace, link, process or file behind.
func TestUpAfterCrashAndDownLeavesNothing(t *testing.T) {
	const index = 3
	ctx := t.Context()
	crashed, err := lab.Up(ctx, lab.Config{Index: index, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	apiserver := crashed.Process("cp/kube-apiserver")
	// No Down: the next Up must find and remove all of it.
	again, err := lab.Up(ctx, lab.Config{Index: index, Nodes: 1})
	if err != nil {
		crashed.Down(context.Background())
		t.Fatalf("up after a crash: %v", err)
	}
	if apiserver.Running() {
		t.Error("the crashed lab's kube-apiserver survived the next Up")
	}
	if out, err := lab.Exec(ctx, again.Nodes[0].Netns, "true"); err != nil {
		t.Errorf("the new lab's node namespace: %v %s", err, out)
	}
	again.Down(context.Background())

	out, err := runCmd(ctx, "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "vc3-") {
			t.Errorf("namespace left after Down: %s", line)
		}
	}
	if _, err := runCmd(ctx, "ip", "link", "show", "vc3-host"); err == nil {
		t.Error("the host link vc3-host is left after Down")
	}
	if _, err := os.Stat(lab.StateDir(index)); !os.IsNotExist(err) {
		t.Errorf("the state directory is left after Down: %v", err)
	}
}
