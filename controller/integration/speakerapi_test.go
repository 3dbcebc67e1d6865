package integration

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
)

// The speakers' kinds are validated by the API server from their schemas: what a user writes
// wrong is rejected with a message that says where.
func TestSpeakerKindsValidation(t *testing.T) {
	adv := func(name string, mutate func(*v1alpha1.L2AdvertisementSpec)) *v1alpha1.L2Advertisement {
		a := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
		mutate(&a.Spec)
		return a
	}
	report := func(name string, set v1alpha1.AnnouncedSet) *v1alpha1.SpeakerStatus {
		return &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: v1alpha1.SpeakerReport{Announced: []v1alpha1.AnnouncedSet{set}}}
	}
	addr := netip.MustParseAddr("192.0.2.1")
	session := func(name string, s v1alpha1.BGPSessionStatus) *v1alpha1.SpeakerStatus {
		return &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: v1alpha1.SpeakerReport{Sessions: []v1alpha1.BGPSessionStatus{s}}}
	}
	for _, tc := range []struct {
		name string
		obj  client.Object
		want string // "" = accepted
	}{
		{"empty advertisement selects everything", adv("l2-all", func(*v1alpha1.L2AdvertisementSpec) {}), ""},
		{"full advertisement", adv("l2-full", func(s *v1alpha1.L2AdvertisementSpec) {
			s.IPAddressPools = []string{"web"}
			s.IPAddressPoolSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "edge"}}}
			s.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"edge": "true"}}}
			s.ServiceSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "web"}}}
			s.Interfaces = []v1alpha1.InterfaceName{"eth0", "bond0.100"}
		}), ""},
		{"interface with a slash", adv("l2-slash", func(s *v1alpha1.L2AdvertisementSpec) {
			s.Interfaces = []v1alpha1.InterfaceName{"eth0/1"}
		}), "spec.interfaces[0]"},
		{"interface name too long", adv("l2-long", func(s *v1alpha1.L2AdvertisementSpec) {
			s.Interfaces = []v1alpha1.InterfaceName{"averyveryverylongname"}
		}), "spec.interfaces[0]"},
		{"a pool named twice", adv("l2-dup", func(s *v1alpha1.L2AdvertisementSpec) {
			s.IPAddressPools = []string{"web", "web"}
		}), "spec.ipAddressPools[1]"},
		{"speaker status", report("node-a", announcedSet(v1alpha1.ModeL2, []v1alpha1.InterfaceName{"eth0"}, nil, addr)), ""},
		{"BGP set", report("node-e", announcedSet(v1alpha1.ModeBGP, nil, []string{"tor1", "tor2"}, addr, netip.MustParseAddr("2001:db8::1"))), ""},
		{"L2 node selector In without values", adv("l2-sel-in", func(s *v1alpha1.L2AdvertisementSpec) {
			s.NodeSelectors = []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "edge", Operator: metav1.LabelSelectorOpIn}}}}
		}), "operators In and NotIn need values"},
		{"session with a reason", session("node-c", v1alpha1.BGPSessionStatus{Peer: "tor", Reason: v1alpha1.SessionReasonSecretNotFound, Message: "Secret vipcast-system/bgp not found"}), ""},
		{"session reason not CamelCase", session("node-d", v1alpha1.BGPSessionStatus{Peer: "tor", Reason: "secret not found"}), "status.sessions[0].reason"},
		{"unknown announcement mode", report("node-b", announcedSet("Carrier pigeon", nil, nil, addr)), "status.announced[0].mode"},
		{"an empty set", report("node-f", v1alpha1.AnnouncedSet{Mode: v1alpha1.ModeL2, Addresses: addrset.Encode(nil)}), "status.announced[0].count"},
		{"a set without addresses", report("node-g", v1alpha1.AnnouncedSet{Mode: v1alpha1.ModeL2, Count: 1}), "status.announced[0].addresses"},
	} {
		t.Run(tc.name, func(t *testing.T) { expectValidation(t, tc.obj, tc.want, createWithStatus) })
	}
}

// createWithStatus creates obj and, for a SpeakerStatus, writes its status through the
// status subresource as a speaker does (removing the object when that is rejected).
func createWithStatus(ctx context.Context, obj client.Object) error {
	st, ok := obj.(*v1alpha1.SpeakerStatus)
	if !ok {
		return k8s.Create(ctx, obj)
	}
	report := st.Status
	if err := k8s.Create(ctx, st); err != nil {
		return err
	}
	st.Status = report
	if err := k8s.Status().Update(ctx, st); err != nil {
		_ = k8s.Delete(ctx, st)
		return err
	}
	return nil
}

// expectValidation creates obj (through create) and checks the API server's verdict: accepted
// when want is "" (the object is removed again), else an Invalid error containing want.
func expectValidation(t *testing.T, obj client.Object, want string, create func(context.Context, client.Object) error) {
	t.Helper()
	ctx := context.Background()
	err := create(ctx, obj)
	if want == "" {
		must(t, err)
		must(t, k8s.Delete(ctx, obj))
		return
	}
	if err == nil {
		_ = k8s.Delete(ctx, obj)
		t.Fatal("accepted")
	}
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want an Invalid error about %s", err, want)
	}
}
