package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/test/lab"
)

// routerPeers are the BGPPeers bgpLab makes.
var routerPeers = []string{"router-v4", "router-v6"}

// testPasswords: pointed at a Secret holding another password, no session comes up (the
// router drops the unsigned segments); pointed at a Secret that does not exist, the speakers
// skip the peers and `kubectl get bgppeer` shows Accepted False, SecretNotFound; pointed back,
// the sessions return.
func testPasswords(t *testing.T, kind lab.RouterKind) {
	ctx := t.Context()
	wrong := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "router-md5-wrong"},
		StringData: map[string]string{"password": "not-the-router's"}}
	if err := cluster.Kube.Create(ctx, wrong); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cluster.Kube.Delete(context.Background(), wrong); err != nil {
			t.Error(err)
		}
	}()
	point := func(secret string) {
		t.Helper()
		for _, name := range routerPeers {
			var p v1alpha1.BGPPeer
			if err := cluster.Kube.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
				t.Fatal(err)
			}
			patch := client.MergeFrom(p.DeepCopy())
			p.Spec.PasswordSecret.Name = secret
			if err := cluster.Kube.Patch(ctx, &p, patch); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer func() {
		point(md5Secret)
		sessionsAre(t, 60*time.Second, func(s v1alpha1.BGPSessionStatus) bool { return s.State == "Established" && s.Reason == "" })
	}()

	point(wrong.Name)
	// Configured (a state, no problem) and not Established.
	sessionsAre(t, 30*time.Second, func(s v1alpha1.BGPSessionStatus) bool {
		return s.State != "" && s.State != "Established" && s.Reason == ""
	})
	// Eight connection attempts each (connectTime 1s): none gets through.
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		for _, n := range cluster.Nodes {
			for _, s := range speakerStatus(ctx, n.Name).Sessions {
				if s.State == "Established" {
					t.Fatalf("%s established a session to %s with the wrong password", n.Name, s.Peer)
				}
			}
		}
	}
	t.Logf("%s: wrong password: no session in 8 s; %s reports %+v", kind, cluster.Nodes[0].Name, speakerStatus(ctx, cluster.Nodes[0].Name).Sessions)

	point("router-md5-missing")
	sessionsAre(t, 30*time.Second, func(s v1alpha1.BGPSessionStatus) bool {
		return s.State == "" && s.Reason == v1alpha1.SessionReasonSecretNotFound
	})
	eventually(t, 30*time.Second, "kubectl get bgppeer shows SecretNotFound", func(ctx context.Context) error {
		out, err := kubectl(ctx, "get", "bgppeer", "router-v4")
		if err == nil && !(strings.Contains(out, "False") && strings.Contains(out, v1alpha1.SessionReasonSecretNotFound)) {
			err = fmt.Errorf("kubectl get bgppeer:\n%s", out)
		}
		return err
	})
	out, _ := kubectl(ctx, "get", "bgppeer")
	t.Logf("missing Secret:\n%s", out)
}

// sessionsAre waits until every node reports both router sessions and each satisfies ok.
func sessionsAre(t *testing.T, timeout time.Duration, ok func(v1alpha1.BGPSessionStatus) bool) {
	t.Helper()
	eventually(t, timeout, "the nodes' sessions", func(ctx context.Context) error {
		for _, n := range cluster.Nodes {
			st := speakerStatus(ctx, n.Name)
			if len(st.Sessions) != len(routerPeers) {
				return fmt.Errorf("%s: sessions %+v", n.Name, st.Sessions)
			}
			for _, s := range st.Sessions {
				if !ok(s) {
					return fmt.Errorf("%s: session %+v", n.Name, s)
				}
			}
		}
		return nil
	})
}

// kubectl runs bin/kubectl against the lab as its administrator.
func kubectl(ctx context.Context, args ...string) (string, error) {
	root, err := lab.RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bin", "kubectl"), append([]string{"--kubeconfig", cluster.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
