package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "write the golden files from the output")

// golden compares got with the file, or writes it with -update.
func golden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./kubectl-vipcast -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test ./kubectl-vipcast -update rewrites it):\n%s", file, got)
	}
}

// TestMigrateMetalLBGolden: every case of testdata/migrate converts as its golden files say,
// in both outputs, with exit code 3 when something is not carried over.
func TestMigrateMetalLBGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/migrate/*/metallb.yaml")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, in := range cases {
		dir := filepath.Dir(in)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var yamlOut, jsonOut, stderr bytes.Buffer
			code := run(t.Context(), []string{"migrate", "metallb", "-f", in}, &yamlOut, &stderr)
			golden(t, filepath.Join(dir, "vipcast.yaml"), yamlOut.Bytes())
			gaps := strings.Contains(yamlOut.String(), "# Not carried over")
			if want := map[bool]int{false: exitOK, true: exitAttention}[gaps]; code != want {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, want, stderr.String())
			}
			if code2 := run(t.Context(), []string{"migrate", "metallb", "-f", in, "-o", "json"}, &jsonOut, &stderr); code2 != code {
				t.Errorf("-o json: exit code %d, -o yaml %d", code2, code)
			}
			golden(t, filepath.Join(dir, "vipcast.json"), jsonOut.Bytes())
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nonsense"}, {"migrate"}, {"migrate", "calico"}, {"migrate", "metallb", "-o", "xml"}, {"migrate", "metallb", "extra"}, {"migrate", "metallb", "--bogus"}, {"status", "--bogus"}, {"explain", "svc"}, {"whatif", "reboot", "node-1"}} {
		var out, errOut bytes.Buffer
		if code := run(t.Context(), args, &out, &errOut); code != exitUsage {
			t.Errorf("%q: exit code %d, want %d", args, code, exitUsage)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"migrate", "metallb", "-f", "testdata/no-such-file"}, &out, &errOut); code != exitFailed || !strings.Contains(errOut.String(), "no-such-file") {
		t.Errorf("a missing file: exit code %d, stderr %q", code, errOut.String())
	}
}
