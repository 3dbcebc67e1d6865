package events

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
)

// Queue bounds how many Events wait to be written.
const Queue = 2000

// Paced hands Events to client-go's recorder at most qps a second, from a bounded queue:
// client-go starts a goroutine per Event and lets it wait for the client's rate limiter, so
// a burst of 10,000 would hold 10,000 goroutines and Events in memory. Past the queue Events
// are dropped and counted; the Services' conditions and SpeakerStatus still tell the truth.
type Paced struct {
	next    events.EventRecorder
	queue   chan func()
	dropped prometheus.Counter
}

// NewPaced wraps a recorder; Run must run for anything to be written.
func NewPaced(next events.EventRecorder, queue int, dropped prometheus.Counter) *Paced {
	return &Paced{next: next, queue: make(chan func(), queue), dropped: dropped}
}

// Eventf queues an Event about copies of the objects, or drops and counts it.
func (p *Paced) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	msg := fmt.Sprintf(note, args...)
	reg := regarding.DeepCopyObject()
	var rel runtime.Object
	if related != nil {
		rel = related.DeepCopyObject()
	}
	select {
	case p.queue <- func() { p.next.Eventf(reg, rel, eventtype, reason, action, "%s", msg) }:
	default:
		p.dropped.Inc()
	}
}

// Run writes the queued Events, qps a second at most, until ctx ends.
func (p *Paced) Run(ctx context.Context, qps float64) {
	lim := rate.NewLimiter(rate.Limit(qps), max(int(qps), 1))
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-p.queue:
			if lim.Wait(ctx) != nil {
				return
			}
			f()
		}
	}
}

// NewRecorder returns a paced recorder writing as component with its own API client, so
// that Events never take the request budget of the program's real work.
func NewRecorder(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, component string, qps float64, dropped prometheus.Counter) (events.EventRecorder, error) {
	if qps <= 0 {
		qps = 100
	}
	ecfg := rest.CopyConfig(cfg)
	ecfg.QPS, ecfg.Burst = float32(2*qps), max(int(4*qps), 1)
	cs, err := kubernetes.NewForConfig(ecfg)
	if err != nil {
		return nil, fmt.Errorf("events client: %w", err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	b.StartRecordingToSink(ctx.Done())
	p := NewPaced(b.NewRecorder(scheme, component), Queue, dropped)
	go p.Run(ctx, qps)
	return p, nil
}
