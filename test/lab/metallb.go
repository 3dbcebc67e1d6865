package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MetalLBNamespace is where MetalLB runs, as its manifests install it.
const MetalLBNamespace = "metallb-system"

// MetalLB is MetalLB (bin/metallb-controller and bin/metallb-speaker, v0.16.1) running in
// the lab as its manifests would run it: its CRDs, its namespace with a Pod object per
// program (it reads its own Pod; the speakers find each other through theirs), the
// controller in the control plane's namespace, a speaker on every node with memberlist
// (its fast dead-node detection) on, each as an administrator.
type MetalLB struct {
	l          *Lab
	controller *Process
	speakers   []*Process
}

// StartMetalLB installs MetalLB's CRDs from its module (crds: its config/crd/bases) and
// starts its programs. Its configuration comes after, with ApplyYAML.
func (l *Lab) StartMetalLB(ctx context.Context, crds string) (*MetalLB, error) {
	m := &MetalLB{l: l}
	if out, err := l.Kubectl(ctx, "", "apply", "--server-side", "-f", crds); err != nil {
		return nil, fmt.Errorf("MetalLB's CRDs: %w\n%s", err, out)
	}
	if err := l.Kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: MetalLBNamespace}}); err != nil {
		return nil, err
	}
	kc, err := l.KubeconfigFor("metallb", []string{"system:masters"}, true)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.Dir, "metallb")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key := filepath.Join(dir, "secretkey")
	if err := os.WriteFile(key, []byte("lab-memberlist-key-of-metallb"), 0o600); err != nil {
		return nil, err
	}
	labels := map[string]string{"app": "metallb", "component": "speaker"}
	if err := m.pod(ctx, "controller", "", nil, ""); err != nil {
		return nil, err
	}
	env := []string{"KUBECONFIG=" + kc}
	p, err := l.Run("metallb/controller", l.ns("cp"), env, l.Bin("metallb-controller"),
		"--namespace="+MetalLBNamespace, "--pod-name=controller", "--webhook-mode=disabled", "--disable-cert-rotation", "--log-level=info")
	if err != nil {
		return nil, err
	}
	m.controller = p
	for _, n := range l.Nodes {
		ip := n.IPv4.String()
		if err := m.pod(ctx, "speaker-"+n.Name, n.Name, labels, ip); err != nil {
			return nil, err
		}
		// Restarted when it exits by itself, as by its DaemonSet: after a power cut it starts
		// before the node's link is back and exits when it cannot reach the API server.
		p, err := n.start(&Process{Name: n.Name + "/metallb-speaker", Netns: n.Netns, Env: append(env, "METALLB_ML_SECRET_KEY_PATH="+dir), Restart: true,
			Argv: []string{l.Bin("metallb-speaker"), "--namespace=" + MetalLBNamespace, "--pod-name=speaker-" + n.Name, "--node-name=" + n.Name,
				"--ml-bindaddr=" + ip, "--ml-labels=app=metallb,component=speaker", "--log-level=info",
				"--port=17472", "--health-probe-port=17473"}})
		if err != nil {
			return nil, err
		}
		m.speakers = append(m.speakers, p)
	}
	return m, nil
}

// pod creates the Pod object a MetalLB program reads, with the node's address as its IP
// (host network).
func (m *MetalLB) pod(ctx context.Context, name, node string, labels map[string]string, ip string) error {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: MetalLBNamespace, Name: name, Labels: labels}, Spec: corev1.PodSpec{NodeName: node,
		HostNetwork: ip != "", Containers: []corev1.Container{{Name: "metallb", Image: "quay.io/metallb/placeholder:v0.16.1"}}}}
	if err := m.l.Kube.Create(ctx, p); err != nil {
		return err
	}
	if ip == "" {
		return nil
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, HostIP: ip,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}}
	return m.l.Kube.Status().Update(ctx, p)
}

// ApplyYAML applies MetalLB objects (its configuration) with kubectl.
func (m *MetalLB) ApplyYAML(ctx context.Context, doc string) error {
	if out, err := m.l.Kubectl(ctx, doc, "apply", "-f", "-"); err != nil {
		return fmt.Errorf("kubectl apply: %w\n%s", err, out)
	}
	return nil
}

// Stop stops MetalLB's programs all at once, as deleting its Deployment and DaemonSet does
// (SIGTERM, then SIGKILL after 10 s), and waits for all of them.
func (m *MetalLB) Stop() error {
	rest, _ := m.Uninstall()
	return rest()
}

// Uninstall stops MetalLB's programs all at once, as Stop does, and returns when the
// speakers have exited (their pods are gone when an uninstall that does not wait returns and
// its user goes on), with their errors. The controller (which takes its time over SIGTERM)
// stops in the background: rest waits for it and returns every program's error.
func (m *MetalLB) Uninstall() (rest func() error, err error) {
	errs := make([]error, len(m.speakers)+1)
	var speakers sync.WaitGroup
	for i, p := range m.speakers {
		speakers.Go(func() { errs[i] = p.Stop(10 * time.Second) })
	}
	controller := make(chan struct{})
	go func() {
		defer close(controller)
		errs[len(m.speakers)] = m.controller.Stop(10 * time.Second)
	}()
	speakers.Wait()
	return func() error { <-controller; return errors.Join(errs...) }, errors.Join(errs[:len(m.speakers)]...)
}

// MetalLBCRDs is the directory of MetalLB's CRDs in its Go module (a dependency of this
// one, so in the module cache once the module is built).
func MetalLBCRDs(ctx context.Context) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "go.universe.tf/metallb")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("finding MetalLB's module: %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "bases"), nil
}

// Kubectl runs bin/kubectl as the lab's administrator, with stdin when it is not empty.
func (l *Lab) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, l.Bin("kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+l.Kubeconfig)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
