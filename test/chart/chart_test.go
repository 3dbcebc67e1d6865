// Package chart tests the Helm chart without a cluster: lint, the objects it renders with
// default and non-default values, its schema, its RBAC against the rules generated from the
// code, and its contract with the two programs and the Dockerfile. The install, upgrade,
// uninstall and RBAC tests on a real API server are in test/e2e (chart_test.go).
package chart

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// valueSets are the two renderings most tests look at: the defaults, and every optional
// part on with most values changed.
var valueSets = []struct {
	name string
	args []string
}{
	{"defaults", nil},
	{"everything on", []string{"-f", filepath.Join("testdata", "values-all.yaml")}},
}

// Both Helm 4 and Helm 3 lint the chart cleanly (strict).
func TestLint(t *testing.T) {
	for _, bin := range []string{"helm", "helm3"} {
		for _, tc := range valueSets {
			t.Run(bin+"/"+tc.name, func(t *testing.T) {
				if out, err := helmWith(t, bin, append([]string{"lint", "--strict", chartDir}, tc.args...)...); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			})
		}
	}
}

func TestDefaults(t *testing.T) {
	m := render(t)
	kinds := m.kinds()
	for kind, n := range map[string]int{"Deployment": 1, "DaemonSet": 1, "Secret": 1, "PodDisruptionBudget": 1, "ServiceAccount": 2,
		"ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 2, "RoleBinding": 2, "Service": 2} {
		if kinds[kind] != n {
			t.Errorf("%d %s objects, want %d", kinds[kind], kind, n)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "IPAddressPool", "L2Advertisement", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		if kinds[kind] != 0 {
			t.Errorf("rendered a %s by default", kind)
		}
	}

	ctl := controllerOf(t, m)
	if *ctl.Spec.Replicas != 2 {
		t.Errorf("controller replicas %d, want 2", *ctl.Spec.Replicas)
	}
	pod := ctl.Spec.Template.Spec
	c := pod.Containers[0]
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("the controller may run as root")
	}
	hardened(t, "controller", c)
	if len(c.SecurityContext.Capabilities.Add) != 0 {
		t.Errorf("the controller adds capabilities %v", c.SecurityContext.Capabilities.Add)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("the controller lacks probes or resources")
	}
	a := args(c)
	if a["leader-elect"] != "true" || a["leader-election-namespace"] != "vipcast-system" {
		t.Errorf("leader election: %v", c.Args)
	}
	pdb := get[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget", "vipcast-controller")
	if pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PDB minAvailable %v", pdb.Spec.MinAvailable)
	}

	ds := speakerOf(t, m)
	sp := ds.Spec.Template.Spec
	s := sp.Containers[0]
	if !sp.HostNetwork || sp.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("speaker hostNetwork %v, dnsPolicy %s", sp.HostNetwork, sp.DNSPolicy)
	}
	hardened(t, "speaker", s)
	if got := s.SecurityContext.Capabilities.Add; !slices.Equal(got, []corev1.Capability{"NET_RAW"}) {
		t.Errorf("speaker capabilities %v, want only NET_RAW", got)
	}
	if !slices.ContainsFunc(sp.Tolerations, func(t corev1.Toleration) bool { return t.Operator == corev1.TolerationOpExists && t.Key == "" }) {
		t.Errorf("the speaker does not tolerate every taint: %v", sp.Tolerations)
	}
	if len(s.Env) != 1 || s.Env[0].Name != "NODE_NAME" || s.Env[0].ValueFrom == nil || s.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is not the downward API's spec.nodeName: %+v", s.Env)
	}
	ports := map[string]int32{}
	for _, p := range s.Ports {
		ports[p.Name+"/"+string(p.Protocol)] = p.ContainerPort
	}
	if ports["memberlist-tcp/TCP"] != 7946 || ports["memberlist-udp/UDP"] != 7946 {
		t.Errorf("memberlist ports %v", ports)
	}
	sa := args(s)
	if sa["memberlist-key-file"] != "/etc/vipcast/memberlist/key" {
		t.Errorf("gossip is not encrypted by default: %v", s.Args)
	}
	secret := get[corev1.Secret](t, m, "Secret", "vipcast-memberlist")
	if sp.Volumes[0].Secret == nil || sp.Volumes[0].Secret.SecretName != secret.Name {
		t.Errorf("the speaker does not mount %s: %+v", secret.Name, sp.Volumes)
	}
	if key, err := base64.StdEncoding.DecodeString(string(secret.Data["key"])); err != nil || len(key) != 32 {
		t.Errorf("gossip key is not base64 of 32 bytes: %q (%v)", secret.Data["key"], err)
	}
	if other := get[corev1.Secret](t, render(t), "Secret", "vipcast-memberlist"); string(other.Data["key"]) == string(secret.Data["key"]) {
		t.Error("two installs got the same gossip key")
	}

	// Secrets: only get, only in the release namespace, and only through a Role.
	for _, name := range []string{"vipcast-controller", "vipcast-speaker"} {
		for _, r := range clusterRole(t, m, name).Rules {
			if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") {
				t.Errorf("ClusterRole %s: %+v", name, r)
			}
		}
	}
	role := get[rbacv1.Role](t, m, "Role", "vipcast-speaker-bgp-passwords")
	if role.Namespace != "vipcast-system" || len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Verbs, []string{"get"}) || len(role.Rules[0].ResourceNames) != 0 {
		t.Errorf("password Role %s: %+v", role.Namespace, role.Rules)
	}
}

// hardened: no privilege escalation, read-only root, every capability dropped first.
func hardened(t *testing.T, who string, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || (sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("%s container security context %+v", who, sc)
	}
}

func TestNonDefaultValues(t *testing.T) {
	m := render(t, valueSets[1].args...)
	ctl := controllerOf(t, m)
	if *ctl.Spec.Replicas != 3 || ctl.Spec.Template.Spec.NodeSelector["role"] != "infra" {
		t.Errorf("controller replicas %d, node selector %v", *ctl.Spec.Replicas, ctl.Spec.Template.Spec.NodeSelector)
	}
	a := args(ctl.Spec.Template.Spec.Containers[0])
	for k, v := range map[string]string{"lb-class": "vipcast.io/lb", "zap-log-level": "debug", "workers": "8", "lease-duration": "30s", "events-qps": "50",
		"pprof-bind-address": "127.0.0.1:6060"} {
		if a[k] != v {
			t.Errorf("controller --%s=%q, want %q", k, a[k], v)
		}
	}
	ds := speakerOf(t, m)
	s := ds.Spec.Template.Spec.Containers[0]
	sa := args(s)
	for k, v := range map[string]string{"lb-class": "vipcast.io/lb", "zap-log-level": "debug", "exclude-interfaces": "cali*,eth9",
		"memberlist-port": "7950", "memberlist-probe-interval": "200ms", "memberlist-suspicion-mult": "4", "events-qps": "5", "events-per-plan": "7",
		"plan-interval": "250ms", "pprof-bind-address": "127.0.0.1:6060"} {
		if sa[k] != v {
			t.Errorf("speaker --%s=%q, want %q", k, sa[k], v)
		}
	}
	if ds.Spec.Template.Spec.NodeSelector["vipcast.io/speaker"] != "true" || len(ds.Spec.Template.Spec.Tolerations) != 0 {
		t.Errorf("speaker node selector %v, tolerations %v", ds.Spec.Template.Spec.NodeSelector, ds.Spec.Template.Spec.Tolerations)
	}
	// An existing gossip Secret: none generated, that one mounted.
	if m.find("Secret", "vipcast-memberlist") != nil || ds.Spec.Template.Spec.Volumes[0].Secret.SecretName != "my-gossip-key" {
		t.Errorf("existingSecret not used: %+v", ds.Spec.Template.Spec.Volumes)
	}
	role := get[rbacv1.Role](t, m, "Role", "vipcast-speaker-bgp-passwords")
	if role.Namespace != "bgp-secrets" || !slices.Equal(role.Rules[0].ResourceNames, []string{"tor-password"}) {
		t.Errorf("password Role in %s for %v", role.Namespace, role.Rules[0].ResourceNames)
	}
	if m.find("PodDisruptionBudget", "vipcast-controller") != nil {
		t.Error("PDB rendered although disabled")
	}
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule", "IPAddressPool", "L2Advertisement"} {
		if m.find(kind, map[bool]string{true: "vipcast", false: "lab"}[kind == "ServiceMonitor" || kind == "PrometheusRule"]) == nil {
			t.Errorf("no %s rendered (have %v)", kind, m.kinds())
		}
	}
	pool := m.find("IPAddressPool", "lab")
	if addrs, _, _ := unstructured.NestedStringSlice(pool.Object, "spec", "addresses"); !slices.Equal(addrs, []string{"192.0.2.240/28"}) {
		t.Errorf("sample pool addresses %v", addrs)
	}
	for _, o := range m {
		if o.GetLabels()["team"] != "net" {
			t.Errorf("%s %s lacks the common label", o.GetKind(), o.GetName())
		}
	}
}

// With the longest release name Helm allows (53), every name still fits a DNS label (63).
func TestLongReleaseName(t *testing.T) {
	release := strings.Repeat("r", 53)
	out, err := helm(t, "template", release, chartDir, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	m, err := parse(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range m {
		if len(o.GetName()) > 63 {
			t.Errorf("%s %s: %d characters", o.GetKind(), o.GetName(), len(o.GetName()))
		}
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, set, want string
	}{
		{"unknown key", "controller.replica=2", "/controller"},
		{"log level", "logLevel=loud", "/logLevel"},
		{"duration", "speaker.memberlist.probeInterval=fast", "/speaker/memberlist/probeInterval"},
		{"port", "speaker.memberlist.port=70000", "/speaker/memberlist/port"},
		{"interface list with a comma", "speaker.excludeInterfaces={eth0\\,eth1}", "/speaker/excludeInterfaces/0"},
		{"sample pool without addresses", "samplePool.enabled=true", "/samplePool/addresses"},
		{"replicas", "controller.replicas=0", "/controller/replicas"},
		{"events pace", "speaker.eventsQPS=0", "/speaker/eventsQPS"},
		{"events per plan", "speaker.eventsPerPlan=-1", "/speaker/eventsPerPlan"},
	} {
		for _, bin := range []string{"helm", "helm3"} {
			t.Run(bin+"/"+tc.name, func(t *testing.T) {
				_, err := helmWith(t, bin, "template", "vipcast", chartDir, "--set", tc.set)
				if !schemaError(err, tc.want) {
					t.Errorf("--set %s: %v, want a schema error at %s", tc.set, err, tc.want)
				}
			})
		}
	}
	if _, err := helm(t, "template", "vipcast", chartDir); err != nil {
		t.Errorf("the defaults fail: %v", err)
	}
}

// The chart ships the CRDs controller-gen generates (make generate copies them).
func TestCRDsInSync(t *testing.T) {
	gen, err := filepath.Glob(filepath.Join(root(), "config", "crd", "*.yaml"))
	if err != nil || len(gen) == 0 {
		t.Fatalf("no generated CRDs: %v", err)
	}
	shipped, _ := filepath.Glob(filepath.Join(chartDir, "crds", "*.yaml"))
	if len(shipped) != len(gen) {
		t.Errorf("chart has %d CRD files, config/crd %d: run make generate", len(shipped), len(gen))
	}
	for _, f := range gen {
		a, _ := os.ReadFile(f)
		b, err := os.ReadFile(filepath.Join(chartDir, "crds", filepath.Base(f)))
		if err != nil || string(a) != string(b) {
			t.Errorf("charts/vipcast/crds/%s differs from config/crd (run make generate): %v", filepath.Base(f), err)
		}
	}
}

// Helm 3 applies the schema and renders the same objects as Helm 4 (the gossip key aside,
// which is random per rendering).
func TestHelm3RendersTheSame(t *testing.T) {
	for _, tc := range valueSets {
		t.Run(tc.name, func(t *testing.T) {
			v3, v4 := renderWith(t, "helm3", tc.args...), renderWith(t, "helm", tc.args...)
			if len(v3) != len(v4) {
				t.Fatalf("Helm 3 rendered %v, Helm 4 %v", v3.kinds(), v4.kinds())
			}
			for _, o := range v4 {
				other := v3.find(o.GetKind(), o.GetName())
				if other == nil {
					t.Errorf("Helm 3 did not render %s %s", o.GetKind(), o.GetName())
					continue
				}
				if o.GetKind() == "Secret" {
					unstructured.RemoveNestedField(o.Object, "data", "key")
					unstructured.RemoveNestedField(other.Object, "data", "key")
				}
				if !equality.Semantic.DeepEqual(o.Object, other.Object) {
					t.Errorf("%s %s differs between Helm 3 and Helm 4", o.GetKind(), o.GetName())
				}
			}
		})
	}
}
