package integration

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/allocator"
	"github.com/vipcast/vipcast/controller/internal/app"
	"github.com/vipcast/vipcast/controller/internal/service"
)

// TestMigratedObjectsAreValid: what kubectl vipcast migrate metallb prints for its golden
// cases is accepted by the API server as it is (server-side dry run, so the CRDs' schema and
// validation rules decide).
func TestMigratedObjectsAreValid(t *testing.T) {
	files, err := filepath.Glob("../../kubectl-vipcast/testdata/migrate/*/vipcast.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "vipcast-system"}}
	if err := k8s.Create(t.Context(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for {
			doc, err := docs.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var u unstructured.Unstructured
			if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(u.Object) == 0 {
				continue // the comments at the top
			}
			if err := k8s.Create(t.Context(), &u, client.DryRunAll); err != nil {
				t.Errorf("%s: %s %s refused: %v", f, u.GetKind(), u.GetName(), err)
			}
			n++
		}
	}
	if n < 10 {
		t.Errorf("only %d objects checked", n)
	}
}

// TestKeepsAddressesMetalLBWrote: Services whose addresses another controller (MetalLB)
// wrote keep them when vipcast starts with no pool yet (OutsidePool), and the same
// addresses become allocated from the pools that the migration creates.
func TestKeepsAddressesMetalLBWrote(t *testing.T) {
	ns := newNamespace(t)
	written := map[string]string{"named": "198.51.100.2", "auto": "198.51.100.5"}
	for name, ip := range written {
		createService(t, ns, name, func(s *corev1.Service) {
			if name == "named" {
				s.Annotations[v1alpha1.MetalLBAddressPool] = "moved"
			}
		})
		s := getService(t, ns, name)
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
		must(t, k8s.Status().Update(t.Context(), s))
	}
	startController(t, app.Options{})
	// No pool holds them; the Service that names a pool not yet created says so too.
	waitCondition(t, ns, "auto", metav1.ConditionTrue, service.ReasonOutsidePool)
	if c := waitCondition(t, ns, "named", metav1.ConditionFalse, allocator.ReasonNoMatchingPool); !strings.Contains(c.Message, "keeps 198.51.100.2") {
		t.Errorf("named: %q", c.Message)
	}
	for name, ip := range written {
		waitIPs(t, ns, name, ip)
	}
	createPool(t, "moved", []string{"198.51.100.0/29"})
	for name, ip := range written {
		if c := waitCondition(t, ns, name, metav1.ConditionTrue, service.ReasonAllocated); !strings.Contains(c.Message, ip+" from IPAddressPool moved") {
			t.Errorf("%s: %q", name, c.Message)
		}
		waitIPs(t, ns, name, ip)
	}
}
