package integration

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/vipcast/vipcast/controller/internal/app"
)

func TestMetricsAndProbes(t *testing.T) {
	startController(t, app.Options{MetricsAddr: "127.0.0.1:17599", ProbeAddr: "127.0.0.1:17600"})
	ns := newNamespace(t)
	createPool(t, "metrics-pool", []string{"192.0.2.112/29"})
	createService(t, ns, "m1")
	waitIPs(t, ns, "m1", "192.0.2.112")
	want := []string{
		`vipcast_pool_addresses_in_use{family="IPv4",pool="metrics-pool"} 1`,
		`vipcast_pool_addresses_total{family="IPv4",pool="metrics-pool"} 8`,
		`vipcast_allocations_total{pool="metrics-pool"}`,
		`vipcast_reconcile_duration_seconds_count{controller="service"}`,
	}
	eventually(t, "metrics to show the allocation", func() (bool, string) {
		body := get(t, "http://127.0.0.1:17599/metrics")
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false, "missing " + w
			}
		}
		return true, ""
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		eventually(t, path+" to answer 200", func() (bool, string) {
			resp, err := http.Get("http://127.0.0.1:17600" + path)
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			return resp.StatusCode == http.StatusOK, resp.Status
		})
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
