package accepted

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// Reasons of the Accepted condition. When several problems apply, the reason is the first
// in this order (precedence) and the message lists them all, in this order.
const (
	// ReasonAccepted: the object is valid and in effect as written.
	ReasonAccepted = "Accepted"
	// ReasonInvalidSelector: a label selector does not parse; the speakers ignore the object.
	ReasonInvalidSelector = "InvalidSelector"
	// ReasonInvalidPeer: a speaker cannot configure a session to the peer (its report says).
	ReasonInvalidPeer = v1alpha1.SessionReasonInvalidPeer
	// ReasonSecretNotFound: a speaker cannot read the peer's password Secret.
	ReasonSecretNotFound = v1alpha1.SessionReasonSecretNotFound
	// ReasonPoolNotFound: an advertisement names an IPAddressPool that does not exist.
	ReasonPoolNotFound = "PoolNotFound"
	// ReasonPeerNotFound: a BGPAdvertisement names a BGPPeer that does not exist.
	ReasonPeerNotFound = "PeerNotFound"
	// ReasonAggregationTooWide: the aggregate of a selected pool's address would reach
	// outside the pool; the advertisement announces none of that pool's family.
	ReasonAggregationTooWide = "AggregationTooWide"
	// ReasonLocalPrefOnEBGP: localPref is set and some targeted peers are eBGP; they get the
	// addresses without LOCAL_PREF.
	ReasonLocalPrefOnEBGP = "LocalPrefOnEBGP"
)

// precedence orders the reasons of False.
var precedence = []string{ReasonInvalidSelector, ReasonInvalidPeer, ReasonSecretNotFound, ReasonPoolNotFound,
	ReasonPeerNotFound, ReasonAggregationTooWide, ReasonLocalPrefOnEBGP}

// problem is one reason the object is not in effect as written.
type problem struct {
	reason, message string
}

// verdict gathers an object's problems.
type verdict []problem

func (v *verdict) add(reason, message string) { *v = append(*v, problem{reason, message}) }

// condition is Accepted: True with ok as the message when there is no problem, else False
// with the reason that comes first and every problem's message.
func (v verdict) condition(generation int64, ok string) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: ReasonAccepted,
		Message: ok, ObservedGeneration: generation}
	if len(v) == 0 {
		return c
	}
	ps := slices.Clone(v)
	slices.SortStableFunc(ps, func(a, b problem) int {
		return slices.Index(precedence, a.reason) - slices.Index(precedence, b.reason)
	})
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.message
	}
	c.Status, c.Reason, c.Message = metav1.ConditionFalse, ps[0].reason, strings.Join(msgs, "; ")
	return c
}

// withCondition returns a copy of conds holding want, whose lastTransitionTime is now when
// its status changes and kept otherwise.
func withCondition(conds []metav1.Condition, want metav1.Condition, now metav1.Time) []metav1.Condition {
	out := make([]metav1.Condition, len(conds))
	for i := range conds {
		conds[i].DeepCopyInto(&out[i])
	}
	want.LastTransitionTime = now
	meta.SetStatusCondition(&out, want)
	return out
}

// list joins names for a message: "a, b and c".
func list(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
