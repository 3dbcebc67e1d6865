package benchlab

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/test/lab"
)

// Web is the benchmarks' Service default/web: its address and its pods, one per node.
type Web struct {
	Lab  *lab.Lab
	VIP  netip.Addr
	Pods []*lab.Pod
}

// StartWeb runs bin/vipcast-controller and a bin/vipcast-speaker on every node, creates
// objs (a pool and how to announce it), the Service default/web and a pod per node, and
// waits for the Service's address.
func StartWeb(ctx context.Context, l *lab.Lab, root string, objs ...client.Object) (*Web, error) {
	if _, err := l.StartController("controller", filepath.Join(root, "bin", "vipcast-controller")); err != nil {
		return nil, err
	}
	if err := l.StartSpeakers(filepath.Join(root, "bin", "vipcast-speaker")); err != nil {
		return nil, err
	}
	return web(ctx, l, objs...)
}

// MetalLBL2 is MetalLB's configuration for the benchmarks' layer-2 runs: the same pool as
// vipcast's, announced over L2.
const MetalLBL2 = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: l2
  namespace: metallb-system
spec:
  addresses: [192.0.2.240/28]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2
  namespace: metallb-system
`

// StartWebMetalLB is StartWeb with MetalLB (bin/metallb-*) instead of vipcast, configured
// by config (MetalLB objects in YAML).
func StartWebMetalLB(ctx context.Context, l *lab.Lab, config string) (*Web, *lab.MetalLB, error) {
	crds, err := lab.MetalLBCRDs(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := l.StartMetalLB(ctx, crds)
	if err != nil {
		return nil, nil, err
	}
	if err := m.ApplyYAML(ctx, config); err != nil {
		return nil, m, err
	}
	w, err := web(ctx, l)
	return w, m, err
}

// web creates objs, the Service default/web and a pod per node, and waits for the
// Service's address.
func web(ctx context.Context, l *lab.Lab, objs ...client.Object) (*Web, error) {
	objs = append(objs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"},
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}}})
	for _, o := range objs {
		if err := l.Kube.Create(ctx, o); err != nil {
			return nil, err
		}
	}
	w := &Web{Lab: l}
	var err error
	if w.Pods, err = l.Deploy(ctx, lab.Workload{Namespace: "default", Name: "web", Labels: map[string]string{"app": "web"}, Replicas: len(l.Nodes)}); err != nil {
		return nil, err
	}
	return w, Poll(ctx, 60*time.Second, func(ctx context.Context) error {
		var svc corev1.Service
		if err := l.Kube.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, &svc); err != nil {
			return err
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return errors.New("no EXTERNAL-IP")
		}
		w.VIP = netip.MustParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
		return nil
	})
}

// SetReady marks the pods on a node ready or not (the benchmarks take a failing node's pod
// out of the Service first: dropping a dead node's endpoints is Kubernetes' job).
func (w *Web) SetReady(ctx context.Context, node string, ready bool) error {
	for _, p := range w.Pods {
		if p.Node == node {
			if err := w.Lab.SetPodReady(ctx, p, ready); err != nil {
				return err
			}
		}
	}
	return nil
}

// Poll calls f every 20 ms until it returns nil, for at most timeout; the error says f's last
// complaint.
func Poll(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	return PollEvery(ctx, 20*time.Millisecond, timeout, f)
}

// PollEvery is Poll with another period.
func PollEvery(ctx context.Context, every, timeout time.Duration, f func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, every, timeout, true, func(ctx context.Context) (bool, error) {
		last = f(ctx)
		return last == nil, nil
	})
	if err != nil {
		return errors.Join(err, last)
	}
	return nil
}

// Pct is the p-th percentile of sorted durations.
func Pct(sorted []time.Duration, p int) time.Duration { return sorted[(len(sorted)-1)*p/100] }

// Ms prints a duration rounded to the millisecond.
func Ms(d time.Duration) string { return d.Round(time.Millisecond).String() }
