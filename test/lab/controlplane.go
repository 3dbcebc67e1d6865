package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// APIPort is the API server's port.
const APIPort = 6443

// kcmControllers are the kube-controller-manager controllers the lab runs: the real
// EndpointSlice controller, and what namespaces and Services need around it. No node
// lifecycle controller: the lab plays kubelet and keeps its Nodes Ready itself.
const kcmControllers = "endpointslice-controller,endpointslice-mirroring-controller,serviceaccount-controller,namespace-controller,garbage-collector-controller"

// startControlPlane runs etcd, kube-apiserver and kube-controller-manager in the control
// plane namespace, installs vipcast's CRDs and RBAC, and writes the kubeconfigs.
func (l *Lab) startControlPlane(ctx context.Context) error {
	var err error
	if l.pki, err = newPKI(filepath.Join(l.Dir, "pki")); err != nil {
		return err
	}
	if err := l.pki.serviceAccountKey(); err != nil {
		return err
	}
	cp := l.ns("cp")
	f4, f6 := l.plan.ControlPlaneFabric()
	_, hostLink := l.plan.HostLink()
	if _, _, err := l.pki.sign("apiserver", "kube-apiserver", nil,
		[]netip.Addr{f4, f6, hostLink.Addr(), netip.MustParseAddr("127.0.0.1"), svcIP(ServiceCIDRV4), svcIP(ServiceCIDRV6)},
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}); err != nil {
		return err
	}
	if err := l.writeKubeconfigs(hostLink.Addr(), f4); err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:2379"
	if _, err := l.Run("cp/etcd", cp, nil, l.Bin("etcd"),
		"--name=lab", "--data-dir="+filepath.Join(l.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=lab=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	pki := l.pki.path
	if _, err := l.Run("cp/kube-apiserver", cp, nil, l.Bin("kube-apiserver"),
		"--etcd-servers="+etcdURL, "--advertise-address="+f4.String(), fmt.Sprintf("--secure-port=%d", APIPort),
		"--tls-cert-file="+pki("apiserver.crt"), "--tls-private-key-file="+pki("apiserver.key"),
		"--client-ca-file="+pki("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki("sa.pub"), "--service-account-signing-key-file="+pki("sa.key"),
		"--service-cluster-ip-range="+ServiceCIDRV4.String()+","+ServiceCIDRV6.String(),
		"--authorization-mode=RBAC", "--allow-privileged=true",
		// Pods are created by the lab, which plays kubelet: no service account token to mount.
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false", "--profiling=false", "--v=1"); err != nil {
		return err
	}
	if err := l.waitAPIServer(ctx); err != nil {
		return err
	}
	if _, err := l.Run("cp/kube-controller-manager", cp, nil, l.Bin("kube-controller-manager"),
		"--kubeconfig="+filepath.Join(l.Dir, "kcm.kubeconfig"), "--leader-elect=false",
		"--controllers="+kcmControllers, "--secure-port=0", "--v=1"); err != nil {
		return err
	}
	if l.cfg.BareAPI {
		return nil
	}
	return l.installAPI(ctx)
}

// svcIP is the first Service address of a range: the `kubernetes` Service.
func svcIP(p netip.Prefix) netip.Addr { return p.Addr().Next() }

func (l *Lab) writeKubeconfigs(hostSide, fabric netip.Addr) error {
	url := func(a netip.Addr) string { return fmt.Sprintf("https://%s", netip.AddrPortFrom(a, APIPort)) }
	var err error
	if l.Kubeconfig, err = l.pki.kubeconfig(filepath.Join(l.Dir, "kubeconfig"), url(hostSide), "vipcast-lab-admin", []string{"system:masters"}); err != nil {
		return err
	}
	// The lab's kube-controller-manager acts for all its controllers under one identity.
	if _, err = l.pki.kubeconfig(filepath.Join(l.Dir, "kcm.kubeconfig"), url(netip.MustParseAddr("127.0.0.1")),
		"system:kube-controller-manager", []string{"system:masters"}); err != nil {
		return err
	}
	if l.NodeKubeconfig, err = l.pki.kubeconfig(filepath.Join(l.Dir, "kube-proxy.kubeconfig"), url(fabric), "system:kube-proxy", nil); err != nil {
		return err
	}
	if l.Rest, err = restConfig(l.Kubeconfig); err != nil {
		return err
	}
	return nil
}

// KubeconfigFor writes a kubeconfig for user (member of groups) and returns its path. With
// fromNode it reaches the API server over the fabric (for programs in node namespaces),
// otherwise over the host link.
func (l *Lab) KubeconfigFor(user string, groups []string, fromNode bool) (string, error) {
	a, _ := l.plan.ControlPlaneFabric()
	if !fromNode {
		_, cp := l.plan.HostLink()
		a = cp.Addr()
	}
	file := filepath.Join(l.Dir, "kubeconfig-"+strings.ReplaceAll(user, ":", "_"))
	if fromNode {
		file += "-node"
	}
	return l.pki.kubeconfig(file, fmt.Sprintf("https://%s", netip.AddrPortFrom(a, APIPort)), user, groups)
}

func (l *Lab) waitAPIServer(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(l.Rest)
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if !l.Process("cp/kube-apiserver").Running() {
			return false, fmt.Errorf("kube-apiserver exited:\n%s", l.Process("cp/kube-apiserver").Tail(30))
		}
		_, last = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kube-apiserver /readyz: %w\n%s", errors.Join(err, last), l.Process("cp/kube-apiserver").Tail(30))
	}
	l.Kube, err = client.New(l.Rest, client.Options{Scheme: Scheme})
	return err
}

// installAPI installs vipcast's CRDs and binds each ClusterRole the project ships
// (config/rbac/role.yaml for the controller, config/rbac/speaker/role.yaml for the speaker)
// to a user of the same name, so vipcast runs in the lab with exactly the shipped RBAC.
func (l *Lab) installAPI(ctx context.Context) error {
	root := l.cfg.Root
	if _, err := envtest.InstallCRDs(l.Rest, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(root, "config", "crd")}, ErrorIfPathMissing: true,
	}); err != nil {
		return fmt.Errorf("installing CRDs: %w", err)
	}
	for _, file := range []string{"role.yaml", filepath.Join("speaker", "role.yaml")} {
		b, err := os.ReadFile(filepath.Join(root, "config", "rbac", file))
		if err != nil {
			return err
		}
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal(b, &role); err != nil {
			return err
		}
		binding := &rbacv1.ClusterRoleBinding{
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: role.Name}},
		}
		binding.Name = role.Name
		for _, o := range []client.Object{&role, binding} {
			if err := l.Kube.Create(ctx, o); err != nil {
				return fmt.Errorf("creating %s: %w", o.GetName(), err)
			}
		}
	}
	return nil
}

// The identities the lab gives vipcast's programs, bound to the ClusterRoles of the same name.
const (
	ControllerUser = "vipcast-controller"
	SpeakerUser    = "vipcast-speaker"
)

// StartController runs a vipcast controller binary in the control-plane namespace as
// ControllerUser, with leader election on and extra flags appended. Name tells replicas
// apart ("controller-0").
func (l *Lab) StartController(name, binary string, extra ...string) (*Process, error) {
	kc, err := l.pki.kubeconfig(filepath.Join(l.Dir, "controller.kubeconfig"), fmt.Sprintf("https://127.0.0.1:%d", APIPort), ControllerUser, nil)
	if err != nil {
		return nil, err
	}
	args := append([]string{binary, "--kubeconfig=" + kc, "--leader-election-namespace=kube-system",
		"--metrics-bind-address=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0"}, extra...)
	// Restarted when it exits, as by its Deployment: a controller that loses its leader lease
	// (the API server gone too long) exits.
	return l.start(&Process{Name: "cp/" + name, Netns: l.ns("cp"), Argv: args, Restart: true})
}

// SpeakerKey is the gossip key the lab's speakers share (base64 of 32 bytes).
const SpeakerKey = "dmlwY2FzdC1sYWItZ29zc2lwLWtleS0zMi1ieXRlcyE="

// StartSpeakers runs a vipcast speaker binary in every node namespace as SpeakerUser, with
// the lab's gossip key and extra flags appended. PowerOn restarts them.
func (l *Lab) StartSpeakers(binary string, extra ...string) error {
	kc, err := l.KubeconfigFor(SpeakerUser, nil, true)
	if err != nil {
		return err
	}
	key := filepath.Join(l.Dir, "memberlist.key")
	if err := os.WriteFile(key, []byte(SpeakerKey), 0o600); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		args := append([]string{binary, "--node-name=" + n.Name, "--kubeconfig=" + kc, "--memberlist-key-file=" + key,
			"--metrics-bind-address=127.0.0.1:7474", "--health-probe-bind-address=127.0.0.1:7475"}, extra...)
		// Restarted when it exits by itself, as by its DaemonSet.
		if _, err := n.start(&Process{Name: n.Name + "/speaker", Netns: n.Netns, Argv: args, Restart: true}); err != nil {
			return err
		}
	}
	return nil
}
