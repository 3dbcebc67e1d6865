package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/app"
	"github.com/vipcast/vipcast/internal/addrset"
)

// The two writers of a Service's status, the allocation (ingress + IPAllocated) and the
// Announced condition, race over 1,000 changes of both inputs: the requested address moves
// on and the speaker's report follows it. Every version of the Service the API server
// stores is watched; in none may either condition go back to an older state or vanish.
func TestStatusWritersNeverOverwriteEachOther(t *testing.T) {
	const rounds = 1000
	startController(t, app.Options{})
	ctx := context.Background()
	ns := newNamespace(t)
	base := netip.MustParseAddr("198.18.64.0")
	addr := func(i int) string {
		a := base
		for range i {
			a = a.Next()
		}
		return a.String()
	}
	index := map[string]int{}
	for i := 0; i <= rounds; i++ {
		index[addr(i)] = i
	}
	createPool(t, "writers", []string{"198.18.64.0/22"})
	node, st := createL2Speaker(t, "writers-node", "writers")
	report := func(i int) {
		t.Helper()
		set := addrset.Encode([]netip.Addr{netip.MustParseAddr(addr(i))})
		p := fmt.Sprintf(`{"status":{"members":[%q],"announced":[{"mode":"L2","interfaces":["e%d"],"count":1,"addresses":%q}]}}`,
			node.Name, i, base64.StdEncoding.EncodeToString(set))
		must(t, k8s.Status().Patch(ctx, st, client.RawPatch(types.MergePatchType, []byte(p))))
	}
	request := func(i int) {
		t.Helper()
		p := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.AnnotationLoadBalancerIPs, addr(i))
		must(t, k8s.Patch(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}, client.RawPatch(types.MergePatchType, []byte(p))))
	}
	report(0)
	createService(t, ns, "web", func(s *corev1.Service) { s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = addr(0) })
	waitAnnounced(t, ns, "web", metav1.ConditionTrue, "Announced")

	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	must(t, err)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w, err := wc.Watch(wctx, &corev1.ServiceList{}, client.InNamespace(ns))
	must(t, err)
	var (
		mu       sync.Mutex
		versions []corev1.ServiceStatus
		done     = make(chan struct{})
	)
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*corev1.Service); ok && s.Name == "web" {
				mu.Lock()
				versions = append(versions, *s.Status.DeepCopy())
				mu.Unlock()
			}
		}
	}()

	for i := 1; i <= rounds; i++ {
		request(i)
		report(i)
	}
	eventually(t, "both conditions on the last round", func() (bool, string) {
		s := getService(t, ns, "web")
		a := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionIPAllocated)
		n := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAnnounced)
		if a == nil || n == nil {
			return false, fmt.Sprintf("%+v", s.Status.Conditions)
		}
		return allocIndex(a, index) == rounds && n.Status == metav1.ConditionTrue && annIndex(n, index) == rounds, a.Message + " | " + n.Message
	})
	w.Stop()
	stopWatch()
	<-done

	mu.Lock()
	defer mu.Unlock()
	lastA, lastN := -1, -1
	for v, st := range versions {
		a := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionIPAllocated)
		n := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionAnnounced)
		if a == nil || n == nil {
			t.Fatalf("version %d of %d lost a condition: %+v", v, len(versions), st.Conditions)
		}
		ai, ni := allocIndex(a, index), annIndex(n, index)
		if ai < 0 || ni < 0 {
			t.Fatalf("version %d: cannot read the round from %q / %q", v, a.Message, n.Message)
		}
		if ai < lastA {
			t.Fatalf("version %d: IPAllocated went back from round %d to %d: %q", v, lastA, ai, a.Message)
		}
		if ni < lastN {
			t.Fatalf("version %d: Announced went back from round %d to %d: %q", v, lastN, ni, n.Message)
		}
		lastA, lastN = ai, ni
	}
	t.Logf("%d rounds: %d versions of the Service's status watched, none lost or reverted a condition", rounds, len(versions))
	if len(versions) < rounds/10 {
		t.Errorf("only %d versions watched: the writers hardly raced", len(versions))
	}
}

var (
	onIface = regexp.MustCompile(` on e(\d+)$`)
	anAddr  = regexp.MustCompile(`198\.18\.\d+\.\d+`)
)

// allocIndex is the round an IPAllocated condition speaks of (the address it names).
func allocIndex(c *metav1.Condition, index map[string]int) int {
	if i, ok := index[anAddr.FindString(c.Message)]; ok {
		return i
	}
	return -1
}

// annIndex is the round an Announced condition speaks of: the interface the speaker
// reported when it is True, the address it waits for otherwise.
func annIndex(c *metav1.Condition, index map[string]int) int {
	if c.Status == metav1.ConditionTrue {
		if m := onIface.FindStringSubmatch(c.Message); m != nil {
			i, _ := strconv.Atoi(m[1])
			return i
		}
		return -1
	}
	return allocIndex(c, index)
}
