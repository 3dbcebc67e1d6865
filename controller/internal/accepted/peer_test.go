package accepted

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

func report(node string, sessions ...v1alpha1.BGPSessionStatus) v1alpha1.SpeakerStatus {
	return v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: node}, Status: v1alpha1.SpeakerReport{Sessions: sessions}}
}

func TestPeer(t *testing.T) {
	up := v1alpha1.BGPSessionStatus{Peer: "tor", State: "Established"}
	active := v1alpha1.BGPSessionStatus{Peer: "tor", State: "Active"}
	other := v1alpha1.BGPSessionStatus{Peer: "spine", State: "Established"}
	noSecret := func(state string) v1alpha1.BGPSessionStatus {
		return v1alpha1.BGPSessionStatus{Peer: "tor", State: state, Reason: v1alpha1.SessionReasonSecretNotFound, Message: `secrets "bgp" not found`}
	}
	invalid := v1alpha1.BGPSessionStatus{Peer: "tor", Reason: v1alpha1.SessionReasonInvalidPeer, Message: "sourceAddress 192.0.2.9 is not on this node"}
	live := map[string]bool{"a": true, "b": true, "c": true}
	withSecret := func(p *v1alpha1.BGPPeer) {
		p.Spec.PasswordSecret = &v1alpha1.SecretKeyReference{Namespace: "vipcast-system", Name: "bgp"}
	}
	for _, tc := range []struct {
		name                 string
		mutate               func(*v1alpha1.BGPPeer)
		reports              []v1alpha1.SpeakerStatus
		want                 want
		established, nodeCnt int32
	}{
		{"no speaker reports it yet", nil, nil, want{metav1.ConditionTrue, ReasonAccepted, []string{"0 of the 0 nodes"}}, 0, 0},
		{"counts from live reports only", nil, []v1alpha1.SpeakerStatus{report("a", up, other), report("b", active), report("dead", up)},
			want{metav1.ConditionTrue, ReasonAccepted, []string{"Established from 1 of the 2 nodes"}}, 1, 2},
		{"a bad node selector", func(p *v1alpha1.BGPPeer) { p.Spec.NodeSelectors = badSelector }, nil,
			want{metav1.ConditionFalse, ReasonInvalidSelector, []string{"nodeSelectors[0]", "no node opens a session"}}, 0, 0},
		{"Secret missing, sessions still up", withSecret, []v1alpha1.SpeakerStatus{report("b", noSecret("Established")), report("a", noSecret("Established"))},
			want{metav1.ConditionFalse, ReasonSecretNotFound, []string{`the speakers on a and b cannot read the password Secret vipcast-system/bgp (key "password")`,
				`secrets "bgp" not found`, "their sessions still run on the last password read"}}, 2, 2},
		{"Secret missing, some sessions down", withSecret, []v1alpha1.SpeakerStatus{report("a", noSecret("Established")), report("b", noSecret("Active")), report("c", up)},
			want{metav1.ConditionFalse, ReasonSecretNotFound, []string{"a and b cannot read", "the sessions from a still run on the last password read, those from b are not established"}}, 2, 3},
		{"Secret missing, no session", withSecret, []v1alpha1.SpeakerStatus{report("a", noSecret("Idle"))},
			want{metav1.ConditionFalse, ReasonSecretNotFound, []string{"their sessions are not established"}}, 0, 1},
		{"a speaker cannot configure it", nil, []v1alpha1.SpeakerStatus{report("a", invalid), report("b", up)},
			want{metav1.ConditionFalse, ReasonInvalidPeer, []string{"the speakers on a cannot configure a session", "sourceAddress 192.0.2.9"}}, 1, 2},
		{"precedence: selector, invalid peer, secret; all told", func(p *v1alpha1.BGPPeer) { withSecret(p); p.Spec.NodeSelectors = badSelector },
			[]v1alpha1.SpeakerStatus{report("a", invalid), report("b", noSecret("Established"))},
			want{metav1.ConditionFalse, ReasonInvalidSelector, []string{"nodeSelectors[0]", "cannot configure", "cannot read the password Secret"}}, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := peer("tor", 64512, 64513)
			if tc.mutate != nil {
				tc.mutate(&p)
			}
			v := Peer(&p, tc.reports, live)
			check(t, v.Accepted, tc.want, 1)
			if v.EstablishedNodes != tc.established || v.Nodes != tc.nodeCnt {
				t.Errorf("established %d of %d, want %d of %d", v.EstablishedNodes, v.Nodes, tc.established, tc.nodeCnt)
			}
		})
	}
}
