package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Workload is a Deployment-like spec the lab runs itself, playing kubelet: Pods bound to
// nodes, each an HTTP server in a namespace of its own behind its node.
type Workload struct {
	Namespace string
	// Name prefixes the Pods' names: <name>-0, <name>-1, ...
	Name   string
	Labels map[string]string
	// Nodes places the replicas, one Pod per entry (repeat a node for two Pods on it).
	// Empty: Replicas Pods spread round-robin over every node.
	Nodes    []string
	Replicas int
	// Port the servers listen on (default 8080), on IPv4 and IPv6.
	Port int
}

// Pod is one replica of a Workload.
type Pod struct {
	Namespace, Name, Node string
	Netns                 string
	IPv4, IPv6            netip.Addr
	Port                  int
	proc                  *Process
}

// Key is the Pod's namespace/name, as the servers report it.
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Deploy creates the workload's Pods, starts their servers and marks them Running and Ready.
// It returns the Pods in name order.
func (l *Lab) Deploy(ctx context.Context, w Workload) ([]*Pod, error) {
	if w.Port == 0 {
		w.Port = 8080
	}
	nodes := w.Nodes
	if len(nodes) == 0 {
		for i := range w.Replicas {
			nodes = append(nodes, l.Nodes[i%len(l.Nodes)].Name)
		}
	}
	var pods []*Pod
	for i, nodeName := range nodes {
		pod, err := l.startPod(ctx, w, fmt.Sprintf("%s-%d", w.Name, i), nodeName)
		if err != nil {
			return pods, err
		}
		pods = append(pods, pod)
	}
	return pods, nil
}

func (l *Lab) startPod(ctx context.Context, w Workload, name, nodeName string) (*Pod, error) {
	n := l.Node(nodeName)
	if n == nil {
		return nil, fmt.Errorf("no node %q in the lab", nodeName)
	}
	n.mu.Lock()
	slot := n.pods
	n.pods++
	n.mu.Unlock()
	if slot >= MaxPodsPerNode {
		return nil, fmt.Errorf("node %s has no room for another pod", nodeName)
	}
	pod := &Pod{Namespace: w.Namespace, Name: name, Node: nodeName, Netns: l.ns("pod-" + w.Namespace + "-" + name), Port: w.Port}
	pod.IPv4, pod.IPv6 = l.plan.PodAddrs(n.Index, slot)
	if err := l.plumbPod(ctx, n, pod, "p"+strconv.Itoa(slot)); err != nil {
		return nil, err
	}
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: name, Labels: w.Labels},
		Spec: corev1.PodSpec{
			NodeName: nodeName,
			Containers: []corev1.Container{{Name: "http", Image: "vipcast.io/lab-http",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(w.Port)}}}},
		},
	}
	if err := l.Kube.Create(ctx, obj); err != nil {
		return nil, fmt.Errorf("creating Pod %s: %w", pod.Key(), err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	env := []string{roleEnv + "=" + rolePodServer, podEnv + "=" + pod.Key(), nodeEnv + "=" + nodeName, portEnv + "=" + strconv.Itoa(w.Port)}
	if pod.proc, err = l.Run("pod/"+pod.Key(), pod.Netns, env, self); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.pods[pod.Key()] = pod
	l.mu.Unlock()
	return pod, l.setPodStatus(ctx, pod, true, true)
}

// plumbPod makes the pod's namespace with one routed veth to its node: the pod holds /32 and
// /128 addresses and routes everything through the node's pod gateway.
func (l *Lab) plumbPod(ctx context.Context, n *Node, pod *Pod, dev string) error {
	if err := newNetns(ctx, pod.Netns, false); err != nil {
		return err
	}
	if err := (link{nsA: n.Netns, a: dev, nsB: pod.Netns, b: "eth0"}).create(ctx); err != nil {
		return err
	}
	gw := l.plan.PodGateway(n.Index)
	gw6 := netip.MustParsePrefix("fe80::1/64")
	if err := addrs(ctx, n.Netns, dev, netip.PrefixFrom(gw, 32), gw6); err != nil {
		return err
	}
	if err := ip(ctx, n.Netns, "route", "add", pod.IPv4.String()+"/32", "dev", dev); err != nil {
		return err
	}
	if err := ip(ctx, n.Netns, "-6", "route", "add", pod.IPv6.String()+"/128", "dev", dev); err != nil {
		return err
	}
	if err := addrs(ctx, pod.Netns, "eth0", netip.PrefixFrom(pod.IPv4, 32), netip.PrefixFrom(pod.IPv6, 128)); err != nil {
		return err
	}
	if err := ip(ctx, pod.Netns, "route", "add", gw.String(), "dev", "eth0"); err != nil {
		return err
	}
	if err := ip(ctx, pod.Netns, "route", "add", "default", "via", gw.String(), "dev", "eth0"); err != nil {
		return err
	}
	return ip(ctx, pod.Netns, "-6", "route", "add", "default", "via", gw6.Addr().String(), "dev", "eth0")
}

// setPodStatus writes what a kubelet would: Running with its addresses, and the readiness
// of its one container.
func (l *Lab) setPodStatus(ctx context.Context, pod *Pod, running, ready bool) error {
	n := l.Node(pod.Node)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj := &corev1.Pod{}
		if err := l.Kube.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: pod.Name}, obj); err != nil {
			return err
		}
		now := metav1.Now()
		if obj.Status.StartTime == nil {
			obj.Status.StartTime = &now
		}
		obj.Status.Phase = corev1.PodRunning
		obj.Status.HostIP, obj.Status.PodIP = n.IPv4.String(), pod.IPv4.String()
		obj.Status.HostIPs = []corev1.HostIP{{IP: n.IPv4.String()}, {IP: n.IPv6.String()}}
		obj.Status.PodIPs = []corev1.PodIP{{IP: pod.IPv4.String()}, {IP: pod.IPv6.String()}}
		for _, t := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			status := corev1.ConditionTrue
			if !ready && (t == corev1.ContainersReady || t == corev1.PodReady) {
				status = corev1.ConditionFalse
			}
			setPodCondition(obj, t, status, now)
		}
		cs := corev1.ContainerStatus{Name: "http", Image: "vipcast.io/lab-http", Ready: ready, Started: &running}
		if running {
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		} else {
			cs.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Killed", FinishedAt: now}
		}
		if old := obj.Status.ContainerStatuses; running && len(old) == 1 && old[0].State.Running != nil {
			cs.State.Running = old[0].State.Running // still the same run
		}
		obj.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		return l.Kube.Status().Update(ctx, obj)
	})
}

func setPodCondition(pod *corev1.Pod, t corev1.PodConditionType, s corev1.ConditionStatus, now metav1.Time) {
	for i := range pod.Status.Conditions {
		if c := &pod.Status.Conditions[i]; c.Type == t {
			if c.Status != s {
				c.Status, c.LastTransitionTime = s, now
			}
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: now})
}

// SetPodReady flips the pod's readiness, as a readiness probe would; its server keeps running.
func (l *Lab) SetPodReady(ctx context.Context, pod *Pod, ready bool) error {
	return l.setPodStatus(ctx, pod, true, ready)
}

// KillPod kills the pod's server; its Pod stays, Running with a terminated, not-ready
// container, as a kubelet reports a crash.
func (l *Lab) KillPod(ctx context.Context, pod *Pod) error {
	pod.proc.Kill()
	return l.setPodStatus(ctx, pod, false, false)
}

// DeletePod kills the pod's server, removes its namespace and deletes the Pod object.
func (l *Lab) DeletePod(ctx context.Context, pod *Pod) error {
	pod.proc.Kill()
	l.mu.Lock()
	delete(l.pods, pod.Key())
	delete(l.procs, pod.proc.Name)
	l.mu.Unlock()
	if _, err := run(ctx, "ip", "netns", "del", pod.Netns); err != nil {
		return err
	}
	obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}
	if err := l.Kube.Delete(ctx, obj, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// Pod returns a pod the lab runs, by namespace/name, or nil.
func (l *Lab) Pod(key string) *Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pods[key]
}

// podsOn lists the pods placed on a node.
func (l *Lab) podsOn(node string) []*Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Pod
	for _, p := range l.pods {
		if p.Node == node {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *Pod) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}
