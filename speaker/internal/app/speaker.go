package app

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
	"github.com/vipcast/vipcast/speaker/internal/host"
	"github.com/vipcast/vipcast/speaker/internal/membership"
)

// Event reasons the speaker writes on Services.
const (
	ReasonAnnouncing        = "Announcing"
	ReasonStoppedAnnouncing = "StoppedAnnouncing"
	ReasonAddressConflict   = "AddressConflict"
)

// SpeakerStatus condition types and reasons.
const (
	ConditionReady    = "Ready"
	ConditionConflict = "Conflict"
	// ReasonJoining: the speaker has not joined the other speakers yet and announces
	// nothing over layer 2.
	ReasonJoining = "Joining"
	// ReasonAlone: no other speaker runs on a ready node; this one announces alone.
	ReasonAlone = "Alone"
	// ReasonApplied: the plan is applied.
	ReasonApplied = "Applied"
	// ReasonSyncFailed: the last plan could not be read or applied.
	ReasonSyncFailed = "SyncFailed"
	// ReasonRestarting: the speaker stopped for a restart; the others hold its addresses.
	ReasonRestarting = "Restarting"
	// ReasonStopped: the speaker stopped and handed its addresses over.
	ReasonStopped = "Stopped"
)

// conflictHold is how long a conflict is reported after its last claim was seen.
const conflictHold = 30 * time.Second

// speaker recomputes its plan whenever anything it reads changes, and applies it.
type speaker struct {
	node    string
	lbClass string
	port    int
	client  client.Client
	// reader reads uncached (the other SpeakerStatuses, only while joining).
	reader   client.Reader
	cluster  cluster
	ann      l2Applier
	host     hostLinks
	recorder events.EventRecorder
	log      logr.Logger
	resync   time.Duration
	leave    time.Duration
	// joinTimeout is how long a speaker that sees no other speaker waits for one before
	// announcing alone; handover how long it waits before answering for an address a live
	// speaker held, so that one has stopped first.
	joinTimeout time.Duration
	handover    time.Duration
	// restartHold is how long the others keep this node's addresses when its speaker stops
	// for a restart (0: they take them over at once).
	restartHold time.Duration
	// eventsPerPlan: a plan that moves more Services writes one Event on the Node instead of
	// one on each (0: always one on each).
	eventsPerPlan int
	now           func() time.Time

	bgp     bgpApplier
	trigger chan struct{}
	// informed receives the informers' pokes; a plan for them waits until planInterval has
	// passed since the last, so a storm of changes is planned in batches.
	informed     chan struct{}
	planInterval time.Duration
	lastPlan     time.Time
	deferred     atomic.Bool
	resyncs      int
	// changes are the Services changed since the last plan (nil: every plan reads all);
	// plan is the plan they update.
	changes *changes
	plan    *plan
	// l2want and l2mine are the layer-2 part of the plan applied: what this node answers
	// for, on which interfaces, updated for the addresses each plan decides again. l2stale
	// makes the next plan visit every address.
	l2want  map[netip.Addr][]string
	l2mine  map[netip.Addr]announcement
	l2stale bool
	// linkEvents: the host tells of interface changes (linksStale), so the interfaces are
	// read only after one; without, every plan reads them.
	linkEvents bool
	linksStale atomic.Bool
	// linksRead: this plan read the interfaces (netlink told of a change, or it tells of none).
	linksRead bool
	started   time.Time
	// open turns true once the speaker joined the others or found it is alone, and stays.
	open  bool
	owned map[annKey]announcement
	// ownedBGP are the addresses owned over BGP.
	ownedBGP map[netip.Addr]bool
	// members is the set of live members at the last plan; a change re-announces what this
	// node owns.
	members map[string]bool
	// lastOwner is each address's owner in the last plan applied, planned whether there was
	// one; pending holds the addresses won from a live speaker and when to claim them.
	lastOwner map[netip.Addr]string
	planned   bool
	pending   map[netip.Addr]time.Time
	// peers are the memberlist addresses of nodes not in the cluster, for the join loop.
	peers atomic.Pointer[[]string]
	// macs maps every MAC a speaker published to its node, kept after it leaves (a
	// partitioned speaker is still a speaker).
	macs  map[string]string
	links []host.Link
	// linksComplete: the metadata carries all of this node's links. When it does not, the
	// others plan with this node's links unknown, and so does this node (same view, same
	// owners), resolving its interfaces itself.
	linksComplete bool
	// holds are the speakers that stopped for a restart and until when they keep their
	// addresses (kept, expired, until they return).
	holds     map[string]time.Time
	holding   time.Duration // the hold this speaker publishes
	conflicts *conflictLog
	status    *statusWriter
	m         *metrics
	// wake pokes the plan loop at wakeTime, the earliest deadline the last plan waits on (a
	// handover, a hold, the join timeout, a conflict's end).
	wake     *time.Timer
	wakeTime time.Time
}

// annKey is one address announced one way.
type annKey struct {
	addr netip.Addr
	mode v1alpha1.AnnouncementMode
}

// announcement is how this node announces an address.
type announcement struct {
	mode       v1alpha1.AnnouncementMode
	services   []string
	interfaces []string // L2
	peers      []string // BGP: the established sessions carrying it
}

func (a announcement) describe(node string) string {
	if a.mode == v1alpha1.ModeBGP {
		return fmt.Sprintf("over BGP from %s to %s", node, strings.Join(a.peers, ", "))
	}
	return fmt.Sprintf("over L2 from %s on %s", node, strings.Join(a.interfaces, ", "))
}

// someJoined tells whether a member of now was not one before: a speaker that claimed
// addresses while it could not see this one may have misled the neighbours. Members that
// only left claimed nothing of this node's.
func someJoined(before, now map[string]bool) bool {
	for n := range now {
		if !before[n] {
			return true
		}
	}
	return false
}

// membersChanged reports whether the set of live members differs (nil: no plan yet).
func membersChanged(before, now map[string]bool) bool {
	return before == nil || !maps.Equal(before, now)
}

// poke asks for a new plan (coalesced).
func (s *speaker) poke() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// pokeInformed asks for a plan after an informer saw a change (coalesced, and at most one
// plan per planInterval).
func (s *speaker) pokeInformed() {
	select {
	case s.informed <- struct{}{}:
	default:
	}
}

// resyncFull is how many resyncs pass between plans made from every Service (the others
// apply the plan kept).
const resyncFull = 10

// Start runs the plan loop until ctx ends, then leaves the cluster and stops answering.
func (s *speaker) Start(ctx context.Context) error {
	tick := time.NewTicker(s.resync)
	defer tick.Stop()
	go s.joinLoop(ctx)
	s.sync(ctx)
	for {
		select {
		case <-ctx.Done():
			s.stop()
			return nil
		case <-s.informed:
			if wait := s.planInterval - time.Since(s.lastPlan); wait > 0 {
				if s.deferred.CompareAndSwap(false, true) {
					time.AfterFunc(wait, func() { s.deferred.Store(false); s.poke() })
				}
				continue
			}
		case <-s.trigger:
		case <-s.cluster.Changes():
		case <-tick.C:
			s.linksStale.Store(true)
			if s.resyncs++; s.resyncs%resyncFull == 0 {
				s.changes.everything()
			}
		}
		s.lastPlan = time.Now()
		s.sync(ctx)
	}
}

// joinInterval is how often the join loop contacts the nodes whose speakers are not members:
// at start, and after a partition heals.
const joinInterval = 500 * time.Millisecond

// joinLoop contacts the speakers of nodes not in the cluster, all at once, every
// joinInterval, until ctx ends.
func (s *speaker) joinLoop(ctx context.Context) {
	t := time.NewTicker(joinInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p := s.peers.Load()
		if p == nil || len(*p) == 0 {
			continue
		}
		if n, err := s.cluster.Join(*p); n > 0 {
			s.poke()
		} else if err != nil {
			s.log.V(1).Info("No speaker answered", "peers", *p, "error", err.Error())
		}
	}
}

// stop is the graceful exit. For a restart (a DaemonSet update, the common case) the node
// keeps its addresses: the speaker tells the others to hold them for restartHold, stops
// answering and leaves; the node goes on forwarding what its neighbours send it, and the
// restarted speaker takes its addresses up again. No address moves, so no connection in
// flight is cut. When the node is going away (cordoned, not ready, excluded, deleted) the
// others take over at once instead: this speaker stops answering first, then leaves, so
// they announce only once it is silent. Then the BGP routes are withdrawn (unless this is a
// restart and graceful restart keeps them at the routers) and the status emptied.
func (s *speaker) stop() {
	start := time.Now()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	away := s.goingAway()
	hold := s.holdOnStop(away)
	if hold > 0 {
		// Written before the others start holding. The report stays, and the others list
		// this node among their members while they hold it.
		s.status.writeNow(sctx, report{members: s.members, links: s.links, keep: true, ready: metav1.Condition{Type: ConditionReady,
			Status: metav1.ConditionFalse, Reason: ReasonRestarting, Message: fmt.Sprintf("restarting; the other speakers hold this node's addresses for %s", hold)}})
		s.holding = hold
		s.publishLinks() // with the hold, before leaving
		s.log.Info("Stopping for a restart; the other speakers keep this node's addresses meanwhile", "hold", hold.String())
	}
	s.ann.Close()
	if err := s.cluster.Leave(s.leave); err != nil {
		s.log.Error(err, "Leaving the cluster failed")
	}
	_ = s.cluster.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.bgp.stop(ctx, !away)
	if hold == 0 {
		// Take back what SpeakerStatus claims, so nobody reads a stale announcement.
		s.status.writeNow(sctx, report{ready: metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonStopped, Message: "the speaker stopped"}})
	}
	s.log.Info("Stopped", "took", time.Since(start).String())
}

// holdOnStop is the restart hold to ask for: none when holds are off, when no other speaker
// would keep anything, or when the node is going away, so its addresses move at once.
func (s *speaker) holdOnStop(away bool) time.Duration {
	if s.restartHold <= 0 || len(s.members) < 2 || away {
		return 0
	}
	return s.restartHold
}

// goingAway tells whether the node is going away (cordoned, Ready not True, excluded from
// load balancers, being deleted, or unreadable) rather than restarting its speaker.
func (s *speaker) goingAway() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var n corev1.Node
	if err := s.client.Get(ctx, client.ObjectKey{Name: s.node}, &n); err != nil {
		s.log.Error(err, "Reading this node failed; handing its addresses over")
		return true
	}
	_, excluded := n.Labels[planner.LabelExcludeFromLB]
	if n.Spec.Unschedulable || nodeDown(&n) || excluded || n.DeletionTimestamp != nil {
		s.log.Info("The node is going away; handing its addresses over")
		return true
	}
	return false
}

// planMembers are the live members, the speakers held for a restart and the speakers heard
// claiming this node's addresses. A held speaker keeps winning its addresses, so nobody
// takes them over, until it returns or its hold ends.
func (s *speaker) planMembers(live map[string]bool, metas map[string]nodeMeta, now time.Time) (plan, listed map[string]bool) {
	if s.holds == nil {
		s.holds = map[string]time.Time{}
	}
	// A member in metas but not live has departed: metas holds its last metadata.
	for name := range s.holds {
		if _, known := metas[name]; !known || live[name] {
			delete(s.holds, name)
		}
	}
	plan, listed = maps.Clone(live), maps.Clone(live)
	for name, m := range metas {
		if live[name] || name == s.node {
			continue
		}
		until, seen := s.holds[name]
		if !seen {
			if m.hold <= 0 {
				continue
			}
			until = now.Add(min(m.hold, maxHold))
			s.holds[name] = until
			s.log.Info("A speaker stopped for a restart; keeping its addresses", "node", name, "until", until.Format(time.RFC3339Nano))
		}
		if now.Before(until) {
			plan[name], listed[name] = true, true
			s.wakeAt(until)
		}
	}
	// A speaker heard claiming this node's addresses on the wire is alive, whatever
	// memberlist says: the two are partitioned. Planning with it, each side yields what the
	// whole cluster would give the other, so the double claim ends at the first defence.
	for mac, at := range s.conflicts.heard(now, conflictHold) {
		if name := s.macs[mac]; name != "" && name != s.node && !plan[name] {
			plan[name] = true
			s.wakeAt(at.Add(conflictHold + time.Second))
		}
	}
	return plan, listed
}

// maxHold bounds the restart hold a peer may ask for.
const maxHold = 10 * time.Minute

// sync makes one plan and applies it.
func (s *speaker) sync(ctx context.Context) {
	now := s.now()
	s.wakeTime = time.Time{}
	defer s.armWake()
	s.m.plans.Inc()
	linksChanged := s.refreshLinks()
	all, keys := s.changes.take()
	w, err := s.read(ctx)
	if err != nil {
		s.changes.giveBack(all, keys)
		s.log.Error(err, "Reading the cluster state failed")
		s.status.write(ctx, s.failed("reading the cluster state: "+err.Error()))
		return
	}
	live := w.Members
	metas := s.memberMetas()
	s.learnMACs(metas)
	var listed map[string]bool
	w.Members, listed = s.planMembers(live, metas, now)
	w.Links = s.memberLinks(w.Members, metas)
	s.peers.Store(ptr(s.peerAddrs(w.Nodes, live)))
	ready := s.gate(ctx, w, now)
	base, snap := w.Base()
	touched, full, err := s.update(ctx, base, snap, all, keys)
	if err != nil {
		s.changes.giveBack(all, keys)
		s.log.Error(err, "Reading the Services failed")
		s.status.write(ctx, s.failed("reading the Services: "+err.Error()))
		return
	}
	visited, allL2 := s.layer2(ready.Status == metav1.ConditionTrue, touched, full || linksChanged, w.Members, now)
	l2 := s.l2mine
	var failures []string
	if err := s.applyL2(visited, &allL2); err != nil {
		s.log.Error(err, "Applying the layer-2 plan failed")
		failures = append(failures, "applying the layer-2 plan: "+err.Error())
		s.l2stale = true // the next plan tries every address again
		// Report only what is answered for: an interface that would not open carries nothing.
		owned := s.ann.Owned()
		l2, allL2 = make(map[netip.Addr]announcement, len(s.l2mine)), true
		for addr, a := range s.l2mine {
			if ifs := owned[addr]; len(ifs) > 0 {
				a.interfaces = ifs
				l2[addr] = a
			}
		}
	}
	if membersChanged(s.members, live) {
		if s.members != nil && someJoined(s.members, live) {
			s.ann.Reannounce()
		}
		s.members = maps.Clone(live)
	}
	self := nodeOf(w.Nodes, s.node)
	b := s.bgp.sync(ctx, w, base, s.plan.takeBGP(), self)
	s.own(ctx, self, l2, visited, allL2, b)
	mine := s.owned
	conflicts := s.reportConflicts(ctx, mine, now)
	s.m.observe(len(s.l2want), len(live), b)
	if len(failures) > 0 && ready.Status == metav1.ConditionTrue {
		ready = s.failed(strings.Join(failures, "; ")).ready
	}
	s.status.write(ctx, report{mine: mine, sessions: sessionStatuses(b.sessions, b.problems), members: listed, links: s.links, conflicts: conflicts, ready: ready})
}

// applyL2 hands the layer-2 plan to the announcer: the addresses visited, or the whole set
// when all were (or the announcer asks for it: an interface changed, and all becomes true).
func (s *speaker) applyL2(visited []netip.Addr, all *bool) error {
	if !*all {
		changes := make(map[netip.Addr][]string, len(visited))
		for _, a := range visited {
			changes[a] = s.l2want[a]
		}
		stale, err := s.ann.Update(changes, s.linksRead)
		if !stale {
			return err
		}
		*all = true
	}
	return s.ann.Apply(s.l2want)
}

// layer2 updates what this node answers for over layer 2 (l2want, l2mine) from the plan:
// the addresses whose decision was made again and those waiting for a handover, or every
// address when all (a new plan, new links of this node) or after a failure. Until the gate
// opens it answers for nothing.
func (s *speaker) layer2(ready bool, touched []netip.Addr, all bool, members map[string]bool, now time.Time) (visited []netip.Addr, visitedAll bool) {
	if !ready {
		s.l2want, s.l2mine, s.l2stale = map[netip.Addr][]string{}, map[netip.Addr]announcement{}, true
		return nil, true
	}
	var owners map[netip.Addr]string // every address's owner, when visiting all
	if all || s.l2stale || s.l2want == nil {
		s.l2want, s.l2mine, s.l2stale = map[netip.Addr][]string{}, map[netip.Addr]announcement{}, false
		touched = touched[:0]
		for _, d := range s.plan.l2.Decisions() {
			touched = append(touched, d.Addr)
		}
		owners = make(map[netip.Addr]string, len(touched))
	}
	for a := range s.pending {
		touched = append(touched, a)
	}
	if s.lastOwner == nil {
		s.lastOwner = map[netip.Addr]string{}
	}
	selfNode := s.plan.base.Nodes[s.node]
	for _, a := range touched {
		delete(s.l2want, a)
		delete(s.l2mine, a)
		d, ok := s.plan.l2.Decision(a)
		if ok && owners != nil {
			owners[a] = d.Owner
		}
		if ok && d.Owner == s.node {
			ifs := d.Interfaces
			if !s.linksComplete {
				ifs = planner.ResolveInterfaces(plannerLinks(s.links), d.Addr, selfNode.Addresses, d.Interfaces, d.OnNodeInterface)
			}
			if len(ifs) > 0 && s.claimable(d, members, now) {
				delete(s.pending, a)
				s.l2want[a] = ifs
				s.l2mine[a] = announcement{mode: v1alpha1.ModeL2, services: d.Services, interfaces: ifs}
			}
		} else {
			delete(s.pending, a)
		}
		if owners == nil {
			if ok {
				s.lastOwner[a] = d.Owner
			} else {
				delete(s.lastOwner, a)
			}
		}
	}
	if owners != nil {
		s.lastOwner = owners
	}
	s.planned = true
	return touched, owners != nil
}

func ptr[T any](v T) *T { return &v }

// wakeAt asks for a plan at t. Every plan asks again for all it waits on (holds, handovers,
// conflicts, the join timeout) and armWake sets one timer for the earliest, so no deadline
// is lost when an earlier one fires.
func (s *speaker) wakeAt(t time.Time) {
	if t.After(s.now()) && (s.wakeTime.IsZero() || t.Before(s.wakeTime)) {
		s.wakeTime = t
	}
}

// armWake sets the timer for the earliest time asked for in this plan.
func (s *speaker) armWake() {
	if s.wakeTime.IsZero() {
		return
	}
	d := s.wakeTime.Sub(s.now())
	if s.wake == nil {
		s.wake = time.AfterFunc(d, s.poke)
	} else {
		s.wake.Reset(d)
	}
}

// failed is the report of a plan that could not be made or applied: what was announced
// stays as it was, Ready turns False.
func (s *speaker) failed(msg string) report {
	return report{mine: s.owned, members: s.members, links: s.links, keep: true,
		ready: metav1.Condition{Type: ConditionReady, Status: metav1.ConditionFalse, Reason: ReasonSyncFailed, Message: msg}}
}

// refreshLinks reads this node's interfaces (when they may have changed) and publishes
// them to the other speakers, and tells whether they changed. On failure the last ones read
// stay.
func (s *speaker) refreshLinks() bool {
	s.linksRead = false
	if s.linkEvents && !s.linksStale.Swap(false) {
		return false
	}
	s.linksRead = true
	links, err := s.host.Links()
	if err != nil {
		s.linksStale.Store(true)
		s.log.Error(err, "Reading the interfaces failed")
		return false
	}
	changed := !reflect.DeepEqual(s.links, links)
	s.links = links
	s.linksComplete = decodeMeta(encodeMeta(s.holding, links)).complete
	s.publishLinks()
	return changed
}

// publishLinks puts this node's links and restart hold in its memberlist metadata.
func (s *speaker) publishLinks() {
	switch err := s.cluster.SetMeta(encodeMeta(s.holding, s.links), 500*time.Millisecond); {
	case errors.Is(err, membership.ErrMetaQueued):
		s.log.V(1).Info("The interfaces go out with the next gossip", "reason", err.Error())
	case err != nil:
		s.log.Error(err, "Publishing the interfaces failed")
	}
}

// memberLinks are the interfaces each member can answer on: this node's as just read, the
// others' from their metadata (a held speaker's from its last). A member whose metadata is
// missing, unreadable or truncated is left out (not restricted) rather than taken to have
// none.
func (s *speaker) memberLinks(members map[string]bool, metas map[string]nodeMeta) map[string][]planner.Link {
	out := map[string][]planner.Link{}
	if s.linksComplete {
		out[s.node] = plannerLinks(s.links)
	}
	for name, m := range metas {
		if name != s.node && members[name] && m.complete {
			out[name] = plannerLinks(m.links)
		}
	}
	return out
}

// memberMetas is the metadata of every member, live or departed (the live one wins), read
// once per plan.
func (s *speaker) memberMetas() map[string]nodeMeta {
	raw := map[string][]byte{}
	maps.Copy(raw, s.cluster.Departed())
	maps.Copy(raw, s.cluster.Meta())
	out := make(map[string]nodeMeta, len(raw))
	for name, b := range raw {
		out[name] = decodeMeta(b)
	}
	return out
}

func plannerLinks(links []host.Link) []planner.Link {
	out := make([]planner.Link, 0, len(links))
	for _, l := range links {
		out = append(out, planner.Link{Name: l.Name, Prefixes: l.Prefixes})
	}
	return out
}

// learnMACs remembers the MAC of every interface a speaker published.
func (s *speaker) learnMACs(metas map[string]nodeMeta) {
	if s.macs == nil {
		s.macs = map[string]string{}
	}
	for _, l := range s.links {
		s.macs[l.MAC.String()] = s.node
	}
	for name, m := range metas {
		for _, l := range m.links {
			s.macs[l.MAC.String()] = name
		}
	}
}

// gate tells whether the speaker may announce over layer 2: once it has joined the other
// speakers, or found there are none (no other node runs a speaker that reported in, on a
// node not known to be down) and waited joinTimeout for one all the same. Until then it
// announces nothing, so a restarted speaker never claims what another node holds.
func (s *speaker) gate(ctx context.Context, w planner.Objects, now time.Time) metav1.Condition {
	ready := metav1.Condition{Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonApplied, Message: "joined the speakers and applied the plan"}
	if s.open || s.cluster.Joined() {
		s.open = true
		return ready
	}
	others, err := s.otherSpeakers(ctx, w.Nodes)
	switch {
	case err != nil:
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonJoining
		ready.Message = "joining the other speakers; cannot tell whether any run: " + err.Error()
	case len(others) > 0:
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonJoining
		ready.Message = fmt.Sprintf("joining the speakers on %s; announcing nothing over layer 2 until then (is the memberlist port %d open between nodes, and the gossip key the same?)",
			strings.Join(others, ", "), s.port)
	case len(w.Nodes) > 1 && now.Sub(s.started) < s.joinTimeout:
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonJoining
		ready.Message = "no other speaker has reported in; waiting for one before announcing alone"
		s.wakeAt(s.started.Add(s.joinTimeout))
	default:
		s.open = true
		ready.Reason, ready.Message = ReasonAlone, "no other speaker runs on a ready node; announcing alone"
		s.log.Info("No other speaker found; announcing alone")
	}
	return ready
}

// otherSpeakers names the other nodes whose speaker has reported in and is Ready (a
// SpeakerStatus listing members, Ready True: a speaker that stopped gracefully empties it or
// says Restarting) and that are not known to be down (the Node's Ready False or Unknown).
func (s *speaker) otherSpeakers(ctx context.Context, nodes []corev1.Node) ([]string, error) {
	var list v1alpha1.SpeakerStatusList
	if err := s.reader.List(ctx, &list); err != nil {
		return nil, err
	}
	reported := map[string]bool{}
	for _, st := range list.Items {
		// A speaker that is joining, restarting or stopped does not count: it holds nothing
		// this one could take from it.
		reported[st.Name] = len(st.Status.Members) > 0 && meta.IsStatusConditionTrue(st.Status.Conditions, ConditionReady)
	}
	var out []string
	for i := range nodes {
		n := &nodes[i]
		if n.Name != s.node && reported[n.Name] && !nodeDown(n) {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// nodeDown tells whether Kubernetes says the node is down (its Ready condition False or
// Unknown, as the node lifecycle controller sets it when the kubelet stops reporting).
func nodeDown(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status != corev1.ConditionTrue
		}
	}
	return false
}

// claimable tells whether to answer for an address the plan gives this node now. One it
// owns already, or one whose last owner is gone (fail-over), at once; one a live speaker
// held (a member returned or joined, the owner lost its interface) only after the handover
// delay, so that speaker has seen the change and stopped first: never two answers at once.
// The first plan after joining knows no owners, so it waits for all it wins.
func (s *speaker) claimable(d planner.Decision, members map[string]bool, now time.Time) bool {
	if _, had := s.owned[annKey{d.Addr, v1alpha1.ModeL2}]; had || s.handover <= 0 {
		return true
	}
	if at, ok := s.pending[d.Addr]; ok {
		if now.Before(at) {
			s.wakeAt(at)
			return false
		}
		return true
	}
	prev := s.lastOwner[d.Addr]
	fromLive := (!s.planned && len(members) > 1) || (prev != "" && prev != s.node && members[prev])
	if !fromLive {
		return true
	}
	s.pending[d.Addr] = now.Add(s.handover)
	s.wakeAt(s.pending[d.Addr])
	return false
}

// peerAddrs are the memberlist addresses of the nodes whose speakers are not members.
func (s *speaker) peerAddrs(nodes []corev1.Node, members map[string]bool) []string {
	var addrs []string
	for i := range nodes {
		n := &nodes[i]
		if n.Name == s.node || members[n.Name] {
			continue
		}
		if a := nodeAddress(n, true); a.IsValid() {
			addrs = append(addrs, net.JoinHostPort(a.String(), strconv.Itoa(s.port)))
		} else if a := nodeAddress(n, false); a.IsValid() {
			addrs = append(addrs, net.JoinHostPort(a.String(), strconv.Itoa(s.port)))
		}
	}
	return addrs
}

// read lists the small kinds the plan needs from the informer caches (the Services are
// read by update). The objects are the caches' own: never changed.
func (s *speaker) read(ctx context.Context) (planner.Objects, error) {
	w := planner.Objects{LBClass: s.lbClass, Members: s.cluster.Members(), BadAdvertisement: func(name string, err error) {
		s.log.Error(err, "Ignoring an advertisement or BGPPeer with a bad selector", "name", name)
	}}
	var nodes corev1.NodeList
	var pools v1alpha1.IPAddressPoolList
	var ads v1alpha1.L2AdvertisementList
	var bgpAds v1alpha1.BGPAdvertisementList
	var peers v1alpha1.BGPPeerList
	for _, l := range []client.ObjectList{&nodes, &pools, &ads, &bgpAds, &peers} {
		if err := s.client.List(ctx, l, client.UnsafeDisableDeepCopy); err != nil {
			return w, err
		}
	}
	w.Nodes, w.Pools, w.L2 = nodes.Items, pools.Items, ads.Items
	w.BGP, w.Peers = bgpAds.Items, peers.Items
	return w, nil
}

// own brings owned (what this node announces, as reported) up to date: the layer-2 part for
// the addresses visited (every one with all), the BGP part for the addresses the BGP side
// touched (every one with b.all). Each Service hears when this node starts or stops
// announcing its address, or the Node, once, when one plan moves more than eventsPerPlan.
func (s *speaker) own(ctx context.Context, self *corev1.Node, l2 map[netip.Addr]announcement, visited []netip.Addr, all bool, b bgpResult) {
	if s.owned == nil {
		s.owned, s.ownedBGP = map[annKey]announcement{}, map[netip.Addr]bool{}
	}
	if all {
		visited = visited[:0:0]
		for k := range s.owned {
			if k.mode == v1alpha1.ModeL2 {
				visited = append(visited, k.addr)
			}
		}
		for a := range l2 {
			visited = append(visited, a)
		}
	}
	var moved []moveEvent
	for _, a := range visited {
		moved = s.set(annKey{a, v1alpha1.ModeL2}, l2, moved)
	}
	touched := b.touched
	if b.all {
		touched = slices.Collect(maps.Keys(s.ownedBGP))
		for a := range b.announced {
			if !s.ownedBGP[a] {
				touched = append(touched, a)
			}
		}
	}
	for _, a := range touched {
		moved = s.set(annKey{a, v1alpha1.ModeBGP}, b.announced, moved)
	}
	s.tell(ctx, self, moved)
}

// moveEvent is a Service's address this node started (on) or stopped announcing.
type moveEvent struct {
	k       annKey
	service string
	on      bool
	a       announcement
}

// set makes owned[k] what now says of k.addr, adding to moved the Services that hear of it.
func (s *speaker) set(k annKey, now map[netip.Addr]announcement, moved []moveEvent) []moveEvent {
	a, has := now[k.addr]
	old, had := s.owned[k]
	switch {
	case has && !had:
		s.m.takeovers.Inc()
		for _, name := range a.services {
			moved = append(moved, moveEvent{k: k, service: name, on: true, a: a})
		}
	case had && !has:
		for _, name := range old.services {
			moved = append(moved, moveEvent{k: k, service: name})
		}
	}
	if has {
		s.owned[k] = a
	} else {
		delete(s.owned, k)
	}
	if k.mode == v1alpha1.ModeBGP {
		if has {
			s.ownedBGP[k.addr] = true
		} else {
			delete(s.ownedBGP, k.addr)
		}
	}
	return moved
}

// tell writes an Event on each Service of moved, or, when there are more than
// eventsPerPlan (a speaker starting with thousands of addresses, a node's share moving),
// one Event on the Node that counts them: thousands of Events at once from every speaker
// would crowd the API server out for the status writes and the leases. Each Service's
// Announced condition says who announces it either way.
func (s *speaker) tell(ctx context.Context, self *corev1.Node, moved []moveEvent) {
	if s.eventsPerPlan <= 0 || len(moved) <= s.eventsPerPlan {
		for _, e := range moved {
			svc := s.service(ctx, e.service)
			switch {
			case svc == nil:
			case e.on:
				s.recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonAnnouncing, "Announce", "%s announced %s", e.k.addr, e.a.describe(s.node))
			default:
				s.recorder.Eventf(svc, nil, corev1.EventTypeNormal, ReasonStoppedAnnouncing, "Withdraw",
					"%s no longer announced over %s from %s", e.k.addr, e.k.mode, s.node)
			}
		}
		return
	}
	s.m.eventsSummed.Add(float64(len(moved)))
	on, off := summarize(moved, true), summarize(moved, false)
	s.log.Info("Many Services moved in one plan; one Event on the Node instead of one per Service", "started", on, "stopped", off)
	if self == nil {
		return
	}
	if on != "" {
		s.recorder.Eventf(self, nil, corev1.EventTypeNormal, ReasonAnnouncing, "Announce",
			"%s started announcing %s in one plan (more than %d Services: no Event on each)", s.node, on, s.eventsPerPlan)
	}
	if off != "" {
		s.recorder.Eventf(self, nil, corev1.EventTypeNormal, ReasonStoppedAnnouncing, "Withdraw",
			"%s stopped announcing %s in one plan (more than %d Services: no Event on each)", s.node, off, s.eventsPerPlan)
	}
}

// summarize counts the addresses and Services of moved that started (on) or stopped:
// "3 addresses over L2 (4 Services), 2 over BGP (2 Services)", or "" when none did.
func summarize(moved []moveEvent, on bool) string {
	type count struct {
		addrs    map[netip.Addr]bool
		services int
	}
	by := map[v1alpha1.AnnouncementMode]*count{}
	for _, e := range moved {
		if e.on != on {
			continue
		}
		c := by[e.k.mode]
		if c == nil {
			c = &count{addrs: map[netip.Addr]bool{}}
			by[e.k.mode] = c
		}
		c.addrs[e.k.addr] = true
		c.services++
	}
	var parts []string
	for _, mode := range []v1alpha1.AnnouncementMode{v1alpha1.ModeL2, v1alpha1.ModeBGP} {
		if c := by[mode]; c != nil {
			parts = append(parts, fmt.Sprintf("%d addresses over %s (%d Services)", len(c.addrs), mode, c.services))
		}
	}
	return strings.Join(parts, ", ")
}

func nodeOf(nodes []corev1.Node, name string) *corev1.Node {
	for i := range nodes {
		if nodes[i].Name == name {
			return &nodes[i]
		}
	}
	return nil
}

// nodeAddress is the node's first InternalIP of a family.
func nodeAddress(n *corev1.Node, v4 bool) netip.Addr {
	if n == nil {
		return netip.Addr{}
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() == v4 {
			return ip
		}
	}
	return netip.Addr{}
}
