package chart

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// build compiles one of the programs into a temporary directory.
func build(t *testing.T, prog string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "vipcast-"+prog)
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", out, "./"+prog)
	cmd.Dir = root()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", prog, err, b)
	}
	return out
}

// flagsOf lists the flags a program's --help prints.
func flagsOf(t *testing.T, binary string) map[string]bool {
	t.Helper()
	out, _ := exec.CommandContext(t.Context(), binary, "--help").CombinedOutput() // exits 0 or 2 by Go version
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-{1,2}([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) < 5 {
		t.Fatalf("%s --help listed no flags:\n%s", binary, out)
	}
	return flags
}

// Every flag and environment variable the chart passes exists in the program it is passed
// to, with default and with every optional value set.
func TestChartFlagsExistInBinaries(t *testing.T) {
	flags := map[string]map[string]bool{
		"/vipcast-controller": flagsOf(t, build(t, "controller")),
		"/vipcast-speaker":    flagsOf(t, build(t, "speaker")),
	}
	for _, values := range valueSets {
		m := render(t, values.args...)
		for _, pod := range []struct {
			kind string
			c    []string
			args []string
			env  []string
		}{
			{"controller", controllerOf(t, m).Spec.Template.Spec.Containers[0].Command, controllerOf(t, m).Spec.Template.Spec.Containers[0].Args, nil},
			{"speaker", speakerOf(t, m).Spec.Template.Spec.Containers[0].Command, speakerOf(t, m).Spec.Template.Spec.Containers[0].Args, []string{"NODE_NAME"}},
		} {
			if len(pod.c) != 1 || flags[pod.c[0]] == nil {
				t.Fatalf("%s runs %v, not one of the image's programs", pod.kind, pod.c)
			}
			known := flags[pod.c[0]]
			for _, a := range pod.args {
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !known[name] {
					t.Errorf("the chart passes %s to %s, which has no such flag", a, pod.c[0])
				}
			}
			if len(pod.env) > 0 {
				// The speaker reads NODE_NAME as --node-name's default: its help says so.
				out, _ := exec.CommandContext(t.Context(), build(t, pod.kind), "--help").CombinedOutput()
				for _, e := range pod.env {
					if !strings.Contains(string(out), "$"+e) {
						t.Errorf("the chart sets %s for the %s, which does not read it", e, pod.kind)
					}
				}
			}
		}
	}
}

// The chart's ClusterRoles grant what controller-gen generated from the code's markers
// (config/rbac), and nothing more, apart from the two rules moved into namespaced Roles.
func TestRBACMatchesGenerated(t *testing.T) {
	m := render(t)
	for _, tc := range []struct {
		generated, role, namespaced string
		moved                       string // resource granted by a Role instead
	}{
		{"role.yaml", "vipcast-controller", "vipcast-controller", "leases"},
		{filepath.Join("speaker", "role.yaml"), "vipcast-speaker", "vipcast-speaker-bgp-passwords", "secrets"},
	} {
		b, err := os.ReadFile(filepath.Join(root(), "config", "rbac", tc.generated))
		if err != nil {
			t.Fatal(err)
		}
		var gen rbacv1.ClusterRole
		if err := yaml.Unmarshal(b, &gen); err != nil {
			t.Fatal(err)
		}
		chart := grants(clusterRole(t, m, tc.role).Rules)
		role := grants(get[rbacv1.Role](t, m, "Role", tc.namespaced).Rules)
		want := grants(gen.Rules)
		for g := range want {
			if strings.Contains(g, "/"+tc.moved+" ") {
				if !role[g] {
					t.Errorf("%s: generated %q is in neither the ClusterRole nor the Role", tc.role, g)
				}
				delete(want, g)
				continue
			}
			if !chart[g] {
				t.Errorf("%s: the code needs %q, the chart does not grant it", tc.role, g)
			}
		}
		for g := range chart {
			if !want[g] {
				t.Errorf("%s: the chart grants %q, which the code does not ask for", tc.role, g)
			}
		}
	}
}

// grants flattens rules into "group/resource verb" strings.
func grants(rules []rbacv1.PolicyRule) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out[fmt.Sprintf("%s/%s %s", g, res, v)] = true
				}
			}
		}
	}
	return out
}

// Every metric an alert uses is one the programs export.
func TestAlertsUseExportedMetrics(t *testing.T) {
	m := render(t, "--set", "metrics.prometheusRule.enabled=true")
	rule := m.find("PrometheusRule", "vipcast")
	if rule == nil {
		t.Fatal("no PrometheusRule")
	}
	b, _ := yaml.Marshal(rule.Object["spec"])
	var alerts []string
	for _, a := range regexp.MustCompile(`alert: (\w+)`).FindAllStringSubmatch(string(b), -1) {
		alerts = append(alerts, a[1])
	}
	for _, want := range []string{"VipcastPoolNearlyExhausted", "VipcastAllocationFailures", "VipcastBGPSessionDown", "VipcastServiceNotAnnounced"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert %s (have %v)", want, alerts)
		}
	}
	defined := map[string]bool{}
	for _, dir := range []string{"controller", "speaker"} {
		_ = filepath.WalkDir(filepath.Join(root(), dir), func(p string, _ os.DirEntry, _ error) error {
			if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				src, _ := os.ReadFile(p)
				for _, n := range regexp.MustCompile(`Name:\s*"(vipcast_\w+)"`).FindAllStringSubmatch(string(src), -1) {
					defined[n[1]] = true
				}
			}
			return nil
		})
	}
	used := regexp.MustCompile(`vipcast_\w+`).FindAllString(string(b), -1)
	if len(used) < 4 {
		t.Fatalf("the alerts use %v", used)
	}
	for _, name := range used {
		if !defined[name] {
			t.Errorf("an alert uses %s, which no program exports", name)
		}
	}
}

// The Dockerfile and `make image-binaries` build the same thing: the same script, the same
// Go, the entry points the chart runs; and what they build is static and stripped.
func TestDockerfileMatchesImageBinaries(t *testing.T) {
	docker, err := os.ReadFile(filepath.Join(root(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM golang:(\S+) AS build`).FindSubmatch(docker)
	imageGo := regexp.MustCompile(`(?m)^IMAGE_GO := (\S+)`).FindSubmatch(makefile)
	if from == nil || imageGo == nil || string(from[1]) != string(imageGo[1]) {
		t.Fatalf("Dockerfile builds with golang:%s, make image-binaries with Go %s", from, imageGo)
	}
	if !regexp.MustCompile(`(?m)^RUN hack/image-binaries.sh /out$`).Match(docker) ||
		!regexp.MustCompile(`(?m)^\s+GOTOOLCHAIN=go\$\(IMAGE_GO\) hack/image-binaries.sh `).Match(makefile) {
		t.Error("the Dockerfile and make image-binaries do not both run hack/image-binaries.sh")
	}
	if !regexp.MustCompile(`(?m)^COPY --from=build /out/vipcast-controller /out/vipcast-speaker /out/kubectl-vipcast /$`).Match(docker) {
		t.Error("the image does not hold /vipcast-controller, /vipcast-speaker and /kubectl-vipcast")
	}
	if !regexp.MustCompile(`(?m)^USER 65532:65532$`).Match(docker) {
		t.Error("the image does not default to a non-root user")
	}
	out := t.TempDir()
	cmd := exec.CommandContext(t.Context(), filepath.Join(root(), "hack", "image-binaries.sh"), out)
	cmd.Dir = root()
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=go"+string(imageGo[1]))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/image-binaries.sh: %v\n%s", err, b)
	}
	for _, prog := range []string{"vipcast-controller", "vipcast-speaker", "kubectl-vipcast"} {
		path := filepath.Join(out, prog)
		info, err := buildinfo.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.GoVersion != "go"+string(imageGo[1]) {
			t.Errorf("%s built with %s, want go%s", prog, info.GoVersion, imageGo[1])
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		// With -trimpath Go does not record -ldflags; "-s -w" shows as no symbol table below.
		if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["GOOS"] != "linux" {
			t.Errorf("%s build settings %v", prog, settings)
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", prog)
			}
		}
		if s := f.Section(".symtab"); s != nil {
			t.Errorf("%s is not stripped", prog)
		}
		f.Close()
	}
}
