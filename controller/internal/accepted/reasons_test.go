package accepted

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

// lastTransitionTime moves only when the status flips; reason, message and generation
// follow the verdict.
func TestWithCondition(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Hour))
	accepted := metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: ReasonAccepted, Message: "ok", ObservedGeneration: 1, LastTransitionTime: t0}
	other := metav1.Condition{Type: "Other", Status: metav1.ConditionTrue, Reason: "X", LastTransitionTime: t0}
	for _, tc := range []struct {
		name     string
		have     []metav1.Condition
		want     metav1.Condition
		wantTime metav1.Time
	}{
		{"first verdict", nil, metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionFalse, Reason: ReasonPoolNotFound}, t1},
		{"same status, new reason and generation", []metav1.Condition{other, accepted},
			metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: ReasonAccepted, Message: "still ok", ObservedGeneration: 2}, t0},
		{"status flips", []metav1.Condition{accepted}, metav1.Condition{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionFalse, Reason: ReasonPeerNotFound, ObservedGeneration: 2}, t1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]metav1.Condition(nil), tc.have...)
			got := withCondition(tc.have, tc.want, t1)
			var c *metav1.Condition
			for i := range got {
				if got[i].Type == v1alpha1.ConditionAccepted {
					c = &got[i]
				}
			}
			if c == nil || c.Status != tc.want.Status || c.Reason != tc.want.Reason || c.Message != tc.want.Message ||
				c.ObservedGeneration != tc.want.ObservedGeneration || !c.LastTransitionTime.Equal(&tc.wantTime) {
				t.Errorf("got %+v, want %+v at %v", c, tc.want, tc.wantTime)
			}
			if len(got) != max(len(tc.have), 1) {
				t.Errorf("conditions %+v", got)
			}
			for i := range before {
				if before[i] != tc.have[i] {
					t.Errorf("the input changed: %+v", tc.have)
				}
			}
		})
	}
}

func TestList(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{{nil, ""}, {[]string{"a"}, "a"}, {[]string{"a", "b"}, "a and b"}, {[]string{"a", "b", "c"}, "a, b and c"}} {
		if got := list(tc.in); got != tc.want {
			t.Errorf("list(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
