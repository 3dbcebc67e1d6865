package lab

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Sample is one probe request: when it was sent, how long it took, and what came back.
type Sample struct {
	Sent  time.Time
	Took  time.Duration
	Reply Reply // the pod that answered, when OK
	Err   error
}

// OK tells whether the request got a pod's answer.
func (s Sample) OK() bool { return s.Err == nil }

// Prober sends an HTTP request from a namespace at a fixed rate, each on a new connection and
// without waiting for the one before, and records every outcome.
type Prober struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	samples []Sample
}

// StartProbe sends a GET to url from namespace netnsName every `every`, each with its own
// timeout, until Stop.
func StartProbe(netnsName, url string, every, timeout time.Duration) *Prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Prober{cancel: cancel, done: make(chan struct{})}
	client := HTTPClientIn(netnsName, timeout)
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			wg.Add(1)
			go func() { defer wg.Done(); p.send(ctx, client, url) }()
			select {
			case <-ctx.Done():
				wg.Wait()
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *Prober) send(ctx context.Context, c *http.Client, url string) {
	s := Sample{Sent: time.Now()}
	body, err := get(context.WithoutCancel(ctx), c, url)
	s.Took = time.Since(s.Sent)
	if err == nil {
		s.Reply, err = ParseReply(body)
	}
	s.Err = err
	p.mu.Lock()
	p.samples = append(p.samples, s)
	p.mu.Unlock()
}

// Stop ends the probe, waits for the requests in flight and returns every sample in the
// order they were sent.
func (p *Prober) Stop() ProbeResult {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	out := slices.Clone(p.samples)
	slices.SortFunc(out, func(a, b Sample) int { return a.Sent.Compare(b.Sent) })
	return ProbeResult{Samples: out}
}

// ProbeResult is what a probe saw.
type ProbeResult struct{ Samples []Sample }

// Gap is a run of failed requests: from the last success before it to the first success
// after it (To is zero when no request succeeded afterwards).
type Gap struct {
	From, To time.Time
	Failed   int
}

// Length is the client-visible outage; an open gap has none (see Recovered).
func (g Gap) Length() time.Duration {
	if g.To.IsZero() {
		return 0
	}
	return g.To.Sub(g.From)
}

// Recovered tells whether a request succeeded after the gap.
func (g Gap) Recovered() bool { return !g.To.IsZero() }

// Failed counts the requests that failed.
func (r ProbeResult) Failed() int {
	n := 0
	for _, s := range r.Samples {
		if !s.OK() {
			n++
		}
	}
	return n
}

// Gaps lists every run of failures, measured between the send times of the successes
// around it. A run before the first success starts at the first request.
func (r ProbeResult) Gaps() []Gap {
	var gaps []Gap
	var cur *Gap
	var lastOK time.Time
	for i, s := range r.Samples {
		switch {
		case !s.OK() && cur == nil:
			from := lastOK
			if from.IsZero() && i == 0 {
				from = s.Sent
			}
			gaps = append(gaps, Gap{From: from, Failed: 1})
			cur = &gaps[len(gaps)-1]
		case !s.OK():
			cur.Failed++
		case cur != nil:
			cur.To, cur = s.Sent, nil
			lastOK = s.Sent
		default:
			lastOK = s.Sent
		}
	}
	return gaps
}

// Longest is the longest closed gap (zero when there was none).
func (r ProbeResult) Longest() time.Duration {
	var m time.Duration
	for _, g := range r.Gaps() {
		m = max(m, g.Length())
	}
	return m
}
