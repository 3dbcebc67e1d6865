package inspect

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
)

func node(name, ip string) corev1.Node {
	return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}}}
}

// speaker is a Ready speaker with eth0 on 192.0.2.0/24, announcing addrs over L2.
func speaker(name string, addrs ...string) v1alpha1.SpeakerStatus {
	s := v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1alpha1.SpeakerReport{
		Interfaces: []v1alpha1.SpeakerInterface{{Name: "eth0", Prefixes: []string{"192.0.2.0/24"}}},
		Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Applied"}}}}
	if len(addrs) > 0 {
		var as []netip.Addr
		for _, a := range addrs {
			as = append(as, netip.MustParseAddr(a))
		}
		s.Status.Announced = []v1alpha1.AnnouncedSet{{Mode: v1alpha1.ModeL2, Interfaces: []v1alpha1.InterfaceName{"eth0"}, Count: int32(len(as)), Addresses: addrset.Encode(as)}}
	}
	return s
}

func lb(name, ip string, conds ...metav1.Condition) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Annotations: map[string]string{}},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": name}},
		Status: corev1.ServiceStatus{Conditions: conds}}
	if ip != "" {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
	}
	return s
}

func pool(name, cidr string, mutate ...func(*v1alpha1.IPAddressPool)) v1alpha1.IPAddressPool {
	p := v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPAddressPoolSpec{Addresses: []v1alpha1.AddressRange{v1alpha1.AddressRange(cidr)}}}
	for _, m := range mutate {
		m(&p)
	}
	return p
}

func allocated(reason, msg string) metav1.Condition {
	st := metav1.ConditionTrue
	if reason != "Allocated" && reason != "OutsidePool" && reason != "NotAllowedByPool" {
		st = metav1.ConditionFalse
	}
	return metav1.Condition{Type: v1alpha1.ConditionIPAllocated, Status: st, Reason: reason, Message: msg}
}

// base is two nodes with Ready speakers, a pool and an L2Advertisement of everything.
func base() *Cluster {
	return &Cluster{
		Nodes:    []corev1.Node{node("node-1", "192.0.2.11"), node("node-2", "192.0.2.12")},
		Speakers: []v1alpha1.SpeakerStatus{speaker("node-1"), speaker("node-2")},
		Pools:    []v1alpha1.IPAddressPool{pool("web", "192.0.2.240/28")},
		L2:       []v1alpha1.L2Advertisement{{ObjectMeta: metav1.ObjectMeta{Name: "all"}}},
	}
}

// Every planner reason, and an owner, in words.
func TestExplainPlannerReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(c *Cluster, s *corev1.Service)
		want   []string
	}{
		{"announced", func(c *Cluster, s *corev1.Service) {}, []string{"announced over L2 (ARP/NDP) by node-", "on eth0"}},
		{"reported too", func(c *Cluster, s *corev1.Service) { c.Speakers[1] = speaker("node-2", "192.0.2.240") },
			[]string{"reported by node-2 (L2 on eth0)"}},
		{"no advertisement", func(c *Cluster, s *corev1.Service) { c.L2 = nil },
			[]string{"not announced over L2: no L2Advertisement or BGPAdvertisement selects", "(NoAdvertisement)", "no speaker reports announcing it"}},
		{"no eligible node", func(c *Cluster, s *corev1.Service) {
			c.L2[0].Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": "node-9"}}}
		}, []string{"no node with a Ready speaker may announce it", "(NoEligibleNode)"}},
		{"no local endpoints", func(c *Cluster, s *corev1.Service) {
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}, []string{"externalTrafficPolicy is Local and no node with a Ready speaker has a ready endpoint", "(NoLocalEndpoints)"}},
		{"no interface", func(c *Cluster, s *corev1.Service) { c.L2[0].Spec.Interfaces = []v1alpha1.InterfaceName{"eth9"} },
			[]string{"none has an interface to answer on", "(NoInterface)"}},
		{"no speaker", func(c *Cluster, s *corev1.Service) { c.Speakers = nil },
			[]string{"(NoEligibleNode)", "no speaker reports Ready"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			s := lb("web", "192.0.2.240", allocated("Allocated", "192.0.2.240 from IPAddressPool web"))
			tc.mutate(c, &s)
			c.Services = []corev1.Service{s}
			e, err := Explain(c, "shop", "web")
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			WriteExplanation(&b, e)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("missing %q in:\n%s", w, b.String())
				}
			}
		})
	}
}

// A Local Service with a ready endpoint on node-2 is announced by node-2.
func TestExplainLocalFollowsEndpoints(t *testing.T) {
	c := base()
	s := lb("web", "192.0.2.240", allocated("Allocated", "x"))
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	c.Services = []corev1.Service{s}
	n2, ready := "node-2", true
	c.Slices = []discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-x", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, NodeName: &n2, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}}}
	e, err := Explain(c, "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Addresses) != 1 || e.Addresses[0].Owner != "node-2" {
		t.Errorf("addresses %+v, want node-2 the owner", e.Addresses)
	}
}

// Every allocator reason carries its advice; the pools are weighed in words.
func TestExplainAllocation(t *testing.T) {
	for reason, advice := range allocationAdvice {
		c := base()
		c.Services = []corev1.Service{lb("web", "", allocated(reason, "the message"))}
		e, err := Explain(c, "shop", "web")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(e.Allocation, reason+": the message — "+advice) {
			t.Errorf("%s: allocation %q", reason, e.Allocation)
		}
	}
	no := false
	c := base()
	c.Pools = []v1alpha1.IPAddressPool{
		pool("a-holds", "192.0.2.240/29"),
		pool("b-manual", "192.0.2.248/30", func(p *v1alpha1.IPAddressPool) { p.Spec.AutoAssign = &no }),
		pool("c-team", "192.0.2.252/31", func(p *v1alpha1.IPAddressPool) {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: []string{"team"}}
		}),
		pool("d-going", "192.0.2.254/32", func(p *v1alpha1.IPAddressPool) { p.DeletionTimestamp = &metav1.Time{} }),
		pool("e-free", "198.51.100.0/30"),
		pool("f-v6", "2001:db8::/126"),
	}
	c.Services = []corev1.Service{lb("web", "192.0.2.241", allocated("Allocated", "192.0.2.241 from IPAddressPool a-holds"))}
	e, err := Explain(c, "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range e.Pools {
		got[p.Pool] = p.Verdict
	}
	for name, want := range map[string]string{
		"a-holds":  "holds 192.0.2.241 for it",
		"b-manual": "autoAssign is false",
		"c-team":   "refused: its serviceAllocation admits namespaces team",
		"d-going":  "being deleted",
		"e-free":   "could serve it (IPv4)",
		"f-v6":     "could serve it (IPv6)",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("pool %s: %q, want %q", name, got[name], want)
		}
	}
	// Naming a pool: the others are not considered, a missing one is said.
	c.Services[0].Annotations[v1alpha1.MetalLBAddressPool] = "nope"
	c.Services[0].Status.LoadBalancer.Ingress = nil
	e, err = Explain(c, "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	if e.Pools[0].Pool != "nope" || !strings.Contains(e.Pools[0].Verdict, "no IPAddressPool of that name") || !strings.Contains(e.Pools[1].Verdict, "the Service names pool nope") {
		t.Errorf("pools %+v", e.Pools)
	}
}

func TestExplainNotHandled(t *testing.T) {
	other := "example.com/lb"
	for _, tc := range []struct {
		name, class, want string
		mutate            func(*corev1.Service)
	}{
		{"cluster IP", "", "type ClusterIP", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }},
		{"another class", "", "belongs to another load balancer", func(s *corev1.Service) { s.Spec.LoadBalancerClass = &other }},
		{"no class when one is handled", "vipcast.io/lb", "handles class vipcast.io/lb only", func(s *corev1.Service) {}},
	} {
		c := base()
		c.LBClass = tc.class
		s := lb("web", "")
		tc.mutate(&s)
		c.Services = []corev1.Service{s}
		e, err := Explain(c, "shop", "web")
		if err != nil {
			t.Fatal(err)
		}
		if e.Handled || !strings.Contains(e.Why, tc.want) {
			t.Errorf("%s: %+v", tc.name, e)
		}
	}
	if _, err := Explain(base(), "shop", "missing"); err == nil {
		t.Error("a missing Service explained")
	}
}

func TestStatus(t *testing.T) {
	c := base()
	c.Pools[0].Status = v1alpha1.IPAddressPoolStatus{AssignedIPv4: 1, AvailableIPv4: 15, Conditions: []metav1.Condition{{Type: "Ready", Status: "True", Reason: "Valid"}}}
	c.Speakers[1].Status.Conditions[0] = metav1.Condition{Type: "Ready", Status: "False", Reason: "Joining"}
	c.Speakers[0].Status.Conflicts = []v1alpha1.AddressConflict{{IP: "192.0.2.240", MAC: "02:00:00:00:00:ee"}}
	announced := metav1.Condition{Type: v1alpha1.ConditionAnnounced, Status: "True", Reason: "Announced"}
	c.Services = []corev1.Service{
		lb("ok", "192.0.2.240", allocated("Allocated", "x"), announced),
		lb("full", "", allocated("PoolExhausted", "every pool is full")),
		lb("dark", "192.0.2.241", allocated("Allocated", "x"), metav1.Condition{Type: v1alpha1.ConditionAnnounced, Status: "False", Reason: "NoLocalEndpoints", Message: "m"}),
		lb("new", ""),
	}
	st := Summarize(c)
	var b bytes.Buffer
	WriteStatus(&b, st)
	for _, want := range []string{"web", "15", "False (Joining)", "192.0.2.240 also claimed by 02:00:00:00:00:ee",
		"4 LoadBalancer Services, 1 allocated and announced", "shop/full: not allocated: PoolExhausted: every pool is full",
		"shop/dark: not announced: NoLocalEndpoints: m", "shop/new: not handled by the controller yet"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
	if st.Healthy() {
		t.Error("healthy with a Service pending")
	}
	c.Services = c.Services[:1]
	c.Speakers[1] = speaker("node-2")
	c.Speakers[0].Status.Conflicts = nil
	if st := Summarize(c); !st.Healthy() {
		t.Errorf("not healthy: %+v", st)
	}
}
