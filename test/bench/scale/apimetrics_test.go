package main

import (
	"reflect"
	"testing"
)

func TestParseMetric(t *testing.T) {
	text := `# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="status",verb="PATCH",version="v1"} 12
apiserver_request_total{code="201",component="apiserver",dry_run="",group="vipcast.io",resource="speakerstatuses",scope="resource",subresource="",verb="POST",version="v1alpha1"} 3e+00
apiserver_request_total_other{resource="x"} 5
apiserver_request_total{code="200",resource="a \"quoted\", value",verb="GET"} 1.5
apiserver_request_total 7
apiserver_request_total{verb="GET"} not-a-number
rest_client_requests_total{code="200",host="192.0.2.2:6443",method="GET"} 42
`
	for _, tc := range []struct {
		name, metric string
		want         []sample
	}{
		{"labels, exponents, escapes and none", "apiserver_request_total", []sample{
			{map[string]string{"code": "200", "component": "apiserver", "dry_run": "", "group": "", "resource": "services", "scope": "resource", "subresource": "status", "verb": "PATCH", "version": "v1"}, 12},
			{map[string]string{"code": "201", "component": "apiserver", "dry_run": "", "group": "vipcast.io", "resource": "speakerstatuses", "scope": "resource", "subresource": "", "verb": "POST", "version": "v1alpha1"}, 3},
			{map[string]string{"code": "200", "resource": `a "quoted", value`, "verb": "GET"}, 1.5},
			{map[string]string{}, 7},
		}},
		{"another metric", "rest_client_requests_total", []sample{{map[string]string{"code": "200", "host": "192.0.2.2:6443", "method": "GET"}, 42}}},
		{"absent", "nothing_total", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseMetric(text, tc.metric); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
