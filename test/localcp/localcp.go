// Package localcp starts a real control plane (etcd and kube-apiserver from bin/) on
// loopback, with vipcast's CRDs installed, for the demo and the benchmarks.
package localcp

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControlPlane is a running etcd + kube-apiserver.
type ControlPlane struct {
	env *envtest.Environment
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Kubeconfig is a file holding the same credentials, for kubectl and the controller.
	Kubeconfig string
	dir        string
}

// DefaultServiceCIDRs are the Service cluster ranges: documentation blocks, never routed.
const DefaultServiceCIDRs = "198.18.240.0/20,2001:db8:ffff::/112"

// Start runs etcd and kube-apiserver from root/bin and installs the CRDs of root/config/crd.
func Start(root string) (*ControlPlane, error) { return StartWith(root, DefaultServiceCIDRs) }

// StartWith is Start with the API server's Service cluster IP ranges.
func StartWith(root, serviceCIDRs string) (*ControlPlane, error) {
	env := &envtest.Environment{
		BinaryAssetsDirectory: filepath.Join(root, "bin"),
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd")},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceCIDRs)
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s/bin (make tools-test builds them): %w", root, err)
	}
	cp := &ControlPlane{env: env, Config: cfg}
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "vipcast-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		cp.Stop()
		return nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		cp.Stop()
		return nil, err
	}
	if cp.dir, err = os.MkdirTemp("", "vipcast-cp-"); err != nil {
		cp.Stop()
		return nil, err
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kc, 0o600); err != nil {
		cp.Stop()
		return nil, err
	}
	return cp, nil
}

// Stop stops the API server and etcd and removes their files.
func (cp *ControlPlane) Stop() {
	_ = cp.env.Stop()
	if cp.dir != "" {
		_ = os.RemoveAll(cp.dir)
	}
}
