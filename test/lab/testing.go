package lab

import (
	"context"
	"testing"
)

// UpForTest brings a lab up for one test: it fails the test when the lab does not come up,
// prints the programs' logs when the test failed, and takes the lab down when it ends.
func UpForTest(t testing.TB, cfg Config) *Lab {
	t.Helper()
	l, err := Up(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(l.Logs(30))
		}
		l.Down(context.Background())
	})
	return l
}
