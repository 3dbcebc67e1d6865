package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

// chartLabIndex is the lab of the chart test: a fresh API server without vipcast, which the
// README's install commands then bring.
const chartLabIndex = 3

const chartNS = "vipcast-system"

// The README's install commands, as written, against a fresh lab; then an upgrade, the
// programs started with exactly the arguments, identities and capabilities the chart gives
// them (L2, and BGP with BFD and an MD5 password from a Secret), RBAC checked by impersonation, no
// secret in any log, and an uninstall that leaves only the CRDs.
func TestHelmChartOnRealAPIServer(t *testing.T) {
	root, err := lab.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	l := lab.UpForTest(t, lab.Config{Index: chartLabIndex, Nodes: 2, BareAPI: true})
	h := &chartRun{t: t, l: l, root: root, home: t.TempDir()}

	var notes string
	for _, argv := range readmeInstall(t, filepath.Join(root, "README.md")) {
		out := h.run(argv...)
		if argv[0] == "helm" {
			notes = out
		}
	}
	h.notesApply(notes)
	objs := h.manifest()
	h.allExist(objs)
	key := h.gossipKey()

	h.run("helm", "upgrade", "vipcast", "charts/vipcast", "--namespace", chartNS, "--reuse-values", "--set", "logLevel=debug")
	if got := h.gossipKey(); got != key {
		t.Errorf("helm upgrade changed the gossip key")
	}
	objs = h.manifest()
	h.allExist(objs)
	h.rbac()
	h.startPrograms(objs)
	h.serve()
	h.bgpWithPassword()
	h.noSecretsInLogs(key)
	h.stopPrograms()

	h.run("helm", "uninstall", "vipcast", "--namespace", chartNS, "--wait", "--timeout", "2m")
	h.nothingLeft(objs)
}

type chartRun struct {
	t     *testing.T
	l     *lab.Lab
	root  string
	home  string
	procs []*lab.Process
}

// readmeInstall returns the commands of the first shell block under "## Install".
func readmeInstall(t *testing.T, readme string) [][]string {
	t.Helper()
	return readmeCommands(t, readme, "## Install")
}

// readmeCommands returns the commands of the first shell block under the heading, each
// split into words, comments ("  # ...") left out.
func readmeCommands(t *testing.T, readme, heading string) [][]string {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds [][]string
	section, block := false, false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			if section && len(cmds) > 0 {
				return cmds
			}
			section = line == heading
		case section && strings.HasPrefix(line, "```"):
			if block {
				return cmds
			}
			block = true
		case section && block && strings.HasPrefix(strings.TrimSpace(line), "#"):
			// a comment line: a step for a person
		case section && block:
			if i := strings.Index(line, " #"); i >= 0 {
				line = line[:i]
			}
			if strings.TrimSpace(line) != "" {
				cmds = append(cmds, strings.Fields(line))
			}
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("the README has no commands under %s", heading)
	}
	return cmds
}

// run runs helm or kubectl from bin/ in the repository against the lab, as its administrator.
func (h *chartRun) run(argv ...string) string {
	h.t.Helper()
	if argv[0] != "helm" && argv[0] != "kubectl" {
		h.t.Fatalf("the install commands should be helm and kubectl, not %q", argv)
	}
	cmd := exec.CommandContext(h.t.Context(), filepath.Join(h.root, "bin", argv[0]), argv[1:]...)
	cmd.Dir = h.root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+h.l.Kubeconfig, "HELM_CACHE_HOME="+h.home+"/cache",
		"HELM_CONFIG_HOME="+h.home+"/config", "HELM_DATA_HOME="+h.home+"/data")
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// notesApply: the objects NOTES.txt tells the user to apply next are valid for the API
// server (server-side dry run: the README's pool of the same name stays as it is).
func (h *chartRun) notesApply(notes string) {
	h.t.Helper()
	blocks := 0
	for _, part := range strings.Split(notes, "kubectl apply -f - <<'YAML'\n")[1:] {
		doc, _, ok := strings.Cut(part, "\nYAML\n")
		if !ok {
			h.t.Fatalf("NOTES: a here-document without its end:\n%s", part)
		}
		cmd := exec.CommandContext(h.t.Context(), filepath.Join(h.root, "bin", "kubectl"), "apply", "--dry-run=server", "-f", "-")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+h.l.Kubeconfig)
		cmd.Stdin = strings.NewReader(doc)
		if out, err := cmd.CombinedOutput(); err != nil {
			h.t.Errorf("NOTES tells to apply what the API server refuses: %v\n%s\n%s", err, out, doc)
		}
		blocks++
	}
	if blocks != 2 {
		h.t.Errorf("NOTES holds %d objects to apply, want a pool and an advertisement:\n%s", blocks, notes)
	}
}

// manifest is what the release holds now.
func (h *chartRun) manifest() []*unstructured.Unstructured {
	h.t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(h.run("helm", "get", "manifest", "vipcast", "--namespace", chartNS)), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			break
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	if len(objs) < 15 {
		h.t.Fatalf("the release holds %d objects", len(objs))
	}
	return objs
}

// allExist: the API server accepted and stored every object of the release, and the CRDs.
func (h *chartRun) allExist(objs []*unstructured.Unstructured) {
	h.t.Helper()
	for _, o := range objs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := h.l.Kube.Get(h.t.Context(), client.ObjectKeyFromObject(o), got); err != nil {
			h.t.Errorf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	for _, kind := range []string{"ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers", "speakerstatuses"} {
		if err := h.l.Kube.Get(h.t.Context(), client.ObjectKey{Name: kind + ".vipcast.io"}, crd()); err != nil {
			h.t.Errorf("CRD %s: %v", kind, err)
		}
	}
	var pool v1alpha1.IPAddressPool
	if err := h.l.Kube.Get(h.t.Context(), client.ObjectKey{Name: "default"}, &pool); err != nil {
		h.t.Errorf("the README's pool: %v", err)
	}
}

func crd() *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("apiextensions.k8s.io/v1")
	o.SetKind("CustomResourceDefinition")
	return o
}

func (h *chartRun) gossipKey() string {
	h.t.Helper()
	var s corev1.Secret
	if err := h.l.Kube.Get(h.t.Context(), client.ObjectKey{Namespace: chartNS, Name: "vipcast-memberlist"}, &s); err != nil {
		h.t.Fatal(err)
	}
	if k, err := base64.StdEncoding.DecodeString(string(s.Data["key"])); err != nil || len(k) != 32 {
		h.t.Fatalf("gossip key %q: %v", s.Data["key"], err)
	}
	return string(s.Data["key"])
}

// saUser is a ServiceAccount's user name and groups, as the API server sees its token.
func saUser(name string) (string, []string) {
	return "system:serviceaccount:" + chartNS + ":" + name, []string{"system:serviceaccounts", "system:serviceaccounts:" + chartNS, "system:authenticated"}
}

// rbac impersonates the speaker's and the controller's ServiceAccounts.
func (h *chartRun) rbac() {
	h.t.Helper()
	ctx := h.t.Context()
	for _, ns := range []string{"apps", "elsewhere"} {
		if err := h.l.Kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			h.t.Fatal(err)
		}
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "unrelated"}, StringData: map[string]string{"password": "not-for-vipcast"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: chartNS, Name: "tor-password"}, StringData: map[string]string{"password": "md5-secret-in-chart-test"}},
	} {
		if err := h.l.Kube.Create(ctx, s); err != nil {
			h.t.Fatal(err)
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "probe"}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Port: 80}}}}
	if err := h.l.Kube.Create(ctx, svc); err != nil {
		h.t.Fatal(err)
	}
	as := func(sa string) client.Client {
		user, groups := saUser(sa)
		cfg := rest.CopyConfig(h.l.Rest)
		cfg.Impersonate.UserName, cfg.Impersonate.Groups = user, groups
		c, err := client.New(cfg, client.Options{Scheme: lab.Scheme})
		if err != nil {
			h.t.Fatal(err)
		}
		return c
	}
	speaker, controller := as("vipcast-speaker"), as("vipcast-controller")
	st := &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: "rbac-check"}}
	for _, c := range []struct {
		what    string
		allowed bool
		err     error
	}{
		{"speaker creates a SpeakerStatus", true, speaker.Create(ctx, st)},
		{"speaker writes SpeakerStatus status", true, speaker.Status().Update(ctx, st)},
		{"speaker reads the BGP password Secret in " + chartNS, true, speaker.Get(ctx, client.ObjectKey{Namespace: chartNS, Name: "tor-password"}, &corev1.Secret{})},
		{"speaker lists Services", true, speaker.List(ctx, &corev1.ServiceList{})},
		{"speaker updates a Service", false, speaker.Update(ctx, svc.DeepCopy())},
		{"speaker updates a Service's status", false, speaker.Status().Update(ctx, svc.DeepCopy())},
		{"speaker reads an unrelated Secret", false, speaker.Get(ctx, client.ObjectKey{Namespace: "elsewhere", Name: "unrelated"}, &corev1.Secret{})},
		{"speaker lists Secrets", false, speaker.List(ctx, &corev1.SecretList{}, client.InNamespace(chartNS))},
		{"speaker deletes a pool", false, speaker.Delete(ctx, &v1alpha1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "default"}})},
		{"controller writes a Service's status", true, controller.Status().Update(ctx, svc.DeepCopy())},
		{"controller updates a Service's spec", false, controller.Update(ctx, svc.DeepCopy())},
		{"controller reads any Secret", false, controller.Get(ctx, client.ObjectKey{Namespace: chartNS, Name: "tor-password"}, &corev1.Secret{})},
		{"controller writes SpeakerStatus", false, controller.Create(ctx, &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: "rbac-check-2"}})},
		{"controller takes a Lease in " + chartNS, true, controller.Create(ctx, lease(chartNS))},
		{"controller takes a Lease in kube-system", false, controller.Create(ctx, lease("kube-system"))},
	} {
		switch {
		case c.allowed && c.err != nil:
			h.t.Errorf("%s: refused: %v", c.what, c.err)
		case !c.allowed && !apierrors.IsForbidden(c.err):
			h.t.Errorf("%s: want Forbidden, got %v", c.what, c.err)
		}
	}
	_ = h.l.Kube.Delete(ctx, st)
}

func lease(ns string) client.Object {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("coordination.k8s.io/v1")
	o.SetKind("Lease")
	o.SetNamespace(ns)
	o.SetName("rbac-check")
	return o
}

// container returns the command, arguments and security context of a rendered workload.
func container(h *chartRun, objs []*unstructured.Unstructured, kind string) (corev1.Container, string) {
	h.t.Helper()
	for _, o := range objs {
		if o.GetKind() != kind {
			continue
		}
		var spec corev1.PodTemplateSpec
		var sa string
		switch kind {
		case "Deployment":
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
				h.t.Fatal(err)
			}
			spec = d.Spec.Template
		case "DaemonSet":
			var d appsv1.DaemonSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
				h.t.Fatal(err)
			}
			spec = d.Spec.Template
		}
		sa = spec.Spec.ServiceAccountName
		return spec.Spec.Containers[0], sa
	}
	h.t.Fatalf("no %s in the release", kind)
	return corev1.Container{}, ""
}

// setpriv confines a program to the rendered security context: its user and exactly its
// added capabilities (none for the controller, NET_RAW for the speaker).
func setpriv(c corev1.Container, podUser *int64) []string {
	argv := []string{"setpriv", "--no-new-privs"}
	caps := "-all"
	for _, a := range c.SecurityContext.Capabilities.Add {
		caps += ",+" + strings.ToLower(string(a))
	}
	argv = append(argv, "--bounding-set="+caps)
	uid := podUser
	if c.SecurityContext.RunAsUser != nil {
		uid = c.SecurityContext.RunAsUser
	}
	if uid != nil && *uid != 0 {
		argv = append(argv, fmt.Sprintf("--reuid=%d", *uid), fmt.Sprintf("--regid=%d", *uid), "--clear-groups", "--inh-caps=-all")
	}
	return append(argv, "--")
}

// startPrograms runs the controller (two replicas, as the Deployment) in the control
// plane's namespace and a speaker in every node's, each with the rendered command line,
// as its ServiceAccount, confined to its rendered user and capabilities. Only two things
// differ from a pod: the binaries come from this tree, and the mounted key file is a file
// holding the chart's Secret.
func (h *chartRun) startPrograms(objs []*unstructured.Unstructured) {
	h.t.Helper()
	// Readable by the controller's non-root user, unlike the test's own temporary dirs.
	dir, err := os.MkdirTemp("", "vipcast-chart-")
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	bins := map[string]string{}
	for _, prog := range []string{"vipcast-controller", "vipcast-speaker"} {
		b, err := os.ReadFile(filepath.Join(binDir, prog))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, prog), b, 0o755)
		}
		if err != nil {
			h.t.Fatal(err)
		}
		bins["/"+prog] = filepath.Join(dir, prog)
	}
	// What the kubelet mounts: the Secret's data, base64 text of the key.
	keyFile := filepath.Join(dir, "memberlist-key")
	if err := os.WriteFile(keyFile, []byte(h.gossipKey()), 0o400); err != nil {
		h.t.Fatal(err)
	}
	kubeconfig := func(sa string, uid int) string {
		user, groups := saUser(sa)
		kc, err := h.l.KubeconfigFor(user, groups, true)
		if err != nil {
			h.t.Fatal(err)
		}
		b, err := os.ReadFile(kc)
		if err != nil {
			h.t.Fatal(err)
		}
		own := filepath.Join(dir, sa+".kubeconfig")
		if err := os.WriteFile(own, b, 0o400); err != nil {
			h.t.Fatal(err)
		}
		if err := os.Chown(own, uid, uid); err != nil {
			h.t.Fatal(err)
		}
		return own
	}
	argv := func(c corev1.Container, podUser *int64) []string {
		out := setpriv(c, podUser)
		out = append(out, bins[c.Command[0]])
		for _, a := range c.Args {
			out = append(out, strings.Replace(a, "=/etc/vipcast/memberlist/key", "="+keyFile, 1))
		}
		return out
	}
	ctl, ctlSA := container(h, objs, "Deployment")
	ctlUser := int64(65532)
	if ctl.SecurityContext.RunAsUser != nil {
		ctlUser = *ctl.SecurityContext.RunAsUser
	}
	env := []string{"KUBECONFIG=" + kubeconfig(ctlSA, int(ctlUser))}
	// Two replicas, as the Deployment has; each pod has its own network namespace, so the
	// second runs in node-1's (the ports would clash in one).
	for i, netns := range []string{h.l.ControlPlaneNetns(), h.l.Nodes[0].Netns} {
		p, err := h.l.Run(fmt.Sprintf("chart/controller-%d", i), netns, env, argv(ctl, &ctlUser)...)
		if err != nil {
			h.t.Fatal(err)
		}
		h.procs = append(h.procs, p)
	}
	spk, spkSA := container(h, objs, "DaemonSet")
	if err := os.Chown(keyFile, 0, 0); err != nil {
		h.t.Fatal(err)
	}
	spkKC := kubeconfig(spkSA, 0)
	for _, n := range h.l.Nodes {
		p, err := h.l.Run("chart/speaker-"+n.Name, n.Netns, []string{"KUBECONFIG=" + spkKC, "NODE_NAME=" + n.Name}, argv(spk, nil)...)
		if err != nil {
			h.t.Fatal(err)
		}
		h.procs = append(h.procs, p)
	}
}

func (h *chartRun) stopPrograms() {
	for _, p := range h.procs {
		_ = p.Stop(10 * time.Second)
	}
}

// serve: a dual-stack LoadBalancer Service gets addresses from the README's pool and the
// client reaches the pods through them; the speakers report the capabilities they run with.
func (h *chartRun) serve() {
	t, l := h.t, h.l
	if _, err := l.Deploy(t.Context(), lab.Workload{Namespace: "apps", Name: "web", Labels: map[string]string{"app": "web"}, Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	dual := corev1.IPFamilyPolicyPreferDualStack
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "web"}, IPFamilyPolicy: &dual,
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}}}
	if err := l.Kube.Create(t.Context(), svc); err != nil {
		t.Fatal(err)
	}
	var ips []netip.Addr
	eventually(t, 60*time.Second, "the Service's EXTERNAL-IPs", func(ctx context.Context) error {
		if err := l.Kube.Get(ctx, client.ObjectKeyFromObject(svc), svc); err != nil {
			return err
		}
		ips = ips[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, netip.MustParseAddr(in.IP))
		}
		if len(ips) != 2 {
			return fmt.Errorf("ingress %v", svc.Status.LoadBalancer.Ingress)
		}
		return nil
	})
	pool := []netip.Prefix{netip.MustParsePrefix("192.0.2.240/28"), netip.MustParsePrefix("2001:db8::240/124")}
	for _, ip := range ips {
		if !slices.ContainsFunc(pool, func(p netip.Prefix) bool { return p.Contains(ip) }) {
			t.Errorf("%s is not from the README's pool %v", ip, pool)
		}
		eventually(t, 60*time.Second, fmt.Sprintf("the client reaches %s", ip), func(ctx context.Context) error {
			r, err := getFrom(ctx, l.ClientNetns, ip, 80, time.Second)
			if err == nil {
				t.Logf("client → %s → pod %s", ip, r.Pod)
			}
			return err
		})
	}
	// The speakers' Events arrive, written through their paced recorder under the chart's RBAC.
	eventually(t, 30*time.Second, "an Announcing Event from a speaker about apps/web", func(ctx context.Context) error {
		var evs eventsv1.EventList
		if err := l.Kube.List(ctx, &evs, client.InNamespace("apps")); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.ReportingController == "vipcast-speaker" && e.Reason == "Announcing" && e.Regarding.Name == "web" {
				return nil
			}
		}
		return fmt.Errorf("%d Events, none from a speaker", len(evs.Items))
	})
	for _, p := range h.procs {
		if !strings.Contains(p.Name, "speaker") {
			continue
		}
		if caps := capEff(t, p); caps != 1<<13 { // CAP_NET_RAW
			t.Errorf("%s runs with capabilities %#x, want only NET_RAW (0x2000)", p.Name, caps)
		}
	}
	for _, p := range h.procs {
		if strings.Contains(p.Name, "controller") {
			if caps := capEff(t, p); caps != 0 {
				t.Errorf("%s runs with capabilities %#x, want none", p.Name, caps)
			}
		}
	}
}

// capEff reads a running program's effective capabilities from /proc.
func capEff(t *testing.T, p *lab.Process) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			var caps uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%x", &caps); err != nil {
				t.Fatal(err)
			}
			return caps
		}
	}
	t.Fatalf("no CapEff for %s", p.Name)
	return 0
}

// bgpWithPassword: a BGPPeer whose MD5 password is in the Secret namespace the chart allows
// establishes from every node, with BFD; one pointing at a Secret elsewhere gets no session,
// and every speaker says it cannot read that Secret.
func (h *chartRun) bgpWithPassword() {
	t, l := h.t, h.l
	ctx := t.Context()
	if err := l.Router.Configure(ctx, lab.BIRD, lab.RouterOptions{Password: "md5-secret-in-chart-test", BFD: true}); err != nil {
		t.Fatal(err)
	}
	peer := func(name, ns, secret string) *v1alpha1.BGPPeer {
		return &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BGPPeerSpec{
			MyASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: l.Router.IPv4.String(),
			PasswordSecret: &v1alpha1.SecretKeyReference{Namespace: ns, Name: secret}, BFD: &v1alpha1.BFDSettings{Enabled: true}}}
	}
	for _, o := range []client.Object{peer("tor", chartNS, "tor-password"), peer("forbidden", "elsewhere", "unrelated")} {
		if err := l.Kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, "every node's session to the router is Established with BFD Up, none to the forbidden peer", func(ctx context.Context) error {
		for _, n := range l.Nodes {
			var st v1alpha1.SpeakerStatus
			if err := l.Kube.Get(ctx, client.ObjectKey{Name: n.Name}, &st); err != nil {
				return err
			}
			states := map[string]string{}
			for _, s := range st.Status.Sessions {
				states[s.Peer] = s.State + "/BFD " + s.BFD + "/" + s.Reason
			}
			if states["tor"] != "Established/BFD Up/" || states["forbidden"] != "/BFD /"+v1alpha1.SessionReasonSecretNotFound {
				return fmt.Errorf("%s: sessions %v", n.Name, states)
			}
		}
		t.Logf("every node: session to the router Established, BFD Up; no session for the forbidden peer, whose Secret it cannot read")
		return nil
	})
}

// noSecretsInLogs: no log line of the programs (at debug level) holds the BGP password,
// the gossip key (base64 or raw), or any of the lab's private keys.
func (h *chartRun) noSecretsInLogs(gossip string) {
	h.t.Helper()
	raw, _ := base64.StdEncoding.DecodeString(gossip)
	secrets := map[string]string{"BGP password": "md5-secret-in-chart-test", "unrelated Secret": "not-for-vipcast",
		"gossip key": gossip, "gossip key (raw)": string(raw), "private key": "PRIVATE KEY"}
	for _, p := range h.procs {
		b, err := os.ReadFile(p.Log)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(b) < 200 {
			h.t.Errorf("%s logged only %d bytes: the scan would prove nothing", p.Name, len(b))
		}
		for what, s := range secrets {
			if strings.Contains(string(b), s) {
				h.t.Errorf("%s logged the %s", p.Name, what)
			}
		}
	}
}

// nothingLeft: after uninstall none of the release's objects remain; the CRDs do (Helm
// keeps them by design), and so do the pools users created.
func (h *chartRun) nothingLeft(objs []*unstructured.Unstructured) {
	h.t.Helper()
	for _, o := range objs {
		eventually(h.t, 60*time.Second, fmt.Sprintf("%s %s is gone", o.GetKind(), o.GetName()), func(ctx context.Context) error {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(o.GroupVersionKind())
			err := h.l.Kube.Get(ctx, client.ObjectKeyFromObject(o), got)
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%w)", err)
		})
	}
	if err := h.l.Kube.Get(h.t.Context(), client.ObjectKey{Name: "ipaddresspools.vipcast.io"}, crd()); err != nil {
		h.t.Errorf("the CRDs should stay after uninstall: %v", err)
	}
}
