package service

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/internal/iprange"
)

func TestParseRequestedIPs(t *testing.T) {
	cases := []struct {
		name    string
		ann     string
		has     bool
		spec    string
		want    []string
		wantErr string
	}{
		{name: "none", want: nil},
		{name: "spec only", spec: "192.0.2.1", want: []string{"192.0.2.1"}},
		{name: "annotation wins over spec", ann: "192.0.2.2", has: true, spec: "192.0.2.1", want: []string{"192.0.2.2"}},
		{name: "dual stack", ann: " 192.0.2.2 , 2001:db8::2", has: true, want: []string{"192.0.2.2", "2001:db8::2"}},
		{name: "mapped v4 is v4", ann: "::ffff:192.0.2.3", has: true, want: []string{"192.0.2.3"}},
		{name: "two of one family", ann: "192.0.2.2,192.0.2.3", has: true, wantErr: "at most one address per family"},
		{name: "garbage", ann: "192.0.2.300", has: true, wantErr: "is not an IP address"},
		{name: "zone", ann: "fe80::1%eth0", has: true, wantErr: "is not an IP address"},
		{name: "empty annotation", ann: " , ", has: true, wantErr: "empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRequestedIPs(tc.ann, tc.has, tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, ip := range got {
				s = append(s, ip.String())
			}
			if !slices.Equal(s, tc.want) {
				t.Fatalf("got %v, want %v", s, tc.want)
			}
		})
	}
}

func FuzzParseRequestedIPs(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.1,2001:db8::1", "", ",", "::ffff:1.2.3.4", "1.2.3.4%x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ips, err := ParseRequestedIPs(s, true, "")
		if err != nil {
			return
		}
		if len(ips) == 0 || len(ips) > 2 {
			t.Fatalf("%q gave %d addresses", s, len(ips))
		}
		if len(ips) == 2 && ips[0].Is4() == ips[1].Is4() {
			t.Fatalf("%q gave two addresses of one family", s)
		}
	})
}

func TestHandles(t *testing.T) {
	class := "vipcast.io/lb"
	other := "example.com/x"
	cases := []struct {
		name    string
		typ     corev1.ServiceType
		svcCls  *string
		handled string
		want    bool
	}{
		{"lb no class", corev1.ServiceTypeLoadBalancer, nil, "", true},
		{"lb other class", corev1.ServiceTypeLoadBalancer, &other, "", false},
		{"lb our class, flag set", corev1.ServiceTypeLoadBalancer, &class, class, true},
		{"lb no class, flag set", corev1.ServiceTypeLoadBalancer, nil, class, false},
		{"clusterip", corev1.ServiceTypeClusterIP, nil, "", false},
		{"externalname", corev1.ServiceTypeExternalName, nil, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &corev1.Service{Spec: corev1.ServiceSpec{Type: tc.typ, LoadBalancerClass: tc.svcCls}}
			if got := Handles(s, tc.handled); got != tc.want {
				t.Fatalf("Handles = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBuildRequest(t *testing.T) {
	prefer := corev1.IPFamilyPolicyPreferDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"a": "b"}, Annotations: map[string]string{
			v1alpha1.AnnotationAddressPool: " gold ", v1alpha1.AnnotationAllowSharedIP: "k",
		}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}, IPFamilyPolicy: &prefer,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal, Selector: map[string]string{"app": "web", "tier": "fe"},
			Ports: []corev1.ServicePort{{Port: 80}, {Protocol: corev1.ProtocolUDP, Port: 53}},
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "192.0.2.9"}, {Hostname: "x"}}}},
	}
	req, err := BuildRequest(svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if req.Key != "ns/web" || req.Pool != "gold" || req.SharingKey != "k" || !req.Local || req.Selector != "app=web,tier=fe" {
		t.Errorf("request %+v", req)
	}
	if !slices.Equal(req.Families, []iprange.Family{iprange.IPv6, iprange.IPv4}) || req.Policy != allocator.PreferDualStack {
		t.Errorf("families %v policy %v", req.Families, req.Policy)
	}
	if !slices.Equal(req.Ports, []allocator.Port{{Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 53}}) {
		t.Errorf("ports %v", req.Ports)
	}
	if !slices.Equal(req.Current, []netip.Addr{netip.MustParseAddr("192.0.2.9")}) {
		t.Errorf("current %v", req.Current)
	}
	svc.Annotations[v1alpha1.AnnotationLoadBalancerIPs] = "nope"
	if _, err := BuildRequest(svc, nil); err == nil {
		t.Error("a malformed annotation gave no error")
	}
}

func TestDesiredStatus(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}}}
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	cases := []struct {
		name       string
		o          Outcome
		wantIPs    []string
		wantStatus metav1.ConditionStatus
		wantReason string
		wantMsg    string
	}{
		{"allocated, family order", Outcome{IPs: []netip.Addr{v4, v6}, Pool: "p"}, []string{"2001:db8::1", "192.0.2.1"}, metav1.ConditionTrue, ReasonAllocated, "2001:db8::1, 192.0.2.1 from IPAddressPool p"},
		{"outside pool", Outcome{IPs: []netip.Addr{v4}}, []string{"192.0.2.1"}, metav1.ConditionTrue, ReasonOutsidePool, "no IPAddressPool hands it out"},
		{"failed, keeps", Outcome{IPs: []netip.Addr{v4}, Err: &allocator.Error{Reason: allocator.ReasonRequestedIPUnavailable, Message: "x in use"}}, []string{"192.0.2.1"}, metav1.ConditionFalse, allocator.ReasonRequestedIPUnavailable, "x in use (keeps 192.0.2.1)"},
		{"failed, nothing", Outcome{Err: &allocator.Error{Reason: allocator.ReasonPoolExhausted, Message: "full"}}, nil, metav1.ConditionFalse, allocator.ReasonPoolExhausted, "full"},
		{"other error", Outcome{Err: errors.New("bad")}, nil, metav1.ConditionFalse, allocator.ReasonInvalidAnnotation, "bad"},
		{"kept, pool no longer admits", Outcome{IPs: []netip.Addr{v4}, Pool: "p", NotAdmitted: true}, []string{"192.0.2.1"}, metav1.ConditionTrue, allocator.ReasonNotAllowedByPool, "192.0.2.1 from IPAddressPool p kept, though the pool's serviceAllocation no longer admits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := DesiredStatus(svc, tc.o)
			var ips []string
			for _, in := range st.LoadBalancer.Ingress {
				ips = append(ips, in.IP)
				if in.IPMode == nil || *in.IPMode != corev1.LoadBalancerIPModeVIP {
					t.Errorf("ipMode %v", in.IPMode)
				}
			}
			if !slices.Equal(ips, tc.wantIPs) {
				t.Errorf("ips %v, want %v", ips, tc.wantIPs)
			}
			c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionIPAllocated)
			if c == nil || c.Status != tc.wantStatus || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantMsg) {
				t.Errorf("condition %+v, want %s/%s containing %q", c, tc.wantStatus, tc.wantReason, tc.wantMsg)
			}
		})
	}
	// Writing the same outcome again changes nothing, not even the transition time.
	first := DesiredStatus(svc, cases[0].o)
	svc.Status = first
	if again := DesiredStatus(svc, cases[0].o); !meta.IsStatusConditionTrue(again.Conditions, v1alpha1.ConditionIPAllocated) ||
		!again.Conditions[0].LastTransitionTime.Equal(&first.Conditions[0].LastTransitionTime) {
		t.Error("a repeated outcome moved the condition")
	}
}

func TestParseNamespaces(t *testing.T) {
	cases := map[string][]string{
		"":              nil,
		" , ":           nil,
		"a":             {"a"},
		" a , b,a,, c ": {"a", "b", "c"},
		"*":             {"*"},
	}
	for in, want := range cases {
		if got := ParseNamespaces(in); !slices.Equal(got, want) {
			t.Errorf("ParseNamespaces(%q) = %q, want %q", in, got, want)
		}
	}
}

// MetalLB's annotations are read when vipcast.io's are absent: vipcast.io first, then
// metallb.io, then metallb.universe.tf.
func TestMetalLBAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name           string
		ann            map[string]string
		pool, key, ips string
		wantErr        string
	}{
		{name: "legacy forms", ann: map[string]string{v1alpha1.MetalLBLegacyAddressPool: "gold", v1alpha1.MetalLBLegacyAllowSharedIP: "k",
			v1alpha1.MetalLBLegacyLoadBalancerIPs: "192.0.2.7"}, pool: "gold", key: "k", ips: "[192.0.2.7]"},
		{name: "metallb.io forms", ann: map[string]string{v1alpha1.MetalLBAddressPool: "gold", v1alpha1.MetalLBAllowSharedIP: "k",
			v1alpha1.MetalLBLoadBalancerIPs: "192.0.2.7, 2001:db8::7"}, pool: "gold", key: "k", ips: "[192.0.2.7 2001:db8::7]"},
		{name: "metallb.io before metallb.universe.tf", ann: map[string]string{v1alpha1.MetalLBAddressPool: "gold", v1alpha1.MetalLBLegacyAddressPool: "lead",
			v1alpha1.MetalLBAllowSharedIP: "k", v1alpha1.MetalLBLegacyAllowSharedIP: "j",
			v1alpha1.MetalLBLoadBalancerIPs: "192.0.2.7", v1alpha1.MetalLBLegacyLoadBalancerIPs: "192.0.2.8"}, pool: "gold", key: "k", ips: "[192.0.2.7]"},
		{name: "vipcast.io before both", ann: map[string]string{v1alpha1.AnnotationAddressPool: "blue", v1alpha1.MetalLBAddressPool: "gold", v1alpha1.MetalLBLegacyAddressPool: "lead",
			v1alpha1.AnnotationAllowSharedIP: "v", v1alpha1.MetalLBAllowSharedIP: "k",
			v1alpha1.AnnotationLoadBalancerIPs: "192.0.2.9", v1alpha1.MetalLBLoadBalancerIPs: "192.0.2.7"}, pool: "blue", key: "v", ips: "[192.0.2.9]"},
		{name: "an empty vipcast.io annotation still wins", ann: map[string]string{v1alpha1.AnnotationAddressPool: "", v1alpha1.MetalLBAddressPool: "gold"}, ips: "[]"},
		{name: "a malformed metallb.io address is named", ann: map[string]string{v1alpha1.MetalLBLoadBalancerIPs: "nope", v1alpha1.MetalLBLegacyLoadBalancerIPs: "192.0.2.7"},
			wantErr: `metallb.io/loadBalancerIPs: "nope" is not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Annotations: tc.ann},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
			req, err := BuildRequest(svc, nil)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Pool != tc.pool || req.SharingKey != tc.key || fmt.Sprint(req.RequestedIPs) != tc.ips {
				t.Errorf("pool %q key %q ips %v; want %q %q %s", req.Pool, req.SharingKey, req.RequestedIPs, tc.pool, tc.key, tc.ips)
			}
		})
	}
}
