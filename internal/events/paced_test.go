package events

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

type notes struct {
	mu  sync.Mutex
	got []string
}

func (n *notes) Eventf(regarding, _ runtime.Object, _, reason, _, note string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, regarding.(*corev1.Service).Name+" "+reason)
}

func (n *notes) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.got)
}

func TestPacedRecorderBoundsTheQueue(t *testing.T) {
	sink := &notes{}
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	p := NewPaced(sink, 3, dropped)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "a"}}
	for range 5 {
		p.Eventf(svc, nil, corev1.EventTypeNormal, "IPAllocated", "Allocate", "x")
	}
	// The recorder copied the object: a later change does not leak into queued Events.
	svc.Name = "changed"
	if got := testutil.ToFloat64(dropped); got != 2 {
		t.Fatalf("dropped %v Events, want 2", got)
	}
	go p.Run(t.Context(), 1000)
	deadline := time.Now().Add(10 * time.Second)
	for sink.count() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.got) != 3 || sink.got[0] != "a IPAllocated" {
		t.Fatalf("written %v, want three Events about a", sink.got)
	}
}
