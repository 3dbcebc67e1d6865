package app

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/vipcast/vipcast/speaker/internal/layer2"
)

// metrics are the speaker's Prometheus metrics (prefix vipcast_).
type metrics struct {
	announced    prometheus.Gauge
	members      prometheus.Gauge
	takeovers    prometheus.Counter
	bgpAnnounced prometheus.Gauge
	sessionUp    *prometheus.GaugeVec
	bfdUp        *prometheus.GaugeVec
	advertised   *prometheus.GaugeVec
	bgpUpdates   prometheus.CounterFunc
	updates      atomic.Uint64
	// bfdPackets are the BFD packets read: accepted, malformed, for no session.
	bfdPackets [3]atomic.Uint64
	// eventsDropped counts Events not written because too many were waiting.
	eventsDropped prometheus.Counter
	// eventsSummed counts the per-Service Events a count on the Node replaced.
	eventsSummed prometheus.Counter
	// conflicts counts conflicts reported, by claimant (speaker, foreign).
	conflicts *prometheus.CounterVec
	// plans counts the plans made; fullPlans those made from every Service; servicePlans the
	// Services planned again one at a time; memberPlans the plans that only moved what a
	// speaker that died, left or joined changes.
	plans, fullPlans, servicePlans, memberPlans prometheus.Counter
}

func newMetrics(stats *layer2.Stats) *metrics {
	m := &metrics{
		announced: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vipcast_speaker_announced_addresses", Help: "Addresses this node announces over layer 2."}),
		members:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "vipcast_speaker_members", Help: "Live speakers this speaker sees, itself included."}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{Name: "vipcast_speaker_takeovers_total", Help: "Addresses this node started announcing (at start and on fail-over)."}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "vipcast_events_dropped_total",
			Help: "Events dropped because too many were waiting to be written."}),
		eventsSummed: prometheus.NewCounter(prometheus.CounterOpts{Name: "vipcast_speaker_events_summed_total",
			Help: "Events on Services not written because one plan moved more than --events-per-plan Services (one Event on the Node counted them)."}),
	}
	m.plans = prometheus.NewCounter(prometheus.CounterOpts{Name: "vipcast_speaker_plans_total", Help: "Plans made (one per change or batch of changes, and per resync)."})
	m.fullPlans = prometheus.NewCounter(prometheus.CounterOpts{Name: "vipcast_speaker_full_plans_total",
		Help: "Plans made from every Service (at start, on a change of nodes, links, pools, advertisements or peers, and every tenth resync)."})
	m.memberPlans = prometheus.NewCounter(prometheus.CounterOpts{Name: "vipcast_speaker_member_plans_total",
		Help: "Plans that only moved the addresses a speaker that died, left or joined changes (the rest of the plan kept)."})
	m.servicePlans = prometheus.NewCounter(prometheus.CounterOpts{Name: "vipcast_speaker_service_replans_total", Help: "Services planned again one at a time after they or their endpoints changed."})
	m.conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vipcast_speaker_address_conflicts_total",
		Help: "Conflicts reported: another MAC claimed an address this node announces (claimant: speaker or foreign)."}, []string{"claimant"})
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	m.bgpAnnounced = prometheus.NewGauge(prometheus.GaugeOpts{Name: "vipcast_bgp_announced_addresses", Help: "Addresses this node announces over BGP on at least one established session."})
	m.sessionUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vipcast_bgp_session_up", Help: "1 when the BGP session to the peer is established."}, []string{"peer"})
	m.bfdUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vipcast_bfd_session_up", Help: "1 when the BFD session to the peer is up (only peers with BFD)."}, []string{"peer"})
	m.advertised = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vipcast_bgp_prefixes_advertised", Help: "Prefixes sent to the peer and not withdrawn."}, []string{"peer"})
	m.bgpUpdates = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vipcast_bgp_path_updates_total", Help: "Paths announced or withdrawn by this speaker."},
		func() float64 { return float64(m.updates.Load()) })
	bfd := func(result string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "vipcast_bfd_packets_total", ConstLabels: prometheus.Labels{"result": result},
			Help: "BFD control packets read: accepted, malformed (dropped), or for no session (dropped)."}, func() float64 { return float64(v.Load()) })
	}
	collectors := []prometheus.Collector{m.plans, m.fullPlans, m.servicePlans, m.memberPlans, m.announced, m.members, m.takeovers, m.eventsDropped, m.eventsSummed, m.conflicts, m.bgpAnnounced, m.sessionUp, m.bfdUp, m.advertised, m.bgpUpdates,
		counter("vipcast_l2_arp_requests_total", "ARP requests received for owned addresses.", &stats.ARPRequests),
		counter("vipcast_l2_arp_replies_total", "ARP replies sent.", &stats.ARPReplies),
		counter("vipcast_l2_ndp_solicitations_total", "Neighbour solicitations received for owned addresses.", &stats.NDPSolicitations),
		counter("vipcast_l2_ndp_advertisements_total", "Neighbour advertisements sent in answer.", &stats.NDPAdvertisements),
		counter("vipcast_l2_gratuitous_total", "Gratuitous ARP and unsolicited neighbour advertisements sent.", &stats.Gratuitous),
		counter("vipcast_l2_dropped_total", "Frames that could not be read or parsed.", &stats.Dropped),
		counter("vipcast_l2_not_for_us_total", "ARP frames addressed to another host's MAC, dropped.", &stats.NotForUs),
		counter("vipcast_l2_send_errors_total", "Replies and announcements that could not be sent.", &stats.SendErrors),
		counter("vipcast_l2_conflicting_claims_total", "ARP packets and neighbour advertisements from another MAC claiming an owned address.", &stats.Conflicts),
		bfd("accepted", &m.bfdPackets[0]), bfd("malformed", &m.bfdPackets[1]), bfd("unknown", &m.bfdPackets[2]),
		counter("vipcast_l2_defences_total", "Announcements sent to defend an owned address (at most one per address per 10 s).", &stats.Defences),
	}
	for _, c := range collectors {
		// A second speaker in one process (tests) finds them registered: keep the first.
		_ = ctrlmetrics.Registry.Register(c)
	}
	return m
}

func (m *metrics) observe(announced, members int, b bgpResult) {
	m.announced.Set(float64(announced))
	m.members.Set(float64(members))
	m.bgpAnnounced.Set(float64(len(b.announced)))
	m.updates.Store(b.updates)
	for i, v := range b.bfdPackets {
		m.bfdPackets[i].Store(v)
	}
	m.sessionUp.Reset()
	m.bfdUp.Reset()
	m.advertised.Reset()
	one := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	for _, st := range b.sessions {
		m.sessionUp.WithLabelValues(st.Name).Set(one(st.Established))
		m.advertised.WithLabelValues(st.Name).Set(float64(st.Advertised))
		if st.BFD != "" {
			m.bfdUp.WithLabelValues(st.Name).Set(one(st.BFD == "Up"))
		}
	}
}
