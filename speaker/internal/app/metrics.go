package app

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/vipcast/vipcast/speaker/internal/layer2"
)

// metrics are the speaker's Prometheus metrics (prefix vipcast_).
type metrics struct {
	announced prometheus.Gauge
	members   prometheus.Gauge
	takeovers prometheus.Counter
}

func newMetrics(stats *layer2.Stats) *metrics {
	m := &metrics{
		announced: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vipcast_speaker_announced_addresses", Help: "Addresses this node announces over layer 2."}),
		members:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "vipcast_speaker_members", Help: "Live speakers this speaker sees, itself included."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "vipcast_speaker_takeovers_total", Help: "Addresses this node started announcing (at start and on fail-over)."}),
	}
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	collectors := []prometheus.Collector{m.announced, m.members, m.takeovers,
		counter("vipcast_l2_arp_requests_total", "ARP requests received for owned addresses.", &stats.ARPRequests),
		counter("vipcast_l2_arp_replies_total", "ARP replies sent.", &stats.ARPReplies),
		counter("vipcast_l2_ndp_solicitations_total", "Neighbour solicitations received for owned addresses.", &stats.NDPSolicitations),
		counter("vipcast_l2_ndp_advertisements_total", "Neighbour advertisements sent in answer.", &stats.NDPAdvertisements),
		counter("vipcast_l2_gratuitous_total", "Gratuitous ARP and unsolicited neighbour advertisements sent.", &stats.Gratuitous),
		counter("vipcast_l2_dropped_total", "Frames that could not be read or parsed.", &stats.Dropped),
	}
	for _, c := range collectors {
		// A second speaker in one process (tests) finds them registered: keep the first.
		_ = ctrlmetrics.Registry.Register(c)
	}
	return m
}

func (m *metrics) observe(announced, members int) {
	m.announced.Set(float64(announced))
	m.members.Set(float64(members))
}
