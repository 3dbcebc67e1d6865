package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Node is one node namespace: its fabric link (eth0), its Node object, kube-proxy, and the
// programs added with Run (a speaker, say).
type Node struct {
	lab   *Lab
	Index int
	// Name is the Node object's name: node-1, node-2, ...
	Name                 string
	Netns                string
	IPv4, IPv6           netip.Addr
	PodCIDRv4, PodCIDRv6 netip.Prefix
	// MAC is eth0's address on the fabric: 02:00:00:00:00:11 for node-1.
	MAC string

	mu    sync.Mutex
	procs []*Process // started with Run, restarted by PowerOn
	pods  int        // pods placed so far (their addresses)
}

func (l *Lab) startNodes(ctx context.Context) error {
	for _, n := range l.Nodes {
		if err := n.register(ctx); err != nil {
			return err
		}
	}
	if l.cfg.NoKubeProxy {
		return nil
	}
	for _, n := range l.Nodes {
		if _, err := n.Run("kube-proxy", nil, l.Bin("kube-proxy"),
			"--kubeconfig="+l.NodeKubeconfig, "--hostname-override="+n.Name, "--proxy-mode=nftables",
			"--cluster-cidr="+ClusterCIDRV4.String()+","+ClusterCIDRV6.String(),
			"--conntrack-max-per-core=0", "--v=1"); err != nil {
			return err
		}
	}
	return nil
}

// register creates the Node object with its addresses, pod ranges and a Ready condition, as
// a kubelet would.
func (n *Node) register(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
			corev1.LabelHostname: n.Name, corev1.LabelOSStable: "linux",
		}},
		Spec: corev1.NodeSpec{PodCIDR: n.PodCIDRv4.String(), PodCIDRs: []string{n.PodCIDRv4.String(), n.PodCIDRv6.String()}},
	}
	if err := n.lab.Kube.Create(ctx, node); err != nil {
		return fmt.Errorf("creating Node %s: %w", n.Name, err)
	}
	now := metav1.Now()
	node.Status = corev1.NodeStatus{
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.IPv4.String()},
			{Type: corev1.NodeInternalIP, Address: n.IPv6.String()},
			{Type: corev1.NodeHostName, Address: n.Name},
		},
		Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "the lab plays kubelet", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse, Reason: "RouteCreated", Message: "the lab routes pod ranges", LastHeartbeatTime: now, LastTransitionTime: now},
		},
	}
	if err := n.lab.Kube.Status().Update(ctx, node); err != nil {
		return fmt.Errorf("setting the status of Node %s: %w", n.Name, err)
	}
	return nil
}

// Run starts a program in the node's namespace (named "<node>/<name>" in the lab), and
// again whenever the node is powered on after a power cut. This is how a speaker joins:
//
//	n.Run("speaker", nil, speakerBinary, "--node-name="+n.Name, ...)
func (n *Node) Run(name string, env []string, argv ...string) (*Process, error) {
	return n.start(&Process{Name: n.Name + "/" + name, Netns: n.Netns, Env: env, Argv: argv})
}

// start runs a process of the node's (restarted by PowerOn).
func (n *Node) start(p *Process) (*Process, error) {
	p, err := n.lab.start(p)
	if p != nil {
		n.mu.Lock()
		n.procs = slices.DeleteFunc(n.procs, func(o *Process) bool { return o.Name == p.Name })
		n.procs = append(n.procs, p)
		n.mu.Unlock()
	}
	return p, err
}

// Process returns the node's program by name ("kube-proxy"), or nil.
func (n *Node) Process(name string) *Process { return n.lab.Process(n.Name + "/" + name) }

// PowerOff is a power cut: every process in the node's namespace and in its pods'
// namespaces is SIGKILLed and the node's fabric port goes down, with nothing sent first.
// The Node object stays Ready (nobody tells the API server), as after a real power cut.
func (n *Node) PowerOff(ctx context.Context) error {
	if err := n.Disconnect(ctx); err != nil {
		return err
	}
	n.mu.Lock()
	procs := slices.Clone(n.procs)
	n.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	killNetnsProcesses(ctx, n.Netns)
	for _, pod := range n.lab.podsOn(n.Name) {
		pod.proc.Kill()
	}
	return nil
}

// PowerOn brings a node back after PowerOff: its port comes up and its programs and pods
// start again with the same arguments.
func (n *Node) PowerOn(ctx context.Context) error {
	n.mu.Lock()
	procs := slices.Clone(n.procs)
	n.mu.Unlock()
	for _, p := range procs {
		if !p.Running() {
			if err := p.Start(); err != nil {
				return err
			}
		}
	}
	for _, pod := range n.lab.podsOn(n.Name) {
		if !pod.proc.Running() {
			if err := pod.proc.Start(); err != nil {
				return err
			}
		}
	}
	return n.Reconnect(ctx)
}

// Disconnect cuts the node off the fabric (its switch port goes down); its programs keep
// running.
func (n *Node) Disconnect(ctx context.Context) error {
	return ip(ctx, n.lab.ns("fabric"), "link", "set", n.Name, "down")
}

// Reconnect plugs the node back into the fabric.
func (n *Node) Reconnect(ctx context.Context) error {
	return ip(ctx, n.lab.ns("fabric"), "link", "set", n.Name, "up")
}

// StopGracefully sends SIGTERM to one of the node's programs and waits up to grace for it to
// exit (then kills it).
func (n *Node) StopGracefully(name string, grace time.Duration) error {
	p := n.Process(name)
	if p == nil {
		return fmt.Errorf("%s runs no %s", n.Name, name)
	}
	return p.Stop(grace)
}

// Node returns the lab's node by name, or nil.
func (l *Lab) Node(name string) *Node {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// KubeProxyServes tells whether the node's kube-proxy has programmed addr:port/TCP into its
// nftables service map yet. A route or ARP answer for a new address can arrive at a node
// before its kube-proxy has seen the Service's status; until then that node drops or
// bounces the address's traffic.
func (n *Node) KubeProxyServes(ctx context.Context, addr netip.Addr, port uint16) (bool, error) {
	family := map[bool]string{true: "ip", false: "ip6"}[addr.Is4()]
	out, err := Exec(ctx, n.Netns, "nft", "list", "map", family, "kube-proxy", "service-ips")
	if err != nil {
		return false, err
	}
	return strings.Contains(out, fmt.Sprintf("%s . tcp . %d :", addr, port)), nil
}
