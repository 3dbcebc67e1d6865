package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/vipcast/vipcast/speaker/internal/bfd"
)

// Defaults for timers a BGPPeer leaves out: GoBGP's own (120 s between connection attempts,
// 30 s idle after a reset) would leave a router that restarted without routes for minutes.
const (
	DefaultConnectRetry = 5 * time.Second
	idleHoldAfterReset  = 2
	// restartDeferral bounds how long a restarted speaker waits for its peers' End-of-RIB
	// before sending its routes: it imports nothing, so there is nothing to wait for beyond
	// the peers that come up together.
	restartDeferral = 1
	// restartWindow is how long after its start a server's new sessions say it restarted:
	// long enough for peers whose password Secret could not be read at once.
	restartWindow = 2 * time.Minute
	// resetTimeout bounds resetting a BGP session after BFD saw a failure.
	resetTimeout = 5 * time.Second
)

// Speaker is one embedded GoBGP server: its sessions and the routes it announces.
type Speaker struct {
	log      logr.Logger
	srv      *server.BgpServer
	RouterID netip.Addr
	ASN      uint32

	mu       sync.Mutex
	sessions map[string]Session
	routes   map[netip.Prefix]Route
	stop     context.CancelFunc
	changed  func()
	// bfd runs the sessions' BFD, opened with the first session that wants it. GoBGP's own
	// BFD stays off (see package bfd for why).
	bfd *bfd.Server
	// started is when the server started: sessions opened within restartWindow of it tell
	// graceful-restart peers that this speaker restarted with its forwarding intact, so they
	// keep the routes of the speaker that ran before until this one has sent its own
	// (End-of-RIB). A peer with nothing kept from before just takes the routes.
	started time.Time
	// Updates counts paths announced or withdrawn.
	Updates atomic.Uint64
	// Events counts the changes of sessions and of their BFD seen: a reader of State that saw
	// the same count before needs no new reading for the states alone.
	Events atomic.Uint64
}

// New starts a GoBGP server that listens nowhere (it connects to its peers) and calls
// changed whenever a session changes state.
func New(log logr.Logger, routerID netip.Addr, asn uint32, changed func()) (*Speaker, error) {
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	if log.V(1).Enabled() {
		level.Set(slog.LevelDebug)
	}
	srv := server.NewBgpServer(server.LoggerOption(slog.New(logr.ToSlogHandler(log)), level))
	go srv.Serve()
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: asn, RouterId: routerID.String(), ListenPort: -1}}); err != nil {
		cancel()
		srv.Stop()
		return nil, fmt.Errorf("starting BGP: %w", err)
	}
	s := &Speaker{log: log, srv: srv, RouterID: routerID, ASN: asn, sessions: map[string]Session{}, routes: map[netip.Prefix]Route{}, stop: cancel, changed: changed, started: time.Now()}
	if err := srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: exportAssignment()}); err != nil {
		s.Close(context.Background(), false)
		return nil, fmt.Errorf("setting the export default: %w", err)
	}
	err := srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(*apiutil.WatchEventMessage_PeerEvent, time.Time) {
			s.Events.Add(1)
			if changed != nil {
				changed()
			}
		},
	}, server.WatchPeer())
	if err != nil {
		s.Close(context.Background(), false)
		return nil, fmt.Errorf("watching sessions: %w", err)
	}
	return s, nil
}

// Apply makes the sessions and routes those given, changing only the difference. Routes to
// a session not given are dropped. New sessions open only once the routes are in place, so
// the first UPDATEs they send (and the End-of-RIB after them) carry the whole table. It
// returns every error met; what succeeded stays.
func (s *Speaker) Apply(ctx context.Context, sessions []Session, routes []Route) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	want := map[string]Session{}
	for _, ss := range sessions {
		want[ss.Name] = ss
	}
	added, serrs := s.applySessions(ctx, want)
	errs = append(errs, serrs...)
	wantRoutes := map[netip.Prefix]Route{}
	for _, r := range routes {
		r.Peers = slices.DeleteFunc(slices.Clone(r.Peers), func(p string) bool { _, ok := s.sessions[p]; return !ok })
		if len(r.Peers) > 0 {
			wantRoutes[r.Prefix] = r
		}
	}
	errs = append(errs, s.applyRoutes(ctx, diffRoutes(s.routes, wantRoutes))...)
	for _, ss := range added {
		if err := s.openSession(ctx, ss); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", ss.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Update changes the routes of the prefixes given, and no others: routes are the new routes of
// theirs, withdraw the prefixes that have none now. The sessions stay as the last Apply made
// them (a route's peers outside them are dropped). Its work is in proportion to the prefixes
// given, where Apply's is in proportion to the table.
func (s *Speaker) Update(ctx context.Context, routes []Route, withdraw []netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := make(map[netip.Prefix]Route, len(routes))
	prefixes := make([]netip.Prefix, 0, len(routes)+len(withdraw))
	for _, r := range routes {
		prefixes = append(prefixes, r.Prefix)
		r.Peers = slices.DeleteFunc(slices.Clone(r.Peers), func(p string) bool { _, ok := s.sessions[p]; return !ok })
		if len(r.Peers) > 0 {
			want[r.Prefix] = r
		}
	}
	prefixes = append(prefixes, withdraw...)
	return errors.Join(s.applyRoutes(ctx, diffPrefixes(s.routes, want, prefixes))...)
}

// applySessions removes the sessions not wanted (or changed) and sets up the filters of the
// new ones, which it returns for openSession.
func (s *Speaker) applySessions(ctx context.Context, want map[string]Session) ([]Session, []error) {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(s.sessions)) {
		old := s.sessions[name]
		w, ok := want[name]
		if ok && sameSession(old, w) {
			continue
		}
		if ok && onlyBFDChanged(old, w) {
			// New BFD timers (or BFD on or off) need no new BGP session.
			if err := s.setBFD(old, w); err != nil {
				errs = append(errs, fmt.Errorf("peer %s: %w", name, err))
				continue
			}
			s.sessions[name] = w
			continue
		}
		if err := s.removeSession(ctx, old); err != nil {
			errs = append(errs, err)
		}
	}
	var added []Session
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if _, ok := s.sessions[name]; ok {
			continue
		}
		if err := s.addFilter(ctx, want[name]); err != nil {
			errs = append(errs, fmt.Errorf("peer %s: %w", name, err))
			continue
		}
		added = append(added, want[name])
	}
	return added, errs
}

// addFilter creates the session's export filter (only its routes pass to its address) and
// counts the session as configured; openSession then adds the neighbour. Its routes are the
// ones already announced that name it.
func (s *Speaker) addFilter(ctx context.Context, ss Session) error {
	var prefixes []netip.Prefix
	for p, r := range s.routes {
		if slices.Contains(r.Peers, ss.Name) && p.Addr().Is4() == ss.Address.Is4() {
			prefixes = append(prefixes, p)
		}
	}
	name := setName(ss.Name)
	sets := []*api.DefinedSet{
		{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name, Prefixes: apiPrefixes(prefixes)},
		{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: name, List: []string{netip.PrefixFrom(ss.Address, ss.Address.BitLen()).String()}},
	}
	for _, set := range sets {
		if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set, Replace: true}); err != nil {
			return err
		}
	}
	policy := &api.Policy{Name: name, Statements: []*api.Statement{{
		Name: name,
		Conditions: &api.Conditions{
			PrefixSet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: name},
			NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: name},
		},
		Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return err
	}
	if err := s.srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: exportAssignment(name)}); err != nil {
		return err
	}
	s.sessions[ss.Name] = ss
	return nil
}

// openSession starts the BFD session (when on) and adds the neighbour of a session whose
// filter is in place; on failure the session is taken out again, before any BGP connection
// was tried.
func (s *Speaker) openSession(ctx context.Context, ss Session) error {
	if ss.BFD != nil {
		if err := s.startBFD(ss); err != nil {
			delete(s.sessions, ss.Name)
			return errors.Join(err, s.dropFilter(ctx, setName(ss.Name)))
		}
	}
	restarting := time.Since(s.started) < restartWindow
	if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peerConfig(ss, restarting)}); err != nil {
		delete(s.sessions, ss.Name)
		if ss.BFD != nil {
			s.bfd.Remove(ss.Address)
		}
		return errors.Join(err, s.dropFilter(ctx, setName(ss.Name)))
	}
	s.log.Info("Added BGP peer", "peer", ss.Name, "address", ss.Address.String(), "bfd", ss.BFD != nil, "md5", ss.Password != "",
		"restarting", restarting && ss.GracefulRestart > 0)
	return nil
}

// setBFD changes a session's BFD from old's to want's.
func (s *Speaker) setBFD(old, want Session) error {
	if old.BFD != nil && s.bfd != nil {
		s.bfd.Remove(old.Address)
	}
	if want.BFD == nil {
		return nil
	}
	return s.startBFD(want)
}

// startBFD runs BFD with the session's peer, from the session's source address. Only a BFD
// session that was Up and then heard nothing for its detection time resets BGP: not one that
// never came Up (RFC 5882 4.3), nor one the peer says is down (its own BGP acts on its side;
// FRR replaces its BFD session when the BGP session comes up, saying Down on the old one).
func (s *Speaker) startBFD(ss Session) error {
	if s.bfd == nil {
		srv, err := bfd.Listen(netip.AddrPortFrom(netip.IPv6Unspecified(), bfd.Port), bfd.Port)
		if err != nil {
			return err
		}
		s.bfd = srv
	}
	addr := ss.Address.String()
	cfg := bfd.Config{Source: ss.Source, Transmit: ss.BFD.Transmit, Receive: ss.BFD.Receive, Multiplier: uint8(min(ss.BFD.Multiplier, 255))}
	return s.bfd.Add(ss.Address, cfg, func(c bfd.Change) {
		s.log.Info("BFD session changed", "peer", ss.Name, "address", addr, "from", c.Old.String(), "to", c.New.String(), "timedOut", c.TimedOut)
		if c.Old == bfd.Up && c.TimedOut {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), resetTimeout)
				defer cancel()
				err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: addr, Communication: "BFD detected a failure"})
				if err != nil {
					s.log.Error(err, "Resetting the BGP session after BFD went down failed", "peer", ss.Name)
				}
			}()
		}
		s.Events.Add(1)
		if s.changed != nil {
			s.changed()
		}
	})
}

// BFDStats are the packets the speaker's BFD read: accepted, malformed, for no session.
func (s *Speaker) BFDStats() (received, malformed, unknown uint64) {
	s.mu.Lock()
	srv := s.bfd
	s.mu.Unlock()
	if srv == nil {
		return 0, 0, 0
	}
	return srv.Stats.Received.Load(), srv.Stats.Malformed.Load(), srv.Stats.Unknown.Load()
}

func (s *Speaker) removeSession(ctx context.Context, ss Session) error {
	delete(s.sessions, ss.Name)
	if ss.BFD != nil && s.bfd != nil {
		s.bfd.Remove(ss.Address)
	}
	err := errors.Join(s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: ss.Address.String()}), s.dropFilter(ctx, setName(ss.Name)))
	s.log.Info("Removed BGP peer", "peer", ss.Name, "address", ss.Address.String())
	return err
}

// applyRoutes lets the new prefixes of d through their sessions' filters, announces,
// withdraws, and finally closes the filters, withdrawing from sessions that lost a route
// still announced to others.
func (s *Speaker) applyRoutes(ctx context.Context, d routeDiff) []error {
	var errs []error
	for _, peer := range slices.Sorted(maps.Keys(d.gain)) {
		if err := s.setPrefixes(ctx, peer, d.gain[peer], true); err != nil {
			errs = append(errs, err)
		}
	}
	if len(d.announce) > 0 {
		paths := make([]*apiutil.Path, 0, len(d.announce))
		for _, r := range d.announce {
			p, err := path(r, false)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			paths = append(paths, p)
		}
		if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
			errs = append(errs, fmt.Errorf("announcing: %w", err))
		} else {
			for _, r := range d.announce {
				s.routes[r.Prefix] = r
			}
			s.Updates.Add(uint64(len(paths)))
		}
	}
	if len(d.withdraw) > 0 {
		paths := make([]*apiutil.Path, 0, len(d.withdraw))
		for _, p := range d.withdraw {
			wp, err := path(s.routes[p], true)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			paths = append(paths, wp)
		}
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: paths}); err != nil {
			errs = append(errs, fmt.Errorf("withdrawing: %w", err))
		} else {
			for _, p := range d.withdraw {
				delete(s.routes, p)
			}
			s.Updates.Add(uint64(len(paths)))
		}
	}
	for _, peer := range slices.Sorted(maps.Keys(d.lose)) {
		if err := s.setPrefixes(ctx, peer, d.lose[peer], false); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// setPrefixes adds prefixes to a session's filter or takes them out; taking out re-runs the
// filter so the router hears the withdrawal.
func (s *Speaker) setPrefixes(ctx context.Context, peer string, prefixes []netip.Prefix, add bool) error {
	ss, ok := s.sessions[peer]
	if !ok {
		return nil
	}
	prefixes = slices.DeleteFunc(prefixes, func(p netip.Prefix) bool { return p.Addr().Is4() != ss.Address.Is4() })
	if len(prefixes) == 0 {
		return nil
	}
	set := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: setName(peer), Prefixes: apiPrefixes(prefixes)}
	if add {
		return s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: set})
	}
	if err := s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: set}); err != nil {
		return err
	}
	return s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: ss.Address.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT})
}

// Withdraw takes every route back and waits (until ctx ends) for the sessions that are up
// to have sent the withdrawals.
func (s *Speaker) Withdraw(ctx context.Context) error {
	if err := s.Apply(ctx, s.Sessions(), nil); err != nil {
		return err
	}
	for {
		pending := 0
		for _, st := range s.State(ctx, true) {
			if st.Established {
				pending += st.Advertised + st.OutQueue
			}
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d withdrawals not sent: %w", pending, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Sessions are the sessions configured now.
func (s *Speaker) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.sessions))
}

// Close stops the server. With notify every peer gets a Cease notification and drops the
// routes at once; without, the sessions that negotiated graceful restart just close (no
// NOTIFICATION), so those peers keep forwarding by the routes, marked stale, until the
// speaker is back or the restart time runs out (RFC 4724); the others get a Cease.
func (s *Speaker) Close(ctx context.Context, notify bool) {
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{AllowGracefulRestart: !notify}); err != nil {
		s.log.Error(err, "Stopping BGP failed")
	}
	s.stop()
	s.srv.Stop()
	// Waits for the BFD sessions to end; their callbacks never take s.mu.
	s.mu.Lock()
	if s.bfd != nil {
		_ = s.bfd.Close()
		s.bfd = nil
	}
	s.mu.Unlock()
}

func setName(peer string) string { return "vipcast-" + peer }

// exportAssignment hangs policies on the global RIB's export side: GoBGP filters what goes
// to ordinary (not route-server) neighbours there, so each session's policy matches its
// neighbour address and its prefixes, and everything else is rejected.
func exportAssignment(policies ...string) *api.PolicyAssignment {
	a := &api.PolicyAssignment{Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT}
	for _, p := range policies {
		a.Policies = append(a.Policies, &api.Policy{Name: p})
	}
	return a
}

// dropFilter removes a session's policy and sets.
func (s *Speaker) dropFilter(ctx context.Context, name string) error {
	return errors.Join(
		s.srv.DeletePolicyAssignment(ctx, &api.DeletePolicyAssignmentRequest{Assignment: exportAssignment(name)}),
		s.srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: name}, All: true}),
		s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name}, All: true}),
		s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: name}, All: true}),
	)
}

func apiPrefixes(ps []netip.Prefix) []*api.Prefix {
	out := make([]*api.Prefix, 0, len(ps))
	for _, p := range ps {
		out = append(out, &api.Prefix{IpPrefix: p.String(), MaskLengthMin: uint32(p.Bits()), MaskLengthMax: uint32(p.Bits())})
	}
	return out
}

func family(a netip.Addr) bgp.Family {
	if a.Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// path is the GoBGP path of a route (or its withdrawal).
func path(r Route, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(r.Prefix)
	if err != nil {
		return nil, fmt.Errorf("prefix %s: %w", r.Prefix, err)
	}
	fam := family(r.Prefix.Addr())
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	nh := r.NextHop
	if !nh.IsValid() || nh.Is4() != r.Prefix.Addr().Is4() {
		nh = netip.IPv4Unspecified()
		if fam == bgp.RF_IPv6_UC {
			nh = netip.IPv6Unspecified()
		}
	}
	if fam == bgp.RF_IPv4_UC {
		a, err := bgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	} else {
		a, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	comms, err := ParseCommunities(r.Communities)
	if err != nil {
		return nil, err
	}
	if len(comms.Standard) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(comms.Standard))
	}
	if len(comms.Large) > 0 {
		var ls []*bgp.LargeCommunity
		for _, l := range comms.Large {
			ls = append(ls, bgp.NewLargeCommunity(l[0], l[1], l[2]))
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(ls))
	}
	if r.LocalPref != nil {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(*r.LocalPref))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}

func seconds(d time.Duration) uint64 { return uint64(d.Round(time.Second) / time.Second) }

// peerConfig is GoBGP's neighbour configuration for a session: one address family, the
// peer address's. restarting sets the graceful-restart Restart State and Forwarding State
// bits: routes a peer kept from before the restart stay until this speaker's End-of-RIB.
func peerConfig(ss Session, restarting bool) *api.Peer {
	fam := family(ss.Address)
	connect := ss.ConnectRetry
	if connect == 0 {
		connect = DefaultConnectRetry
	}
	p := &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: ss.Address.String(), PeerAsn: ss.PeerASN, LocalAsn: ss.MyASN,
			AuthPassword: ss.Password, Description: ss.Name},
		Timers: &api.Timers{Config: &api.TimersConfig{ConnectRetry: seconds(connect), HoldTime: seconds(ss.Hold),
			KeepaliveInterval: seconds(ss.Keepalive), IdleHoldTimeAfterReset: idleHoldAfterReset}},
		Transport: &api.Transport{RemotePort: uint32(ss.Port)},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
			Family:  &api.Family{Afi: api.Family_Afi(fam.Afi()), Safi: api.Family_Safi(fam.Safi())},
			Enabled: true,
		}}},
	}
	if ss.Source.IsValid() {
		p.Transport.LocalAddress = ss.Source.String()
	}
	if ss.MultiHop {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	// ss.BFD is not GoBGP's: the Speaker runs it (startBFD).
	if ss.GracefulRestart > 0 {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(seconds(ss.GracefulRestart)),
			LocalRestarting: restarting, DeferralTime: restartDeferral}
		p.AfiSafis[0].MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	return p
}
