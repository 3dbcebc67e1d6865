package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/app"
)

// versions returns the resourceVersion of every Service in ns and of the pools.
func versions(t *testing.T, ns string, pools ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var svcs corev1.ServiceList
	must(t, k8s.List(context.Background(), &svcs, client.InNamespace(ns)))
	for _, s := range svcs.Items {
		out["svc/"+s.Name] = s.ResourceVersion
	}
	for _, name := range pools {
		p := &v1alpha1.IPAddressPool{}
		must(t, k8s.Get(context.Background(), client.ObjectKey{Name: name}, p))
		out["pool/"+name] = p.ResourceVersion
	}
	return out
}

func TestRestartKeepsEveryAddressAndWritesNothing(t *testing.T) {
	const n = 40
	stop := startController(t, app.Options{})
	ns := newNamespace(t)
	sentinels := newNamespace(t)
	createPool(t, "restart", []string{"198.18.3.0/24"})
	createPool(t, "restart-sentinel", []string{"198.18.4.0/24"}, func(p *v1alpha1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: []string{sentinels}}
	})
	ips := map[string]string{}
	for i := range n {
		createService(t, ns, fmt.Sprintf("s%02d", i))
	}
	for i := range n {
		name := fmt.Sprintf("s%02d", i)
		ips[name] = waitAllocated(t, ns, name, 1)[0]
	}
	waitPool(t, "restart", "counts settled", func(st v1alpha1.IPAddressPoolStatus) bool { return st.AssignedIPv4 == n })
	time.Sleep(1500 * time.Millisecond) // let the last pool flush land
	before := versions(t, ns, "restart")
	stop()

	// A restart over unchanged objects writes nothing.
	stop = startController(t, app.Options{})
	createService(t, sentinels, "sentinel-1")
	waitAllocated(t, sentinels, "sentinel-1", 1)
	time.Sleep(2500 * time.Millisecond) // more than the pool flush interval
	after := versions(t, ns, "restart")
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s was written on restart: resourceVersion %s -> %s", k, v, after[k])
		}
	}
	stop()

	// While the controller is down one Service goes and another arrives with an address
	// already in its status, as an earlier leader would have left it.
	must(t, k8s.Delete(context.Background(), getService(t, ns, "s00")))
	freed := ips["s00"]
	hand := createService(t, ns, "handwritten")
	hand.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.3.200"}}
	must(t, k8s.Status().Update(context.Background(), hand))

	startController(t, app.Options{})
	createService(t, ns, "newcomer")
	if got := waitAllocated(t, ns, "newcomer", 1)[0]; got != freed {
		t.Errorf("newcomer got %s, want the freed %s (lowest free)", got, freed)
	}
	waitIPs(t, ns, "handwritten", "198.18.3.200")
	waitCondition(t, ns, "handwritten", metav1.ConditionTrue, "Allocated")
	for i := 1; i < n; i++ {
		name := fmt.Sprintf("s%02d", i)
		if got := ingressIPs(getService(t, ns, name)); len(got) != 1 || got[0] != ips[name] {
			t.Errorf("%s moved from %s to %v across restarts", name, ips[name], got)
		}
	}
}

func TestTwoControllersNeverShareAnAddress(t *testing.T) {
	opts := app.Options{
		LeaderElect: true, LeaderNamespace: "default", LeaderElectionID: "vipcast-two-controllers",
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 250 * time.Millisecond,
	}
	stopA := startController(t, opts)
	stopB := startController(t, opts)
	ns := newNamespace(t)
	createPool(t, "two-controllers", []string{"198.18.5.0/26"})
	const n = 60
	for i := range n {
		createService(t, ns, fmt.Sprintf("s%02d", i))
		switch i {
		case 20:
			stopA() // hands over if A led
		case 40:
			startController(t, opts)
			stopB() // hands over to the third if B led
		}
	}
	owner := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("s%02d", i)
		ip := waitAllocated(t, ns, name, 1)[0]
		if prev, dup := owner[ip]; dup {
			t.Errorf("%s is held by both %s and %s", ip, prev, name)
		}
		owner[ip] = name
	}
}
