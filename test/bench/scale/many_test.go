package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// memberDied finds the first line after since that logs the member gone, and only that.
func TestMemberDied(t *testing.T) {
	log := `{"level":"info","ts":"2026-12-02T06:00:00.5Z","msg":"Member changed","member":"node-3","alive":false}
{"level":"info","ts":"2026-12-02T06:00:01.1Z","msg":"Member changed","member":"node-3","alive":true}
I1202 06:00:01.200000 12 request.go:754] "Waited before sending request"
{"level":"info","ts":"2026-12-02T06:00:01.3Z","msg":"Member changed","member":"node-2","alive":false}
{"level":"info","ts":"2026-12-02T06:00:01.4Z","msg":"memberlist","line":"[INFO] Member changed node-3"}
{"level":"info","ts":"2026-12-02T06:00:01.623456789Z","msg":"Member changed","member":"node-3","alive":false}
{"level":"info","ts":"2026-12-02T06:00:02Z","msg":"Member changed","member":"node-3","alive":false}
`
	path := filepath.Join(t.TempDir(), "node-1_speaker.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 12, 2, 6, 0, 1, 0, time.UTC)
	at, err := memberDied(path, "node-3", since)
	if want := time.Date(2026, 12, 2, 6, 0, 1, 623456789, time.UTC); err != nil || !at.Equal(want) {
		t.Errorf("memberDied = %s, %v; want %s", at, err, want)
	}
	if at, err := memberDied(path, "node-4", since); err != nil || !at.IsZero() {
		t.Errorf("a member never logged: %s, %v; want none", at, err)
	}
	if _, err := memberDied(filepath.Join(t.TempDir(), "missing.log"), "node-3", since); err == nil {
		t.Error("a missing log is not an error")
	}
}
