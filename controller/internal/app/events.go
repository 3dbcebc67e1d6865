package app

import (
	"context"
	"fmt"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"

	"github.com/vipcast/vipcast/controller/internal/metrics"
)

// eventQueue bounds how many Events wait to be written.
const eventQueue = 2000

// pacedRecorder hands Events to client-go's recorder at most qps a second, from a bounded
// queue: client-go starts a goroutine per Event and lets it wait for the client's rate
// limiter, so a backlog of 10,000 allocations would hold 10,000 goroutines and Events in
// memory. Past the queue Events are dropped and counted; the condition on each Service
// still tells the truth.
type pacedRecorder struct {
	next  events.EventRecorder
	queue chan func()
}

func (p *pacedRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	msg := fmt.Sprintf(note, args...)
	reg := regarding.DeepCopyObject()
	var rel runtime.Object
	if related != nil {
		rel = related.DeepCopyObject()
	}
	select {
	case p.queue <- func() { p.next.Eventf(reg, rel, eventtype, reason, action, "%s", msg) }:
	default:
		metrics.EventsDropped.Inc()
	}
}

func (p *pacedRecorder) run(ctx context.Context, qps float64) {
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

// eventRecorder returns a recorder that writes Events with its own client, paced at qps,
// so that during a large backlog the API server spends its time on Service status first.
func eventRecorder(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, qps float64) (events.EventRecorder, error) {
	if qps <= 0 {
		qps = 100
	}
	ecfg := rest.CopyConfig(cfg)
	ecfg.QPS, ecfg.Burst = float32(2*qps), int(4*qps)
	cs, err := kubernetes.NewForConfig(ecfg)
	if err != nil {
		return nil, fmt.Errorf("events client: %w", err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	b.StartRecordingToSink(ctx.Done())
	p := &pacedRecorder{next: b.NewRecorder(scheme, "vipcast-controller"), queue: make(chan func(), eventQueue)}
	go p.run(ctx, qps)
	return p, nil
}
