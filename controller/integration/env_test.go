package integration

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/app"
)

var (
	cfg    *rest.Config
	k8s    client.Client
	scheme = k8sruntime.NewScheme()
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(0)
	}
	logf.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapLevel())))
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	env := &envtest.Environment{
		BinaryAssetsDirectory: filepath.Join(repoRoot(), "bin"),
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot(), "config", "crd")},
		ErrorIfCRDPathMissing: true,
	}
	// Dual-stack Service ranges from the documentation blocks; nothing routes to them.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "198.18.240.0/20,2001:db8:ffff::/112")
	var err error
	if cfg, err = env.Start(); err != nil {
		panic("starting the control plane from bin/ (run make tools): " + err.Error())
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		panic(err)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func zapLevel() zapcore.Level {
	if os.Getenv("VIPCAST_TEST_LOG") != "" {
		return -1
	}
	return 2
}

// startController runs a controller like the binary does, until the test ends or stop is
// called.
func startController(t *testing.T, o app.Options) (stop func()) {
	t.Helper()
	done, cancel := runController(t, o)
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("controller: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("controller did not stop")
		}
	}
	t.Cleanup(stop)
	return stop
}

// runController runs a controller like the binary does and returns what it returns; the
// caller cancels and waits.
func runController(t *testing.T, o app.Options) (done <-chan error, cancel func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if o.MetricsAddr == "" {
		o.MetricsAddr = "0"
	}
	if o.ProbeAddr == "" {
		o.ProbeAddr = "0"
	}
	o.SkipNameValidation = true
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.QPS == 0 {
		o.QPS, o.Burst = 500, 1000
	}
	ch := make(chan error, 1)
	go func() { ch <- app.Run(ctx, cfg, o) }()
	return ch, cancel
}
