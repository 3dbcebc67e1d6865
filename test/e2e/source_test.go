package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

// A session over node-1's second NIC, from the address sourceAddress names (not the one the
// kernel would pick), with BFD from that address too: the router's next hop is that address,
// not the node's InternalIP, and the client's traffic flows over that link (both routers).
func TestBGPSourceAddress(t *testing.T) {
	t.Cleanup(func() {
		if err := cluster.Router.Configure(context.Background(), lab.BIRD, lab.RouterOptions{}); err != nil {
			t.Error(err)
		}
	})
	u, err := cluster.AddUplink(t.Context(), cluster.Node("node-1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cluster.RemoveUplink(context.Background(), u); err != nil {
			t.Error(err)
		}
	})
	for i, kind := range []lab.RouterKind{lab.BIRD, lab.FRR} {
		t.Run(string(kind), func(t *testing.T) { testSourceAddress(t, kind, u, i) })
	}
}

func testSourceAddress(t *testing.T, kind lab.RouterKind, u *lab.Uplink, i int) {
	ctx := t.Context()
	if err := cluster.Router.Configure(ctx, kind, lab.RouterOptions{BFD: true}); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("uplink-%s", kind)
	no := false
	objs := []client.Object{
		&v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPAddressPoolSpec{
			Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(fmt.Sprintf("198.18.57.%d/29", 8*i))}, AutoAssign: &no}},
		&v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BGPAdvertisementSpec{
			IPAddressPools: []string{name}, Peers: []string{name}}},
		&v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BGPPeerSpec{
			MyASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: u.Router.String(), SourceAddress: u.NodeAddrs[1].String(),
			HoldTime: &metav1.Duration{Duration: 9 * time.Second}, ConnectTime: &metav1.Duration{Duration: time.Second},
			BFD:           &v1alpha1.BFDSettings{Enabled: true, ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3},
			NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": "node-1"}}}}},
	}
	for _, o := range objs {
		if err := cluster.Kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, o := range objs {
			if err := client.IgnoreNotFound(cluster.Kube.Delete(context.Background(), o)); err != nil {
				t.Error(err)
			}
		}
	})
	ns := namespace(t)
	deploy(t, ns, "web", "node-1")
	_, ips := bgpService(t, ns, "web", name, func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = ptr(corev1.IPFamilyPolicySingleStack)
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	want := []netip.Addr{u.NodeAddrs[1]}
	eventually(t, 30*time.Second, fmt.Sprintf("the router forwards %s to %s", ips[0], u.NodeAddrs[1]), func(ctx context.Context) error {
		got, err := cluster.Router.NextHops(ctx, host(ips[0]))
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("next hops %v", got)
		}
		return err
	})
	// BFD runs from the source address too: the router's BFD session is keyed by it.
	eventually(t, 30*time.Second, "BFD Up on the uplink session", func(ctx context.Context) error {
		for _, s := range speakerStatus(ctx, "node-1").Sessions {
			if s.Peer == name && s.State == "Established" && s.BFD == "Up" {
				return nil
			}
		}
		return fmt.Errorf("sessions %+v", speakerStatus(ctx, "node-1").Sessions)
	})
	kubeProxiesServe(t, ips[0])
	got, err := replies(ctx, cluster.ClientNetns, ips[0], 80, 10)
	if err != nil {
		t.Fatalf("client to %s over node-1's second link: %v", ips[0], err)
	}
	t.Logf("%s: next hop %s (sourceAddress on eth1, not the kernel's %s nor the InternalIP %s); replies %v", kind, u.NodeAddrs[1], u.NodeAddrs[0], u.Node.IPv4, got)
}
