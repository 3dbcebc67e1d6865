package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipcast/vipcast/test/lab"
)

// speakerMetricsURL is where the lab's speakers serve their metrics, inside each node's
// namespace (lab.StartSpeakers).
const speakerMetricsURL = "http://127.0.0.1:7474/metrics"

// requests is a reading of request counters.
type requests struct {
	// server is apiserver_request_total by "VERB resource[/subresource]", resource requests
	// only: every client together (the metric has no label for the client).
	server map[string]float64
	// speakers is rest_client_requests_total summed over the speakers (their client side).
	speakers float64
	at       time.Time
}

func (e *env) readRequests(ctx context.Context) (requests, error) {
	r := requests{at: time.Now()}
	b, err := e.cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return r, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	r.server = map[string]float64{}
	for _, s := range parseMetric(string(b), "apiserver_request_total") {
		if s.labels["resource"] == "" {
			continue
		}
		key := s.labels["verb"] + " " + s.labels["resource"]
		if sub := s.labels["subresource"]; sub != "" {
			key += "/" + sub
		}
		r.server[key] += s.value
	}
	for _, n := range e.lab.Nodes {
		if p := n.Process("speaker"); p == nil || !p.Running() {
			continue
		}
		text, err := lab.Get(ctx, n.Netns, speakerMetricsURL, 5*time.Second)
		if err != nil {
			return r, fmt.Errorf("reading %s's speaker metrics: %w", n.Name, err)
		}
		for _, s := range parseMetric(text, "rest_client_requests_total") {
			r.speakers += s.value
		}
	}
	return r, nil
}

// apiRate counts the API requests over a window of steady state: at the API server (every
// client; split by verb and resource) and at the speakers (their own client-side counter).
func (e *env) apiRate(ctx context.Context, window time.Duration) (server, speakers float64, top string, err error) {
	before, err := e.readRequests(ctx)
	if err != nil {
		return 0, 0, "", err
	}
	if err := sleep(ctx, window); err != nil {
		return 0, 0, "", err
	}
	after, err := e.readRequests(ctx)
	if err != nil {
		return 0, 0, "", err
	}
	secs := after.at.Sub(before.at).Seconds()
	type kv struct {
		key  string
		rate float64
	}
	var split []kv
	for _, k := range slices.Sorted(maps.Keys(after.server)) {
		if d := after.server[k] - before.server[k]; d > 0 {
			split = append(split, kv{k, d / secs})
			server += d / secs
		}
	}
	slices.SortStableFunc(split, func(a, b kv) int { return cmp.Compare(b.rate, a.rate) })
	var parts []string
	for _, s := range split {
		parts = append(parts, fmt.Sprintf("%s %.2f/s", s.key, s.rate))
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	return server, (after.speakers - before.speakers) / secs, strings.Join(parts, ", "), nil
}

// sample is one line of a Prometheus text exposition.
type sample struct {
	labels map[string]string
	value  float64
}

// parseMetric reads the samples of one metric from the Prometheus text format; lines it
// cannot read are skipped.
func parseMetric(text, name string) []sample {
	var out []sample
	for line := range strings.SplitSeq(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		s := sample{labels: map[string]string{}}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			s.labels = parseLabels(rest[1:end])
			rest = rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// parseLabels reads `a="x",b="y"` (values may hold escaped quotes and commas).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq < 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return out
		}
		key := strings.TrimSpace(s[:eq])
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			val.WriteByte(s[i])
		}
		out[key] = val.String()
		s = strings.TrimPrefix(strings.TrimLeft(s[min(i+1, len(s)):], " "), ",")
	}
	return out
}
