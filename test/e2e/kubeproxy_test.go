package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/test/lab"
)

// The seed behaviours: what the real kube-proxy does with Services in the lab, before any
// speaker exists. LoadBalancer addresses come from the vipcast controller and are routed by
// hand from the router to a node.

func TestClusterIPReachableFromPod(t *testing.T) {
	ns := namespace(t)
	pods := deploy(t, ns, "web", "node-1", "node-2", "node-3")
	svc := service(t, ns, "web", "web", corev1.ServiceTypeClusterIP, nil)
	ips := clusterIPs(svc)
	if len(ips) != 2 {
		t.Fatalf("want an IPv4 and an IPv6 cluster IP, got %v", ips)
	}
	for _, ip := range ips {
		// From the pod on node-1, the Service reaches pods on every node.
		eventually(t, 30*time.Second, fmt.Sprintf("all three pods behind %s from %s", ip, pods[0].Key()), func(ctx context.Context) error {
			seen, err := replies(ctx, pods[0].Netns, ip, 80, 30)
			if err != nil {
				return err
			}
			if len(seen) != 3 {
				return fmt.Errorf("answered by %v", seen)
			}
			return nil
		})
	}
}

func TestNodePortReachableFromClientOnEveryNode(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-1")
	svc := service(t, ns, "web", "web", corev1.ServiceTypeNodePort, nil)
	for _, n := range cluster.Nodes {
		for _, addr := range []netip.Addr{n.IPv4, n.IPv6} {
			eventually(t, 30*time.Second, fmt.Sprintf("NodePort %s:%d from the client", addr, nodePort(svc)), func(ctx context.Context) error {
				r, err := getFrom(ctx, cluster.ClientNetns, addr, nodePort(svc), 2*time.Second)
				if err == nil && r.Pod != ns+"/web-0" {
					err = fmt.Errorf("answered by %s", r.Pod)
				}
				return err
			})
		}
	}
}

func TestLocalTrafficPolicyKeepsClientAddressOnlyOnNodesWithReadyPod(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-2")
	svc := service(t, ns, "web", "web", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	v4, v6 := loadBalancerIPs(t, svc)
	withPod, without := cluster.Node("node-2"), cluster.Node("node-1")
	for _, c := range []struct {
		vip    netip.Addr
		client netip.Addr
	}{{v4, cluster.ClientIPv4}, {v6, cluster.ClientIPv6}} {
		routeByHand(t, c.vip, withPod)
		eventually(t, 30*time.Second, fmt.Sprintf("%s through node-2 keeps the client address", c.vip), func(ctx context.Context) error {
			r, err := getFrom(ctx, cluster.ClientNetns, c.vip, 80, 2*time.Second)
			if err != nil {
				return err
			}
			if got, _ := netip.ParseAddrPort(r.Client); got.Addr() != c.client {
				return fmt.Errorf("the pod saw %s, not the client %s", r.Client, c.client)
			}
			return nil
		})
		// The same address routed to a node without a local pod: kube-proxy drops it.
		routeByHand(t, c.vip, without)
		if _, err := getFrom(t.Context(), cluster.ClientNetns, c.vip, 80, time.Second); err == nil {
			t.Errorf("%s answered through node-1, which has no local pod", c.vip)
		}
	}
	// NodePort follows the same rule.
	if _, err := getFrom(t.Context(), cluster.ClientNetns, without.IPv4, nodePort(svc), time.Second); err == nil {
		t.Error("the NodePort answered on node-1, which has no local pod")
	}
	if _, err := getFrom(t.Context(), cluster.ClientNetns, withPod.IPv4, nodePort(svc), 2*time.Second); err != nil {
		t.Errorf("the NodePort on node-2: %v", err)
	}
}

func TestClusterTrafficPolicyMasqueradesOnOtherNodes(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-2")
	svc := service(t, ns, "web", "web", corev1.ServiceTypeLoadBalancer, nil)
	v4, _ := loadBalancerIPs(t, svc)
	routeByHand(t, v4, cluster.Node("node-1"))
	eventually(t, 30*time.Second, "the VIP through node-1", func(ctx context.Context) error {
		r, err := getFrom(ctx, cluster.ClientNetns, v4, 80, 2*time.Second)
		if err != nil {
			return err
		}
		// Forwarded to node-2's pod, the request carries node-1's address, not the client's.
		if got, _ := netip.ParseAddrPort(r.Client); got.Addr() != cluster.Node("node-1").IPv4 {
			return fmt.Errorf("the pod saw %s, want node-1's %s", r.Client, cluster.Node("node-1").IPv4)
		}
		return nil
	})
}

func TestSessionAffinityClientIPSticks(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-1", "node-2", "node-3")
	plain := service(t, ns, "plain", "web", corev1.ServiceTypeLoadBalancer, nil)
	sticky := service(t, ns, "sticky", "web", corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	})
	plainIP, _ := loadBalancerIPs(t, plain)
	stickyIP, _ := loadBalancerIPs(t, sticky)
	routeByHand(t, plainIP, cluster.Node("node-1"))
	routeByHand(t, stickyIP, cluster.Node("node-1"))
	// Without affinity the requests spread, so one pod answering below means affinity.
	eventually(t, 30*time.Second, "requests without affinity spread over the pods", func(ctx context.Context) error {
		seen, err := replies(ctx, cluster.ClientNetns, plainIP, 80, 30)
		if err == nil && len(seen) < 2 {
			err = fmt.Errorf("answered by %v", seen)
		}
		return err
	})
	eventually(t, 30*time.Second, "the sticky Service answers", func(ctx context.Context) error {
		_, err := getFrom(ctx, cluster.ClientNetns, stickyIP, 80, 2*time.Second)
		return err
	})
	seen, err := replies(t.Context(), cluster.ClientNetns, stickyIP, 80, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 {
		t.Errorf("with sessionAffinity ClientIP, 30 requests were answered by %v", seen)
	}
}

func TestNotReadyPodGetsNoTrafficUnlessPublished(t *testing.T) {
	ns := namespace(t)
	pods := deploy(t, ns, "web", "node-1", "node-2")
	svc := service(t, ns, "web", "web", corev1.ServiceTypeNodePort, nil)
	published := service(t, ns, "published", "web", corev1.ServiceTypeNodePort, func(s *corev1.Service) {
		s.Spec.PublishNotReadyAddresses = true
	})
	if err := cluster.SetPodReady(t.Context(), pods[1], false); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the EndpointSlice controller marks web-1 not ready", func(ctx context.Context) error {
		ready, notReady, err := readyEndpoints(ctx, svc)
		if err == nil && (ready != 1 || notReady != 1) {
			err = fmt.Errorf("%d ready, %d not ready", ready, notReady)
		}
		return err
	})
	node := cluster.Node("node-1")
	eventually(t, 30*time.Second, "kube-proxy sends everything to web-0", func(ctx context.Context) error {
		seen, err := replies(ctx, cluster.ClientNetns, node.IPv4, nodePort(svc), 30)
		if err == nil && (len(seen) != 1 || seen[pods[0].Key()] != 30) {
			err = fmt.Errorf("answered by %v", seen)
		}
		return err
	})
	eventually(t, 30*time.Second, "with publishNotReadyAddresses web-1 answers too", func(ctx context.Context) error {
		seen, err := replies(ctx, cluster.ClientNetns, node.IPv4, nodePort(published), 30)
		if err == nil && seen[pods[1].Key()] == 0 {
			err = fmt.Errorf("answered by %v", seen)
		}
		return err
	})
	// Ready again: back in the first Service.
	if err := cluster.SetPodReady(t.Context(), pods[1], true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "web-1 ready again receives traffic", func(ctx context.Context) error {
		seen, err := replies(ctx, cluster.ClientNetns, node.IPv4, nodePort(svc), 30)
		if err == nil && seen[pods[1].Key()] == 0 {
			err = fmt.Errorf("answered by %v", seen)
		}
		return err
	})
}

func TestExternalNameIgnoredByVipcast(t *testing.T) {
	ns := namespace(t)
	ext := service(t, ns, "ext", "", corev1.ServiceTypeExternalName, func(s *corev1.Service) {
		s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.invalid"}
	})
	// A LoadBalancer Service created after it is served: the controller got past it.
	lb := service(t, ns, "lb", "web", corev1.ServiceTypeLoadBalancer, nil)
	loadBalancerIPs(t, lb)
	var got corev1.Service
	if err := cluster.Kube.Get(t.Context(), client.ObjectKeyFromObject(ext), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.LoadBalancer.Ingress) != 0 || len(got.Status.Conditions) != 0 {
		t.Errorf("vipcast wrote the ExternalName Service's status: %+v", got.Status)
	}
	// Events are sent apart from the status write: wait for the LoadBalancer Service's, which
	// the controller sent after anything it would have said about the ExternalName one.
	var events eventsv1.EventList
	eventually(t, 30*time.Second, "an Event about the LoadBalancer Service (else the check below proves nothing)", func(ctx context.Context) error {
		if err := cluster.Kube.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Name == "lb" {
				return nil
			}
		}
		return fmt.Errorf("%d Events, none about lb", len(events.Items))
	})
	for _, e := range events.Items {
		if e.Regarding.Name == "ext" {
			t.Errorf("an Event about the ExternalName Service: %s %s", e.Reason, e.Note)
		}
	}
}

// Faults: a power cut kills everything on a node and takes its link down; a disconnected
// node keeps running; the probe sees both as a gap, and both heal.
func TestNodeFaultsAndProbe(t *testing.T) {
	ns := namespace(t)
	deploy(t, ns, "web", "node-1", "node-3")
	svc := service(t, ns, "web", "web", corev1.ServiceTypeLoadBalancer, nil)
	v4, _ := loadBalancerIPs(t, svc)
	n3 := cluster.Node("node-3")
	routeByHand(t, v4, n3)
	eventually(t, 30*time.Second, "the VIP through node-3", func(ctx context.Context) error {
		_, err := getFrom(ctx, cluster.ClientNetns, v4, 80, 2*time.Second)
		return err
	})

	probe := lab.StartProbe(cluster.ClientNetns, lab.URL(v4, 80), 10*time.Millisecond, 500*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	if err := n3.Disconnect(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if !n3.Process("kube-proxy").Running() {
		t.Error("kube-proxy stopped when node-3 was only disconnected")
	}
	if err := n3.Reconnect(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	res := probe.Stop()
	gaps := res.Gaps()
	if len(gaps) != 1 || !gaps[0].Recovered() || gaps[0].Length() < time.Second || gaps[0].Length() > 3*time.Second {
		t.Errorf("a 1 s disconnect should show as one gap of 1-3 s; got %+v (%d samples)", gaps, len(res.Samples))
	}
	t.Logf("disconnect for 1 s: %d samples, %d failed, gap %s", len(res.Samples), res.Failed(), res.Longest())

	// A power cut: nothing of the node's survives, and the VIP goes dark.
	if err := n3.PowerOff(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n3.Process("kube-proxy").Running() {
		t.Error("kube-proxy survived the power cut")
	}
	for _, netns := range []string{n3.Netns, cluster.Pod(ns + "/web-1").Netns} {
		if pids, err := lab.Pids(t.Context(), netns); err != nil || len(pids) != 0 {
			t.Errorf("processes left in %s after the power cut: %v %v", netns, pids, err)
		}
	}
	if _, err := getFrom(t.Context(), cluster.ClientNetns, v4, 80, time.Second); err == nil {
		t.Error("the VIP answered through a node without power")
	}
	if err := n3.PowerOn(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the VIP through node-3 after power comes back", func(ctx context.Context) error {
		_, err := getFrom(ctx, cluster.ClientNetns, v4, 80, 2*time.Second)
		return err
	})
	// A graceful stop: SIGTERM, and the program exits by itself within the grace period.
	if err := n3.StopGracefully("kube-proxy", 10*time.Second); errors.Is(err, lab.ErrKilled) {
		t.Error(err)
	}
	if err := n3.Process("kube-proxy").Start(); err != nil {
		t.Fatal(err)
	}
}
