package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/app"
	"github.com/vipcast/vipcast/controller/internal/metrics"
)

// A controller whose leader Lease is taken away (edited on the API server, as a new leader
// taking it over would) writes nothing after it knows, and ends; the next controller does
// the work it left.
func TestLosingTheLeaseStopsWrites(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	createPool(t, "lease-fence", []string{"203.0.113.40/29"})
	o := app.Options{LeaderElect: true, LeaderNamespace: ns, LeaderElectionID: "vipcast-fence",
		LeaseDuration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: 500 * time.Millisecond}
	done, cancel := runController(t, o)
	defer cancel()
	createService(t, ns, "before")
	waitIPs(t, ns, "before", "203.0.113.40")
	waitCondition(t, ns, "before", metav1.ConditionTrue, "Allocated")
	if v := testutil.ToFloat64(metrics.Leading); v != 1 {
		t.Fatalf("vipcast_controller_leading = %v while leading", v)
	}

	// Someone else takes the Lease.
	// A merge patch without resourceVersion: the elector renews every 500 ms, and an update
	// of what was read could lose to it.
	editLease := func(p string) {
		t.Helper()
		lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: o.LeaderElectionID}}
		must(t, k8s.Patch(ctx, lease, client.RawPatch(types.MergePatchType, []byte(p))))
	}
	editLease(fmt.Sprintf(`{"spec":{"holderIdentity":"intruder","leaseDurationSeconds":3600,"renewTime":%q}}`,
		time.Now().UTC().Format("2006-01-02T15:04:05.000000Z")))
	edited := time.Now()
	for testutil.ToFloat64(metrics.Leading) != 0 { // polled finely: the delay is a figure
		if time.Since(edited) > time.Minute {
			t.Fatal("the controller never noticed that it lost the Lease")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("writes fenced %v after the Lease was taken", time.Since(edited).Round(100*time.Microsecond))

	// Work the old leader must not do: a new Service, and a change to a held one.
	fenced := testutil.ToFloat64(metrics.FencedWrites)
	createService(t, ns, "after")
	held := getService(t, ns, "before")
	held.Annotations = map[string]string{}
	held.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "203.0.113.45"
	must(t, k8s.Update(ctx, held))
	select {
	case err := <-done:
		if !errors.Is(err, app.ErrLeaseLost) || !strings.Contains(err.Error(), `"intruder"`) {
			t.Fatalf("controller ended with %v, want %v naming the intruder", err, app.ErrLeaseLost)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the controller did not stop after losing its Lease")
	}
	t.Logf("%v writes refused by the fence while the controller stopped", testutil.ToFloat64(metrics.FencedWrites)-fenced)
	if s := getService(t, ns, "after"); len(s.Status.LoadBalancer.Ingress) > 0 || len(s.Status.Conditions) > 0 {
		t.Errorf("the deposed controller wrote %+v", s.Status)
	}
	s := getService(t, ns, "before")
	if ips := ingressIPs(s); len(ips) != 1 || ips[0] != "203.0.113.40" {
		t.Errorf("the deposed controller moved the held address: %v", ips)
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionIPAllocated); c == nil || !strings.Contains(c.Message, "203.0.113.40") {
		t.Errorf("the deposed controller rewrote IPAllocated: %+v", c)
	}

	// The next controller (the intruder's Lease is released) does the work.
	editLease(`{"spec":{"holderIdentity":"","leaseDurationSeconds":1}}`)
	startController(t, o)
	waitIPs(t, ns, "before", "203.0.113.45")
	if got := waitAllocated(t, ns, "after", 1)[0]; got == "203.0.113.45" {
		t.Errorf("after got %s, which before holds", got)
	}
}
