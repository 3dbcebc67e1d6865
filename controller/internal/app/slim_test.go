package app

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

func TestSlimKeepsWhatTheControllerReads(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{
		v1alpha1.AnnotationAddressPool: "blue", v1alpha1.AnnotationAllowSharedIP: "k",
		v1alpha1.MetalLBLoadBalancerIPs: "192.0.2.1", v1alpha1.MetalLBLegacyAddressPool: "red", "metallb.io/ip-allocated-from-pool": "red",
		"kubectl.kubernetes.io/last-applied-configuration": `{"big":"json"}`, "example.com/other": "x",
	}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	if _, err := slim(svc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{v1alpha1.AnnotationAddressPool: "blue", v1alpha1.AnnotationAllowSharedIP: "k",
		v1alpha1.MetalLBLoadBalancerIPs: "192.0.2.1", v1alpha1.MetalLBLegacyAddressPool: "red"}
	if !maps.Equal(svc.Annotations, want) || svc.ManagedFields != nil {
		t.Errorf("annotations %v, managed fields %v; want %v and none", svc.Annotations, svc.ManagedFields, want)
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
		Status: corev1.NodeStatus{Images: []corev1.ContainerImage{{Names: []string{"pause"}}}, Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.1"}}}}
	if _, err := slim(n); err != nil {
		t.Fatal(err)
	}
	if n.Annotations != nil || n.Status.Images != nil || len(n.Status.Addresses) != 1 {
		t.Errorf("node after slim: %+v", n)
	}
}
