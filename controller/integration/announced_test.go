package integration

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/app"
	"github.com/vipcast/vipcast/internal/addrset"
)

// The Announced condition tells who announces a Service's address, from the speakers'
// reports, and why nobody does; it never disturbs the IPAllocated condition.
func TestAnnouncedCondition(t *testing.T) {
	startController(t, app.Options{})
	ctx := context.Background()
	ns := newNamespace(t)
	createPool(t, "announced", []string{"198.51.100.64/29"})
	createService(t, ns, "web")
	ip := waitAllocated(t, ns, "web", 1)[0]

	// Nothing selects the address yet.
	c := waitAnnounced(t, ns, "web", metav1.ConditionFalse, "NoAdvertisement")
	if !strings.Contains(c.Message, ip) {
		t.Errorf("message %q does not name %s", c.Message, ip)
	}

	// A node with a speaker that reports the address.
	node, st := createL2Speaker(t, "announced-node", "announced")
	st.Status = v1alpha1.SpeakerReport{Members: []string{node.Name}, AnnouncedCount: 1, Announced: []v1alpha1.AnnouncedSet{
		announcedSet(v1alpha1.ModeL2, []v1alpha1.InterfaceName{"eth0"}, nil, netip.MustParseAddr(ip))}}
	must(t, k8s.Status().Update(ctx, st))
	c = waitAnnounced(t, ns, "web", metav1.ConditionTrue, "Announced")
	if c.Message != "L2 from announced-node on eth0" {
		t.Errorf("message %q", c.Message)
	}

	// The speaker stops announcing (but is alive and selected): the node should, and has not.
	st.Status.Announced, st.Status.AnnouncedCount = nil, 0
	must(t, k8s.Status().Update(ctx, st))
	c = waitAnnounced(t, ns, "web", metav1.ConditionFalse, "Pending")
	if !strings.Contains(c.Message, "announced-node") {
		t.Errorf("message %q does not name the node that should announce", c.Message)
	}
	svc := getService(t, ns, "web")
	if a := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionIPAllocated); a == nil || a.Status != metav1.ConditionTrue {
		t.Errorf("IPAllocated was disturbed: %+v", svc.Status.Conditions)
	}
}

func waitAnnounced(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	eventually(t, "Announced "+string(status)+"/"+reason, func() (bool, string) {
		var svc corev1.Service
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(svc.Status.Conditions, v1alpha1.ConditionAnnounced)
		if c == nil {
			return false, "no Announced condition"
		}
		got = *c
		return c.Status == status && c.Reason == reason, c.Reason + ": " + c.Message
	})
	return got
}

// announcedSet is a SpeakerStatus's set of addrs announced one way.
func announcedSet(mode v1alpha1.AnnouncementMode, ifs []v1alpha1.InterfaceName, peers []string, addrs ...netip.Addr) v1alpha1.AnnouncedSet {
	return v1alpha1.AnnouncedSet{Mode: mode, Interfaces: ifs, Peers: peers, Count: int32(len(addrs)), Addresses: addrset.Encode(addrs)}
}

// createL2Speaker creates a Node, an L2Advertisement of the pool and the node's empty
// SpeakerStatus, for a test that plays the speaker; all go at cleanup.
func createL2Speaker(t *testing.T, nodeName, pool string) (*corev1.Node, *v1alpha1.SpeakerStatus) {
	t.Helper()
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	must(t, k8s.Create(ctx, node))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), node) })
	adv := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: pool}, Spec: v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{pool}}}
	must(t, k8s.Create(ctx, adv))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), adv) })
	st := &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}
	must(t, k8s.Create(ctx, st))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), st) })
	return node, st
}
