package bgp

import (
	"context"
	"maps"
	"slices"

	api "github.com/osrg/gobgp/v4/api"
)

// SessionState is how one session stands.
type SessionState struct {
	Name        string
	Address     string
	State       string
	Established bool
	// BFD is "Up", "Down", "Init", "AdminDown", or empty when off.
	BFD string
	// Advertised counts the prefixes sent and not withdrawn; OutQueue the messages waiting.
	Advertised, OutQueue int
}

var sessionStates = map[api.PeerState_SessionState]string{
	api.PeerState_SESSION_STATE_IDLE: "Idle", api.PeerState_SESSION_STATE_CONNECT: "Connect",
	api.PeerState_SESSION_STATE_ACTIVE: "Active", api.PeerState_SESSION_STATE_OPENSENT: "OpenSent",
	api.PeerState_SESSION_STATE_OPENCONFIRM: "OpenConfirm", api.PeerState_SESSION_STATE_ESTABLISHED: "Established",
}

// State lists the sessions' states, sorted by name. Counting the prefixes advertised runs
// the export policy over every path, so it is asked for only with counts (otherwise
// Advertised is -1).
func (s *Speaker) State(ctx context.Context, counts bool) []SessionState {
	s.mu.Lock()
	byAddr := map[string]Session{}
	for _, ss := range s.sessions {
		byAddr[ss.Address.String()] = ss
	}
	bfdSrv := s.bfd
	s.mu.Unlock()
	out := map[string]SessionState{}
	_ = s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: counts}, func(p *api.Peer) {
		addr := p.GetConf().GetNeighborAddress()
		ss, ok := byAddr[addr]
		if !ok {
			return
		}
		st := SessionState{Name: ss.Name, Address: addr, State: sessionStates[p.GetState().GetSessionState()]}
		st.Established = p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
		st.OutQueue = int(p.GetState().GetOutQ())
		st.Advertised = -1
		if counts {
			st.Advertised = 0
			for _, af := range p.GetAfiSafis() {
				st.Advertised += int(af.GetState().GetAdvertised())
			}
		}
		if ss.BFD != nil {
			st.BFD = "Down"
			if bfdSrv != nil {
				st.BFD = bfdSrv.State(ss.Address).String()
			}
		}
		out[ss.Name] = st
	})
	res := make([]SessionState, 0, len(out))
	for _, name := range slices.Sorted(maps.Keys(out)) {
		res = append(res, out[name])
	}
	return res
}
