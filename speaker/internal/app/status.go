package app

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
	"github.com/vipcast/vipcast/speaker/internal/host"
)

// maxReportedConflicts is as many conflicts as SpeakerStatus lists (the API's limit); the
// Conflict condition counts them all. More would make every write fail: claims seen on the
// wire must not freeze the report.
const maxReportedConflicts = 1024

// statusInterval is the least time between two writes of the SpeakerStatus: a plan loop that
// runs many times a second (a flapping session, a rolling update, a burst of Services) writes
// at most once a second, the last report of that second.
const statusInterval = time.Second

// statusTimeout bounds the write of a held report, which runs outside the plan loop.
const statusTimeout = 5 * time.Second

// statusWriter keeps SpeakerStatus/<node> equal to what the speaker does, writing only on
// change and at most once every statusInterval: a changed report that comes sooner is held
// and written by a timer when the interval is over (a newer report replaces it meanwhile; one
// equal to what is written drops it). writeNow writes at once, for the last reports on stop.
// The zero value (with node, clients and log) is ready; safe for concurrent use.
type statusWriter struct {
	node   string
	client client.Client
	reader client.Reader
	log    logr.Logger
	// clock paces the writes (nil: the real clock).
	clock clock.WithDelayedExecution
	// wake, when set, is called when a held report is due, to ask the plan loop for a new
	// one, which is then written; the timer writes nothing itself. A held report then refers
	// to the plan loop's own map of what is announced instead of a copy: a plan made
	// every few milliseconds while Services are created would otherwise copy every address
	// each time (with BGP, every address of the cluster) and keep the collector busy.
	wake func()

	mu sync.Mutex
	// last is the report as last written, wrote when it was last tried.
	last  *v1alpha1.SpeakerReport
	wrote time.Time
	// held is the report waiting for due, when timer composes and writes it.
	held  *report
	due   time.Time
	timer clock.Timer
}

// report is what the speaker tells of itself. The zero report (a stopped speaker) claims
// nothing and carries no conditions to change.
type report struct {
	mine      map[annKey]announcement
	sessions  []v1alpha1.BGPSessionStatus
	members   map[string]bool
	links     []host.Link
	conflicts []v1alpha1.AddressConflict
	// ready is the Ready condition (none: left as it is).
	ready metav1.Condition
	// keep: the plan failed; announcements, sessions and conflicts stay as last written.
	keep bool
}

func (r report) status() v1alpha1.SpeakerReport {
	out := v1alpha1.SpeakerReport{Members: slices.Sorted(maps.Keys(r.members)), AnnouncedCount: int32(len(r.mine)), Sessions: r.sessions,
		Conflicts: r.conflicts[:min(len(r.conflicts), maxReportedConflicts)]}
	out.Announced = announcedSets(r.mine)
	for _, l := range r.links {
		si := v1alpha1.SpeakerInterface{Name: v1alpha1.InterfaceName(l.Name), MAC: l.MAC.String()}
		for _, p := range l.Prefixes {
			si.Prefixes = append(si.Prefixes, p.String())
		}
		out.Interfaces = append(out.Interfaces, si)
	}
	return out
}

// announcedSets groups the announcements by mode, interfaces and peers (each sorted), one
// set each with its addresses encoded, sorted by mode, interfaces, peers. Services and the
// BGP aggregate are not reported: the controller finds a Service by its address.
func announcedSets(mine map[annKey]announcement) []v1alpha1.AnnouncedSet {
	type group struct {
		mode              v1alpha1.AnnouncementMode
		interfaces, peers []string
		addrs             []netip.Addr
	}
	// Grouped by a key of mode, interfaces and peers written into buf: looking a group up
	// allocates nothing, so 50,000 addresses cost 50,000 appends, not 50,000 keys.
	groups := map[string]*group{}
	var buf []byte
	for k, a := range mine {
		ifs, peers := sortedView(a.interfaces), sortedView(a.peers)
		buf = append(buf[:0], k.mode...)
		for _, list := range [][]string{ifs, peers} {
			buf = append(buf, 0)
			for _, x := range list {
				buf = append(buf, x...)
				buf = append(buf, 1)
			}
		}
		g := groups[string(buf)]
		if g == nil {
			g = &group{mode: k.mode, interfaces: slices.Clone(ifs), peers: slices.Clone(peers)}
			groups[string(buf)] = g
		}
		g.addrs = append(g.addrs, k.addr)
	}
	sorted := slices.SortedFunc(maps.Values(groups), func(a, b *group) int {
		return cmp.Or(cmp.Compare(a.mode, b.mode), slices.Compare(a.interfaces, b.interfaces), slices.Compare(a.peers, b.peers))
	})
	var out []v1alpha1.AnnouncedSet
	for _, g := range sorted {
		set := v1alpha1.AnnouncedSet{Mode: g.mode, Peers: g.peers, Count: int32(len(g.addrs)), Addresses: addrset.Encode(g.addrs)}
		for _, i := range g.interfaces {
			set.Interfaces = append(set.Interfaces, v1alpha1.InterfaceName(i))
		}
		out = append(out, set)
	}
	return out
}

// sortedView is list when it is sorted (as the plan makes it), else a sorted copy.
func sortedView(list []string) []string {
	if slices.IsSorted(list) {
		return list
	}
	return slices.Sorted(slices.Values(list))
}

// sameSets tells whether two reports announce the same: the encodings compare, as every set
// has one.
func sameSets(a, b []v1alpha1.AnnouncedSet) bool {
	return slices.EqualFunc(a, b, func(x, y v1alpha1.AnnouncedSet) bool {
		return x.Mode == y.Mode && x.Count == y.Count && slices.Equal(x.Interfaces, y.Interfaces) &&
			slices.Equal(x.Peers, y.Peers) && bytes.Equal(x.Addresses, y.Addresses)
	})
}

// sameConditions tells whether the conditions say the same (times aside).
func sameConditions(a, b []metav1.Condition) bool {
	return slices.EqualFunc(a, b, func(x, y metav1.Condition) bool {
		return x.Type == y.Type && x.Status == y.Status && x.Reason == y.Reason && x.Message == y.Message
	})
}

// sameReport tells whether two reports say the same (condition times aside).
func sameReport(a, b *v1alpha1.SpeakerReport) bool {
	return sameSets(a.Announced, b.Announced) && a.AnnouncedCount == b.AnnouncedCount &&
		equality.Semantic.DeepEqual(a.Sessions, b.Sessions) && slices.Equal(a.Members, b.Members) &&
		equality.Semantic.DeepEqual(a.Interfaces, b.Interfaces) && equality.Semantic.DeepEqual(a.Conflicts, b.Conflicts) &&
		sameConditions(a.Conditions, b.Conditions)
}

// write writes r when it changes what was written, at once or, within statusInterval of the
// last write, when the interval is over.
func (w *statusWriter) write(ctx context.Context, r report) {
	w.submit(ctx, r, false)
}

// writeNow writes r at once when it changes what was written, whenever the last write was,
// and drops any held report: for the speaker's last reports as it stops (Restarting,
// Stopped), after which no plan follows.
func (w *statusWriter) writeNow(ctx context.Context, r report) {
	w.submit(ctx, r, true)
}

func (w *statusWriter) submit(ctx context.Context, r report, now bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.clk().Now()
	if due := w.wrote.Add(statusInterval); !now && !w.wrote.IsZero() && t.Before(due) {
		// Held, composed only when the timer writes it: a burst of plans composes once.
		if r.keep && w.held != nil {
			ready := r.ready
			r = *w.held
			r.ready = ready
		} else if w.wake == nil {
			r.mine = maps.Clone(r.mine) // the plan loop goes on changing its map
		}
		if w.held == nil {
			w.due = due
			w.arm(due.Sub(t))
		}
		w.held = &r
		return
	}
	w.drop()
	want := w.compose(r)
	if w.last != nil && sameReport(&want, w.last) {
		return
	}
	w.put(ctx, want, t)
}

// compose is the report to write for r: its conditions set on the last written, and with
// keep that report's announcements, sessions and conflicts.
func (w *statusWriter) compose(r report) v1alpha1.SpeakerReport {
	want := r.status()
	base := w.last
	if r.keep && base != nil {
		want.Announced, want.AnnouncedCount, want.Sessions, want.Conflicts = base.Announced, base.AnnouncedCount, base.Sessions, base.Conflicts
	}
	if base != nil {
		want.Conditions = slices.Clone(base.Conditions)
	}
	if r.ready.Type != "" {
		meta.SetStatusCondition(&want.Conditions, r.ready)
		total := len(want.Conflicts)
		if !r.keep {
			total = len(r.conflicts)
		}
		meta.SetStatusCondition(&want.Conditions, conflictCondition(want.Conflicts, total))
	}
	return want
}

func (w *statusWriter) clk() clock.WithDelayedExecution {
	if w.clock == nil {
		return clock.RealClock{}
	}
	return w.clock
}

// arm sets a timer that, after d, wakes the plan loop or writes the held report (a new
// timer each time: a fake clock's timer fires only once).
func (w *statusWriter) arm(d time.Duration) {
	if w.wake != nil {
		w.timer = w.clk().AfterFunc(d, w.wake)
		return
	}
	w.timer = w.clk().AfterFunc(d, w.writeHeld)
}

// drop forgets the held report.
func (w *statusWriter) drop() {
	if w.held != nil {
		w.held = nil
		w.timer.Stop()
	}
}

// writeHeld writes the held report, from the timer, unless it says what was written. It reads
// no clock: a fake clock calls it while holding its own lock. With wake set, only the plan
// loop's goroutine may call it (the held report refers to the loop's map).
func (w *statusWriter) writeHeld() {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.held == nil {
		return
	}
	want := w.compose(*w.held)
	w.held = nil
	if w.last != nil && sameReport(&want, w.last) {
		return
	}
	w.put(ctx, want, w.due)
}

// put writes want, its conditions set on the stored ones, at t. A failed write is tried again
// with the next report.
func (w *statusWriter) put(ctx context.Context, want v1alpha1.SpeakerReport, t time.Time) {
	w.wrote = t
	var st v1alpha1.SpeakerStatus
	err := w.reader.Get(ctx, client.ObjectKey{Name: w.node}, &st)
	if apierrors.IsNotFound(err) {
		st.Name = w.node
		err = w.client.Create(ctx, &st)
	}
	if err != nil {
		w.log.Error(err, "Writing SpeakerStatus failed")
		return
	}
	have := st.Status.Conditions
	for _, c := range want.Conditions {
		c.ObservedGeneration = st.Generation
		meta.SetStatusCondition(&have, c)
	}
	want.Conditions = have
	st.Status = want
	if err := w.client.Status().Update(ctx, &st); err != nil {
		w.log.Error(err, "Writing SpeakerStatus failed")
		return
	}
	w.last = &want
}
