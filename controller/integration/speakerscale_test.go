package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/app"
	"github.com/vipcast/vipcast/internal/addrset"
)

// A node announcing 50,000 addresses over BGP (every node does, with BGP) writes its
// SpeakerStatus through the status subresource in well under etcd's 1.5 MiB: sequential
// IPv4 and, the worst case, random IPv6 in a /64. What the API server stores reads back
// the same, and the controller finds a Service's address among them.
func TestSpeakerStatusAt50000Addresses(t *testing.T) {
	const n = 50000
	startController(t, app.Options{})
	ctx := context.Background()
	ns := newNamespace(t)
	createPool(t, "scale-v4", []string{"100.64.0.0/16"})
	createPool(t, "scale-v6", []string{"2001:db8:5ca1:e::/64"})
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "scale-node"}}
	must(t, k8s.Create(ctx, node))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), node) })
	st := &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: node.Name}}
	must(t, k8s.Create(ctx, st))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), st) })

	sequential := make([]netip.Addr, 0, n)
	for a := netip.MustParseAddr("100.64.0.0"); len(sequential) < n; a = a.Next() {
		sequential = append(sequential, a)
	}
	rnd := rand.New(rand.NewPCG(5, 0xca1e))
	random6 := make([]netip.Addr, 0, n)
	prefix := netip.MustParseAddr("2001:db8:5ca1:e::").As16()
	for range n {
		b := prefix
		for i := 8; i < 16; i++ {
			b[i] = byte(rnd.Uint32())
		}
		random6 = append(random6, netip.AddrFrom16(b))
	}
	slices.SortFunc(random6, netip.Addr.Compare) // as decoded
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		svc   netip.Addr // an address of the set a Service asks for
	}{
		{"sequential IPv4", sequential, sequential[n/2+7]},
		{"random IPv6 in a /64", random6, random6[n/3]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := announcedSet(v1alpha1.ModeBGP, nil, []string{"tor1", "tor2"}, tc.addrs...)
			st.Status = v1alpha1.SpeakerReport{Members: []string{node.Name}, AnnouncedCount: n, Announced: []v1alpha1.AnnouncedSet{set},
				Sessions: []v1alpha1.BGPSessionStatus{{Peer: "tor1", Address: "192.0.2.1", State: "Established", Advertised: n}, {Peer: "tor2", Address: "192.0.2.2", State: "Established", Advertised: n}}}
			body, err := json.Marshal(st)
			must(t, err)
			t.Logf("%d addresses: a SpeakerStatus of %d bytes (%.1f KiB), its set %d bytes encoded", n, len(body), float64(len(body))/1024, len(set.Addresses))
			if len(body) >= 512<<10 {
				t.Errorf("the SpeakerStatus is %d bytes, not under 512 KiB", len(body))
			}
			start := time.Now()
			must(t, k8s.Status().Update(ctx, st))
			t.Logf("written in %s", time.Since(start).Round(time.Millisecond))

			var back v1alpha1.SpeakerStatus
			must(t, k8s.Get(ctx, client.ObjectKeyFromObject(st), &back))
			if len(back.Status.Announced) != 1 || !bytes.Equal(back.Status.Announced[0].Addresses, set.Addresses) || back.Status.Announced[0].Count != n ||
				!slices.Equal(back.Status.Announced[0].Peers, set.Peers) || back.Status.AnnouncedCount != n {
				t.Fatalf("read back %d sets, count %d, announced %d: not what was written", len(back.Status.Announced), back.Status.Announced[0].Count, back.Status.AnnouncedCount)
			}
			got, err := addrset.Decode(back.Status.Announced[0].Addresses)
			must(t, err)
			if !slices.Equal(got, tc.addrs) {
				t.Errorf("decoded %d addresses, not the %d written", len(got), len(tc.addrs))
			}

			name := fmt.Sprintf("scale-%d", tc.svc.BitLen())
			createService(t, ns, name, func(s *corev1.Service) {
				s.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = tc.svc.String()
				if tc.svc.Is6() {
					s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
				}
			})
			c := waitAnnounced(t, ns, name, metav1.ConditionTrue, "Announced")
			if c.Message != "BGP from scale-node to 2 peers" {
				t.Errorf("message %q", c.Message)
			}
			t.Logf("the Service holding %s is Announced %s after the write", tc.svc, time.Since(start).Round(time.Millisecond))
		})
	}
}

// One address shared by 100 Services (one sharing key, a port each): the report does not
// name Services, so nothing limits how many share, and the controller finds all of them by
// the address, when it is announced and when it is no longer.
func TestAnnouncedSharedBy100Services(t *testing.T) {
	const services = 100
	startController(t, app.Options{})
	ctx := context.Background()
	ns := newNamespace(t)
	createPool(t, "shared100", []string{"198.51.100.77/32"})
	for i := range services {
		createService(t, ns, fmt.Sprintf("web-%d", i), func(s *corev1.Service) {
			s.Annotations[v1alpha1.AnnotationAllowSharedIP] = "web"
			s.Spec.Ports[0].Port = int32(1000 + i)
		})
	}
	ip := netip.MustParseAddr("198.51.100.77")
	allServices := func(status metav1.ConditionStatus, reason string) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d Services holding %s Announced %s/%s", services, ip, status, reason), func() (bool, string) {
			var list corev1.ServiceList
			if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return false, err.Error()
			}
			done := 0
			last := ""
			for _, s := range list.Items {
				c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionAnnounced)
				switch {
				case !slices.Equal(ingressIPs(&s), []string{ip.String()}):
					last = s.Name + " holds " + fmt.Sprint(ingressIPs(&s))
				case c == nil:
					last = s.Name + ": no Announced condition"
				case c.Status != status || c.Reason != reason:
					last = s.Name + ": " + c.Reason + ": " + c.Message
				default:
					done++
				}
			}
			return done == services, fmt.Sprintf("%d of %d; %s", done, len(list.Items), last)
		})
	}
	allServices(metav1.ConditionFalse, "NoAdvertisement")

	node, st := createL2Speaker(t, "shared100-node", "shared100")
	st.Status = v1alpha1.SpeakerReport{Members: []string{node.Name}, AnnouncedCount: 1, Announced: []v1alpha1.AnnouncedSet{
		announcedSet(v1alpha1.ModeL2, []v1alpha1.InterfaceName{"eth0"}, nil, ip)}}
	must(t, k8s.Status().Update(ctx, st))
	allServices(metav1.ConditionTrue, "Announced")

	st.Status.Announced, st.Status.AnnouncedCount = nil, 0
	must(t, k8s.Status().Update(ctx, st))
	allServices(metav1.ConditionFalse, "Pending")
}
