package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/controller/internal/app"
)

// badSelector passes the API server's checks but not the label syntax: the speakers skip
// the object.
var badSelector = []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "not a label value"}}}

// accepted is what a test expects of an object's Accepted condition.
type accepted struct {
	status metav1.ConditionStatus
	reason string
	says   string // in the message
}

// create creates obj and deletes it when the test ends.
func create(t *testing.T, obj client.Object) {
	t.Helper()
	must(t, k8s.Create(context.Background(), obj))
	t.Cleanup(func() { _ = client.IgnoreNotFound(k8s.Delete(context.Background(), obj)) })
}

// waitAccepted waits until the object's Accepted condition is as wanted, for its current
// generation, and returns it.
func waitAccepted(t *testing.T, obj client.Object, want accepted) metav1.Condition {
	t.Helper()
	var c metav1.Condition
	eventually(t, fmt.Sprintf("%s Accepted %s/%s", obj.GetName(), want.status, want.reason), func() (bool, string) {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err.Error()
		}
		var conds []metav1.Condition
		switch o := obj.(type) {
		case *v1alpha1.L2Advertisement:
			conds = o.Status.Conditions
		case *v1alpha1.BGPAdvertisement:
			conds = o.Status.Conditions
		case *v1alpha1.BGPPeer:
			conds = o.Status.Conditions
		}
		got := meta.FindStatusCondition(conds, v1alpha1.ConditionAccepted)
		if got == nil {
			return false, "no condition"
		}
		c = *got
		return got.Status == want.status && got.Reason == want.reason && strings.Contains(got.Message, want.says) &&
			got.ObservedGeneration == obj.GetGeneration(), fmt.Sprintf("%+v", *got)
	})
	return c
}

// speakerReport writes a SpeakerStatus as a speaker does (the report through the status
// subresource) and deletes it when the test ends.
func speakerReport(t *testing.T, node string, members []string, sessions ...v1alpha1.BGPSessionStatus) *v1alpha1.SpeakerStatus {
	t.Helper()
	st := &v1alpha1.SpeakerStatus{ObjectMeta: metav1.ObjectMeta{Name: node},
		Status: v1alpha1.SpeakerReport{Members: members, Sessions: sessions}}
	must(t, createWithStatus(context.Background(), st))
	t.Cleanup(func() { _ = client.IgnoreNotFound(k8s.Delete(context.Background(), st)) })
	return st
}

// Every reason an advertisement or a peer is not in effect shows in its Accepted condition
// and in `kubectl get`, and goes away when the cause does.
func TestAcceptedConditions(t *testing.T) {
	ctx := context.Background()
	parent := t
	stop := startController(t, app.Options{})
	i32 := func(v int32) *int32 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	createPool(t, "acc-web", []string{"203.0.113.96/28"})
	peer := func(name string, peerASN uint32, mutate ...func(*v1alpha1.BGPPeerSpec)) *v1alpha1.BGPPeer {
		p := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: peerASN, PeerAddress: "192.0.2.1"}}
		for _, m := range mutate {
			m(&p.Spec)
		}
		create(t, p)
		return p
	}
	l2 := func(name string, spec v1alpha1.L2AdvertisementSpec) *v1alpha1.L2Advertisement {
		a := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
		create(t, a)
		return a
	}
	bgp := func(name string, spec v1alpha1.BGPAdvertisementSpec) *v1alpha1.BGPAdvertisement {
		a := &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
		create(t, a)
		return a
	}
	ibgp := peer("acc-ibgp", 64512)
	ebgp := peer("acc-ebgp", 64513)
	badPeer := peer("acc-badsel", 64513, func(s *v1alpha1.BGPPeerSpec) { s.NodeSelectors = badSelector })
	secret := peer("acc-secret", 64513, func(s *v1alpha1.BGPPeerSpec) {
		s.PasswordSecret = &v1alpha1.SecretKeyReference{Namespace: "vipcast-system", Name: "acc-bgp-password"}
	})
	invalid := peer("acc-invalid", 64513)
	nodes := []string{"acc-node-a", "acc-node-b"}
	noSecret := func(state string) v1alpha1.BGPSessionStatus {
		return v1alpha1.BGPSessionStatus{Peer: secret.Name, State: state, Reason: v1alpha1.SessionReasonSecretNotFound,
			Message: "Secret vipcast-system/acc-bgp-password not found"}
	}
	reportA := speakerReport(t, "acc-node-a", nodes, noSecret("Established"), v1alpha1.BGPSessionStatus{Peer: ebgp.Name, State: "Established"})
	speakerReport(t, "acc-node-b", nodes, noSecret("Active"), v1alpha1.BGPSessionStatus{Peer: ebgp.Name, State: "Active"},
		v1alpha1.BGPSessionStatus{Peer: invalid.Name, Reason: v1alpha1.SessionReasonInvalidPeer, Message: "sourceAddress is not on this node"})

	l2OK := l2("acc-l2-ok", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"acc-web"}})
	l2NoPool := l2("acc-l2-nopool", v1alpha1.L2AdvertisementSpec{IPAddressPools: []string{"acc-later"}})
	l2BadSel := l2("acc-l2-badsel", v1alpha1.L2AdvertisementSpec{NodeSelectors: badSelector})
	bgpOK := bgp("acc-bgp-ok", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"acc-web"}, Peers: []string{ibgp.Name}, AggregationLength: i32(28), LocalPref: u32(100)})
	bgpNoPool := bgp("acc-bgp-nopool", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"acc-gone"}, Peers: []string{ibgp.Name}})
	bgpNoPeer := bgp("acc-bgp-nopeer", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"acc-web"}, Peers: []string{"acc-spine"}})
	bgpAgg := bgp("acc-bgp-agg", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"acc-web"}, Peers: []string{ibgp.Name}, AggregationLength: i32(24)})
	bgpLP := bgp("acc-bgp-lp", v1alpha1.BGPAdvertisementSpec{IPAddressPools: []string{"acc-web"}, Peers: []string{ibgp.Name, ebgp.Name}, LocalPref: u32(200)})
	bgpBadSel := bgp("acc-bgp-badsel", v1alpha1.BGPAdvertisementSpec{ServiceSelectors: badSelector})

	for _, tc := range []struct {
		obj  client.Object
		want accepted
	}{
		{l2OK, accepted{metav1.ConditionTrue, "Accepted", ""}},
		{l2NoPool, accepted{metav1.ConditionFalse, "PoolNotFound", "IPAddressPool acc-later"}},
		{l2BadSel, accepted{metav1.ConditionFalse, "InvalidSelector", "nodeSelectors[0]"}},
		{bgpOK, accepted{metav1.ConditionTrue, "Accepted", ""}},
		{bgpNoPool, accepted{metav1.ConditionFalse, "PoolNotFound", "IPAddressPool acc-gone"}},
		{bgpNoPeer, accepted{metav1.ConditionFalse, "PeerNotFound", "BGPPeer acc-spine"}},
		{bgpAgg, accepted{metav1.ConditionFalse, "AggregationTooWide", "shorter than the /28 pool acc-web allows"}},
		{bgpLP, accepted{metav1.ConditionFalse, "LocalPrefOnEBGP", "not sent to the eBGP peer(s) acc-ebgp"}},
		{bgpBadSel, accepted{metav1.ConditionFalse, "InvalidSelector", "serviceSelectors[0]"}},
		{ibgp, accepted{metav1.ConditionTrue, "Accepted", "0 of the 0 nodes"}},
		{ebgp, accepted{metav1.ConditionTrue, "Accepted", "1 of the 2 nodes"}},
		{badPeer, accepted{metav1.ConditionFalse, "InvalidSelector", "nodeSelectors[0]"}},
		{secret, accepted{metav1.ConditionFalse, "SecretNotFound",
			"the sessions from acc-node-a still run on the last password read, those from acc-node-b are not established"}},
		{invalid, accepted{metav1.ConditionFalse, "InvalidPeer", "sourceAddress is not on this node"}},
	} {
		t.Run(tc.obj.GetName(), func(t *testing.T) { waitAccepted(t, tc.obj, tc.want) })
	}
	if !strings.Contains(meta.FindStatusCondition(secret.Status.Conditions, v1alpha1.ConditionAccepted).Message, "vipcast-system/acc-bgp-password") {
		t.Errorf("the message does not name the Secret: %+v", secret.Status.Conditions)
	}
	if secret.Status.EstablishedNodes != 1 || secret.Status.Nodes != 2 {
		t.Errorf("acc-secret established on %d of %d nodes, want 1 of 2", secret.Status.EstablishedNodes, secret.Status.Nodes)
	}

	t.Run("columns", func(t *testing.T) {
		wantCells := map[string]map[string]map[string]string{
			"l2advertisements": {
				"acc-l2-ok":     {"Accepted": "True", "Reason": "Accepted"},
				"acc-l2-nopool": {"Accepted": "False", "Reason": "PoolNotFound"},
				"acc-l2-badsel": {"Accepted": "False", "Reason": "InvalidSelector"},
			},
			"bgpadvertisements": {
				"acc-bgp-ok":     {"Accepted": "True", "Reason": "Accepted"},
				"acc-bgp-nopool": {"Accepted": "False", "Reason": "PoolNotFound"},
				"acc-bgp-nopeer": {"Accepted": "False", "Reason": "PeerNotFound"},
				"acc-bgp-agg":    {"Accepted": "False", "Reason": "AggregationTooWide"},
				"acc-bgp-lp":     {"Accepted": "False", "Reason": "LocalPrefOnEBGP"},
				"acc-bgp-badsel": {"Accepted": "False", "Reason": "InvalidSelector"},
			},
			"bgppeers": {
				"acc-ibgp":    {"Accepted": "True", "Reason": "Accepted", "Established": "0", "Nodes": "0"},
				"acc-ebgp":    {"Accepted": "True", "Reason": "Accepted", "Established": "1", "Nodes": "2"},
				"acc-badsel":  {"Accepted": "False", "Reason": "InvalidSelector"},
				"acc-secret":  {"Accepted": "False", "Reason": "SecretNotFound", "Established": "1", "Nodes": "2"},
				"acc-invalid": {"Accepted": "False", "Reason": "InvalidPeer", "Established": "0", "Nodes": "1"},
			},
		}
		for resource, rows := range wantCells {
			tab := table(t, resource)
			for name, cols := range rows {
				for col, v := range cols {
					if tab[name][col] != v {
						t.Errorf("%s %s: %s = %q, want %q (row %v)", resource, name, col, tab[name][col], v, tab[name])
					}
				}
				if cols["Accepted"] == "False" && tab[name]["Message"] == "" {
					t.Errorf("%s %s: no Message in the wide table: %v", resource, name, tab[name])
				}
			}
		}
	})

	t.Run("a restart writes nothing", func(t *testing.T) {
		stop()
		before := map[string]string{}
		objs := []client.Object{l2OK, l2NoPool, bgpOK, bgpAgg, ebgp, secret}
		for _, o := range objs {
			must(t, k8s.Get(ctx, client.ObjectKeyFromObject(o), o))
			before[o.GetName()] = o.GetResourceVersion()
		}
		startController(parent, app.Options{}) // runs on for the subtests after this one
		// The restarted controller has judged everything once another change is seen.
		createPool(t, "acc-later", []string{"203.0.113.112/28"})
		waitAccepted(t, l2NoPool, accepted{metav1.ConditionTrue, "Accepted", ""})
		time.Sleep(500 * time.Millisecond)
		for _, o := range objs {
			if o.GetName() == l2NoPool.Name {
				continue
			}
			must(t, k8s.Get(ctx, client.ObjectKeyFromObject(o), o))
			if o.GetResourceVersion() != before[o.GetName()] {
				t.Errorf("%s was written again after the restart", o.GetName())
			}
		}
	})

	t.Run("causes fixed", func(t *testing.T) {
		was := waitAccepted(t, bgpNoPeer, accepted{metav1.ConditionFalse, "PeerNotFound", ""})
		peer("acc-spine", 64512)
		now := waitAccepted(t, bgpNoPeer, accepted{metav1.ConditionTrue, "Accepted", ""})
		if !now.LastTransitionTime.After(was.LastTransitionTime.Time) && !now.LastTransitionTime.Equal(&was.LastTransitionTime) {
			t.Errorf("lastTransitionTime went back: %v then %v", was.LastTransitionTime, now.LastTransitionTime)
		}
		update(t, bgpAgg, func(a *v1alpha1.BGPAdvertisement) { a.Spec.AggregationLength = i32(28) })
		waitAccepted(t, bgpAgg, accepted{metav1.ConditionTrue, "Accepted", ""})
		// The speaker on b reads the Secret again; a still cannot.
		b := &v1alpha1.SpeakerStatus{}
		must(t, k8s.Get(ctx, client.ObjectKey{Name: "acc-node-b"}, b))
		b.Status.Sessions[0] = v1alpha1.BGPSessionStatus{Peer: secret.Name, State: "Established"}
		must(t, k8s.Status().Update(ctx, b))
		waitAccepted(t, secret, accepted{metav1.ConditionFalse, "SecretNotFound", "their sessions still run on the last password read"})
		reportA.Status.Sessions[0] = v1alpha1.BGPSessionStatus{Peer: secret.Name, State: "Established"}
		must(t, k8s.Status().Update(ctx, reportA))
		waitAccepted(t, secret, accepted{metav1.ConditionTrue, "Accepted", "2 of the 2 nodes"})
		if secret.Status.EstablishedNodes != 2 || secret.Status.Nodes != 2 {
			t.Errorf("acc-secret established on %d of %d nodes, want 2 of 2", secret.Status.EstablishedNodes, secret.Status.Nodes)
		}
		// A node no longer listed by the other is no longer counted.
		must(t, k8s.Get(ctx, client.ObjectKey{Name: "acc-node-b"}, b))
		b.Status.Members = []string{"acc-node-b"}
		must(t, k8s.Status().Update(ctx, b))
		must(t, k8s.Get(ctx, client.ObjectKeyFromObject(reportA), reportA))
		reportA.Status.Members = []string{"acc-node-a"}
		must(t, k8s.Status().Update(ctx, reportA))
		eventually(t, "acc-secret counted from no node", func() (bool, string) {
			must(t, k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret))
			return secret.Status.Nodes == 0, fmt.Sprintf("%+v", secret.Status)
		})
	})
}
