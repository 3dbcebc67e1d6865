package accepted

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// stateEstablished is the BGP state of a session that is up.
const stateEstablished = "Established"

// PeerVerdict is what the controller writes of a BGPPeer's status.
type PeerVerdict struct {
	Accepted metav1.Condition
	// EstablishedNodes and Nodes count the live speakers whose session to the peer is
	// Established, and those that report a session to it at all.
	EstablishedNodes, Nodes int32
}

// Peer judges a BGPPeer from its spec and the reports of the live speakers (live: the
// nodes announce.LiveSpeakers counts).
func Peer(p *v1alpha1.BGPPeer, reports []v1alpha1.SpeakerStatus, live map[string]bool) PeerVerdict {
	var out PeerVerdict
	var v verdict
	checkSelectors(&v, "peer (no node opens a session to it)", selectorField{"nodeSelectors", p.Spec.NodeSelectors})
	// Per reason, the nodes reporting it; for SecretNotFound, which of them still run.
	byReason := map[string][]string{}
	var running []string
	var firstMessage = map[string]string{}
	for i := range reports {
		st := &reports[i]
		if !live[st.Name] {
			continue
		}
		for _, s := range st.Status.Sessions {
			if s.Peer != p.Name {
				continue
			}
			out.Nodes++
			if s.State == stateEstablished {
				out.EstablishedNodes++
			}
			if s.Reason == "" {
				continue
			}
			byReason[s.Reason] = append(byReason[s.Reason], st.Name)
			if _, ok := firstMessage[s.Reason]; !ok {
				firstMessage[s.Reason] = s.Message
			}
			if s.Reason == ReasonSecretNotFound && s.State == stateEstablished {
				running = append(running, st.Name)
			}
		}
	}
	if nodes := byReason[ReasonInvalidPeer]; len(nodes) > 0 {
		slices.Sort(nodes)
		v.add(ReasonInvalidPeer, fmt.Sprintf("the speakers on %s cannot configure a session to this peer: %s", list(nodes), firstMessage[ReasonInvalidPeer]))
	}
	if nodes := byReason[ReasonSecretNotFound]; len(nodes) > 0 {
		v.add(ReasonSecretNotFound, secretMessage(p, nodes, running, firstMessage[ReasonSecretNotFound]))
	}
	out.Accepted = v.condition(p.Generation, fmt.Sprintf("sessions Established from %d of the %d nodes that peer with this router", out.EstablishedNodes, out.Nodes))
	return out
}

// secretMessage names the password Secret, the nodes that cannot read it and whether their
// sessions still run on the last password read.
func secretMessage(p *v1alpha1.BGPPeer, nodes, running []string, speakerSays string) string {
	slices.Sort(nodes)
	slices.Sort(running)
	secret := "the password Secret"
	if ref := p.Spec.PasswordSecret; ref != nil {
		key := ref.Key
		if key == "" {
			key = "password"
		}
		secret = fmt.Sprintf("password Secret %s/%s (key %q)", ref.Namespace, ref.Name, key)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the speakers on %s cannot read the %s", list(nodes), strings.TrimPrefix(secret, "the "))
	if speakerSays != "" {
		fmt.Fprintf(&b, " (%s)", speakerSays)
	}
	switch {
	case len(running) == len(nodes):
		b.WriteString("; their sessions still run on the last password read")
	case len(running) > 0:
		stopped := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return slices.Contains(running, n) })
		fmt.Fprintf(&b, "; the sessions from %s still run on the last password read, those from %s are not established", list(running), list(stopped))
	default:
		b.WriteString("; their sessions are not established")
	}
	return b.String()
}
