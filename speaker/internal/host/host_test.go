package host

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestOpenCallerNamespace reads this process's own namespace, which needs no privilege.
func TestOpenCallerNamespace(t *testing.T) {
	h, err := Open([]string{"nothing*"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.Links()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(links, func(x, y Link) int { return strings.Compare(x.Name, y.Name) }) {
		t.Errorf("links not sorted by name: %v", names(links))
	}
	for _, l := range links {
		if l.Name == "lo" || len(l.MAC) != 6 || l.Index <= 0 {
			t.Errorf("unusable link listed: %+v", l)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	notes, err := h.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	wantClosed(t, notes)
}
