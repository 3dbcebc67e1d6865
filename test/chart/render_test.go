package chart

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	runtimeconv "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// root is the repository root (two levels above this file).
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var chartDir = filepath.Join(root(), "charts", "vipcast")

// helm runs bin/helm, Helm 4 (make tools-test builds it), and returns its standard output.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return helmWith(t, "helm", args...)
}

// helmWith runs one of the Helm binaries in bin/: helm (4) or helm3.
func helmWith(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(root(), "bin", name)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/helm is missing (make tools-test builds it): %v", err)
	}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), &helmFailed{args: args, stderr: errb.String(), err: err}
	}
	return out.String(), nil
}

// helmFailed is a failed helm run; stderr is what helm said, apart from the command line.
type helmFailed struct {
	args   []string
	stderr string
	err    error
}

func (e *helmFailed) Error() string {
	return fmt.Sprintf("helm %s: %v\n%s", strings.Join(e.args, " "), e.err, e.stderr)
}

func (e *helmFailed) Unwrap() error { return e.err }

// schemaError tells whether a run failed on the values schema at path (a JSON pointer).
func schemaError(err error, path string) bool {
	var hf *helmFailed
	return errors.As(err, &hf) && strings.Contains(hf.stderr, "values don't meet the specifications of the schema") &&
		strings.Contains(hf.stderr, "- at '"+path+"'")
}

// manifest holds the objects of one rendering.
type manifest []*unstructured.Unstructured

// render runs helm template for release "vipcast" in namespace vipcast-system with extra
// arguments (--set ..., -f ...).
func render(t *testing.T, extra ...string) manifest {
	t.Helper()
	return renderWith(t, "helm", extra...)
}

func renderWith(t *testing.T, bin string, extra ...string) manifest {
	t.Helper()
	out, err := helmWith(t, bin, append([]string{"template", "vipcast", chartDir, "--namespace", "vipcast-system"}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func parse(text string) (manifest, error) {
	var objs manifest
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err.Error() == "EOF" {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the object of a kind and name, or nil.
func (m manifest) find(kind, name string) *unstructured.Unstructured {
	for _, o := range m {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func (m manifest) kinds() map[string]int {
	out := map[string]int{}
	for _, o := range m {
		out[o.GetKind()]++
	}
	return out
}

// get converts the named object into a typed one, failing the test when it is missing.
func get[T any](t *testing.T, m manifest, kind, name string) *T {
	t.Helper()
	o := m.find(kind, name)
	if o == nil {
		t.Fatalf("no %s %s in the rendered chart (have %v)", kind, name, m.kinds())
	}
	var v T
	if err := runtimeconv.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
	return &v
}

func controllerOf(t *testing.T, m manifest) *appsv1.Deployment {
	return get[appsv1.Deployment](t, m, "Deployment", "vipcast-controller")
}

func speakerOf(t *testing.T, m manifest) *appsv1.DaemonSet {
	return get[appsv1.DaemonSet](t, m, "DaemonSet", "vipcast-speaker")
}

func clusterRole(t *testing.T, m manifest, name string) *rbacv1.ClusterRole {
	return get[rbacv1.ClusterRole](t, m, "ClusterRole", name)
}

// args returns a container's flags as name → value.
func args(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, a := range c.Args {
		k, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		out[k] = v
	}
	return out
}
