package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/app"
)

// poolTable is what `kubectl get ipaddresspools -o wide` shows: the API server's own table
// of the pools, column name -> cell, per pool.
func poolTable(t *testing.T) map[string]map[string]string {
	t.Helper()
	return table(t, "ipaddresspools")
}

// table is what `kubectl get <resource> -o wide` shows for one of vipcast's kinds: the API
// server's own table, column name -> cell, per object.
func table(t *testing.T, resource string) map[string]map[string]string {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &v1alpha1.GroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = clientgoscheme.Codecs.WithoutConversion()
	rc, err := rest.RESTClientFor(c)
	must(t, err)
	body, err := rc.Get().Resource(resource).Param("includeObject", "None").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(context.Background())
	must(t, err)
	var tab metav1.Table
	if err := json.Unmarshal(body, &tab); err != nil {
		t.Fatalf("table: %v: %s", err, body)
	}
	out := map[string]map[string]string{}
	for _, row := range tab.Rows {
		cells := map[string]string{}
		for i, col := range tab.ColumnDefinitions {
			if i < len(row.Cells) {
				cells[col.Name] = fmt.Sprint(row.Cells[i])
			}
		}
		out[cells["Name"]] = cells
	}
	return out
}

// What is wrong with a pool shows in `kubectl get ipaddresspools`: a reversed IPv6 range
// (which the schema cannot catch), an overlap, a deletion that waits for holders.
func TestPoolColumnsShowWhatIsWrong(t *testing.T) {
	startController(t, app.Options{})
	ns := newNamespace(t)
	createPool(t, "cols-reversed6", []string{"2001:db8:c::20-2001:db8:c::10"})
	createPool(t, "cols-a", []string{"203.0.113.64/29"})
	createPool(t, "cols-b", []string{"203.0.113.68/30"})
	createPool(t, "cols-held", []string{"203.0.113.80/30"})
	createService(t, ns, "holder", func(s *corev1.Service) {
		s.Annotations[v1alpha1.AnnotationAddressPool] = "cols-held"
	})
	waitIPs(t, ns, "holder", "203.0.113.80")
	must(t, k8s.Delete(context.Background(), &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "cols-held"}}))

	want := map[string]map[string]string{
		"cols-reversed6": {"Ready": "False", "Reason": "InvalidAddresses", "Conflicting": "False"},
		"cols-a":         {"Ready": "True", "Reason": "Valid", "Conflicting": "True"},
		"cols-b":         {"Ready": "True", "Reason": "Valid", "Conflicting": "True"},
		"cols-held":      {"Ready": "False", "Reason": "Terminating", "Conflicting": "False"},
	}
	var last map[string]map[string]string
	eventually(t, "the pools' columns", func() (bool, string) {
		last = poolTable(t)
		for name, cols := range want {
			for col, v := range cols {
				if last[name][col] != v {
					return false, fmt.Sprintf("%s %s = %q, want %q (row %v)", name, col, last[name][col], v, last[name])
				}
			}
		}
		return true, ""
	})
	if m := last["cols-reversed6"]["Message"]; !strings.Contains(m, "reversed") {
		t.Errorf("wide Message of the reversed pool: %q", m)
	}
	if m := last["cols-held"]["In use"]; !strings.Contains(m, "deletion waits") || !strings.Contains(m, ns+"/holder") {
		t.Errorf("wide In use of the pool being deleted: %q", m)
	}
	p := &v1alpha1.IPAddressPool{}
	must(t, k8s.Get(context.Background(), client.ObjectKey{Name: "cols-held"}, p))
	if p.DeletionTimestamp == nil {
		t.Error("cols-held is not being deleted")
	}
}
