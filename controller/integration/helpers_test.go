package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

var nsCounter atomic.Int64

// newNamespace creates a namespace for one test; envtest has no namespace controller, so
// the test's cleanup deletes the Services in it itself.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")))
	if len(name) > 60 {
		name = name[:60]
	}
	name = strings.TrimRight(name, "-")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	must(t, k8s.Create(context.Background(), ns))
	t.Cleanup(func() {
		ctx := context.Background()
		var svcs corev1.ServiceList
		_ = k8s.List(ctx, &svcs, client.InNamespace(name))
		for i := range svcs.Items {
			_ = k8s.Delete(ctx, &svcs.Items[i])
		}
	})
	return name
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// createPool creates a pool and, at cleanup, deletes it and waits until it is gone (the
// controller must still run then to drop its finalizer).
func createPool(t *testing.T, name string, addrs []string, mutate ...func(*v1alpha1.IPAddressPool)) *v1alpha1.IPAddressPool {
	t.Helper()
	p := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressRange(a))
	}
	for _, m := range mutate {
		m(p)
	}
	must(t, k8s.Create(context.Background(), p))
	t.Cleanup(func() { removePool(name) })
	return p
}

// removePool deletes a pool at the end of a test. Where the test's last controller is
// already gone, nobody drops the finalizer, so this does it after a grace period.
// TestPoolDeletionWaitsForHolders checks the controller's own handling.
func removePool(name string) {
	ctx := context.Background()
	p := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Delete(ctx, p); apierrors.IsNotFound(err) {
		return
	}
	for range 100 {
		if err := k8s.Get(ctx, client.ObjectKey{Name: name}, p); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Finalizers = nil
	_ = k8s.Update(ctx, p)
}

func deletePoolAndWait(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	p := &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Delete(ctx, p); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("deleting pool %s: %v", name, err)
	}
	eventually(t, "pool "+name+" is gone", func() (bool, string) {
		err := k8s.Get(ctx, client.ObjectKey{Name: name}, p)
		return apierrors.IsNotFound(err), fmt.Sprintf("finalizers %v, conditions %v", p.Finalizers, p.Status.Conditions)
	})
}

func lbService(ns, name string, mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func createService(t *testing.T, ns, name string, mutate ...func(*corev1.Service)) *corev1.Service {
	t.Helper()
	s := lbService(ns, name, mutate...)
	must(t, k8s.Create(context.Background(), s))
	// Registered after the pools it uses, so it runs before their clean-up waits for them.
	t.Cleanup(func() { _ = client.IgnoreNotFound(k8s.Delete(context.Background(), lbService(ns, name))) })
	return s
}

func getService(t *testing.T, ns, name string) *corev1.Service {
	t.Helper()
	s := &corev1.Service{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s))
	return s
}

func ingressIPs(s *corev1.Service) []string {
	var ips []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		ips = append(ips, in.IP)
	}
	return ips
}

// eventually polls cond until it holds, failing the test after a minute with the last
// description cond gave.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ok, desc := cond()
		if ok {
			return
		}
		last = desc
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s; last seen: %s", what, last)
}

// waitIPs waits until the Service's status lists exactly want (in order).
func waitIPs(t *testing.T, ns, name string, want ...string) *corev1.Service {
	t.Helper()
	var s *corev1.Service
	eventually(t, fmt.Sprintf("%s/%s to have %v", ns, name, want), func() (bool, string) {
		s = getService(t, ns, name)
		got := ingressIPs(s)
		return strings.Join(got, ",") == strings.Join(want, ","), fmt.Sprintf("ingress %v, conditions %+v", got, s.Status.Conditions)
	})
	return s
}

// waitAllocated waits until the Service has n addresses and returns them.
func waitAllocated(t *testing.T, ns, name string, n int) []string {
	t.Helper()
	var got []string
	eventually(t, fmt.Sprintf("%s/%s to have %d addresses", ns, name, n), func() (bool, string) {
		s := getService(t, ns, name)
		got = ingressIPs(s)
		return len(got) == n, fmt.Sprintf("ingress %v, conditions %+v", got, s.Status.Conditions)
	})
	return got
}

// waitCondition waits until the Service's IPAllocated condition has the status and reason.
func waitCondition(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var c metav1.Condition
	eventually(t, fmt.Sprintf("%s/%s condition %s/%s", ns, name, status, reason), func() (bool, string) {
		s := getService(t, ns, name)
		got := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionIPAllocated)
		if got == nil {
			return false, "no condition"
		}
		c = *got
		return got.Status == status && got.Reason == reason, fmt.Sprintf("%+v", *got)
	})
	return c
}

// waitEvent waits for an Event about the object with the reason whose note contains text.
func waitEvent(t *testing.T, ns, name, reason, text string) {
	t.Helper()
	eventually(t, fmt.Sprintf("event %s %q on %s/%s", reason, text, ns, name), func() (bool, string) {
		var evs eventsv1.EventList
		if err := k8s.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.Regarding.Name != name {
				continue
			}
			seen = append(seen, e.Reason+": "+e.Note)
			if e.Reason == reason && strings.Contains(e.Note, text) {
				return true, ""
			}
		}
		return false, strings.Join(seen, " | ")
	})
}

func poolStatus(t *testing.T, name string) v1alpha1.IPAddressPoolStatus {
	t.Helper()
	p := &v1alpha1.IPAddressPool{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Name: name}, p))
	return p.Status
}

func waitPool(t *testing.T, name, what string, cond func(v1alpha1.IPAddressPoolStatus) bool) v1alpha1.IPAddressPoolStatus {
	t.Helper()
	var st v1alpha1.IPAddressPoolStatus
	eventually(t, "pool "+name+": "+what, func() (bool, string) {
		st = poolStatus(t, name)
		return cond(st), fmt.Sprintf("%+v", st)
	})
	return st
}

func poolCondition(st v1alpha1.IPAddressPoolStatus, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(st.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func boolPtr(b bool) *bool { return &b }

// update reads obj's latest version, changes it with mutate and writes it, again on a
// conflict: the controller writes statuses and finalizers of the same objects meanwhile.
func update[T client.Object](t *testing.T, obj T, mutate func(T)) {
	t.Helper()
	must(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate(obj)
		return k8s.Update(context.Background(), obj)
	}))
}
