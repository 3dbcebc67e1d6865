package allocator

import (
	"strings"
	"testing"

	"github.com/vipcast/vipcast/api/v1alpha1"
)

func shareWith(ns ...string) reqOpt { return func(r *Request) { r.ShareNamespaces = ns } }

// TestTenancy: a pool's serviceAllocation binds named pools and requested addresses too,
// and a sharing key binds one namespace unless both sides consent.
func TestTenancy(t *testing.T) {
	reserved := mkPool("reserved", []string{"192.0.2.0/30"}, namespaces("team-a"), noAutoAssign)
	open := mkPool("open", []string{"198.51.100.0/30"})
	tests := []struct {
		name  string
		pools []v1alpha1.IPAddressPool
		steps []step
	}{
		{
			name:  "a named pool that does not admit the namespace is refused",
			pools: []v1alpha1.IPAddressPool{reserved, open},
			steps: []step{
				assignStep(mkReq("team-a/web", inNamespace("team-a"), inPool("reserved")), "192.0.2.0"),
				failStep(mkReq("tenant/x", inNamespace("tenant"), inPool("reserved")), ReasonNotAllowedByPool),
				// The refused Service waits for a pool change, not for freed addresses.
				{release: "team-a/web", want: []string{"192.0.2.0"}, woken: []string{}},
			},
		},
		{
			name:  "a requested address of a pool that does not admit the namespace is refused",
			pools: []v1alpha1.IPAddressPool{reserved, open},
			steps: []step{
				failStep(mkReq("tenant/x", inNamespace("tenant"), wantIPs("192.0.2.1")), ReasonNotAllowedByPool),
				assignStep(mkReq("team-a/web", inNamespace("team-a"), wantIPs("192.0.2.1")), "192.0.2.1"),
				// Freeing the address does not wake the refused tenant: it cannot help it.
				{release: "team-a/web", want: []string{"192.0.2.1"}, woken: []string{}},
				assignStep(mkReq("team-a/web", inNamespace("team-a"), wantIPs("192.0.2.1")), "192.0.2.1"),
				// A tenant that held an address keeps it when it asks for a reserved one.
				assignStep(mkReq("tenant/y", inNamespace("tenant")), "198.51.100.0"),
				failStep(mkReq("tenant/y", inNamespace("tenant"), wantIPs("192.0.2.2")), ReasonNotAllowedByPool, "198.51.100.0"),
				failStep(mkReq("tenant/y", inNamespace("tenant"), inPool("reserved")), ReasonNotAllowedByPool, "198.51.100.0"),
			},
		},
		{
			name:  "a pool that stops admitting a holder lets it keep its address",
			pools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/30", "2001:db8::/126"})},
			steps: []step{
				assignStep(mkReq("tenant/x", inNamespace("tenant")), "192.0.2.0"),
				// The holder is woken, so its status can say it is no longer admitted.
				{setPools: []v1alpha1.IPAddressPool{mkPool("p", []string{"192.0.2.0/30", "2001:db8::/126"}, namespaces("team-a"))}, woken: []string{"tenant/x"}},
				assignStep(mkReq("tenant/x", inNamespace("tenant")), "192.0.2.0"),
				// ...but it gets no second family from that pool.
				assignStep(mkReq("tenant/x", inNamespace("tenant"), v4v6, policy(PreferDualStack)), "192.0.2.0"),
			},
		},
		{
			name:  "another namespace's sharing key shares nothing",
			pools: []v1alpha1.IPAddressPool{open},
			steps: []step{
				assignStep(mkReq("victim/web", inNamespace("victim"), share("k", 80)), "198.51.100.0"),
				// Automatic choice: the key binds only the tenant's namespace, so a fresh address.
				assignStep(mkReq("tenant/x", inNamespace("tenant"), share("k", 443)), "198.51.100.1"),
				// Asking for the victim's address under its key is refused, with the reason.
				failStep(mkReq("tenant/y", inNamespace("tenant"), share("k", 8443), wantIPs("198.51.100.0")), ReasonSharingNotAllowed),
				// One-sided consent is not enough.
				failStep(mkReq("tenant/z", inNamespace("tenant"), share("k", 8080), shareWith("victim"), wantIPs("198.51.100.0")), ReasonSharingNotAllowed),
				// A full pool: the other namespace's holder of the key is no clash of the
				// tenant's, so the reason is the pool, not sharing.
				assignStep(mkReq("victim/b", inNamespace("victim")), "198.51.100.2"),
				assignStep(mkReq("victim/c", inNamespace("victim")), "198.51.100.3"),
				failStep(mkReq("other/w", inNamespace("other"), share("k", 80)), ReasonPoolExhausted),
				// Same namespace, same key: shares as before.
				assignStep(mkReq("victim/api", inNamespace("victim"), share("k", 443)), "198.51.100.0"),
			},
		},
		{
			name:  "both namespaces consent: they share",
			pools: []v1alpha1.IPAddressPool{open},
			steps: []step{
				assignStep(mkReq("a/web", inNamespace("a"), share("k", 80), shareWith("b")), "198.51.100.0"),
				assignStep(mkReq("b/api", inNamespace("b"), share("k", 443), shareWith("a")), "198.51.100.0"),
				// A third namespace needs consent from every holder: a lists only b.
				assignStep(mkReq("c/dns", inNamespace("c"), share("k", 53), shareWith(AnyNamespace)), "198.51.100.1"),
				failStep(mkReq("c/ntp", inNamespace("c"), share("k", 123), shareWith(AnyNamespace), wantIPs("198.51.100.0")), ReasonSharingNotAllowed),
			},
		},
		{
			name:  "a wildcard consents to every namespace",
			pools: []v1alpha1.IPAddressPool{open},
			steps: []step{
				assignStep(mkReq("a/web", inNamespace("a"), share("k", 80), shareWith(AnyNamespace)), "198.51.100.0"),
				assignStep(mkReq("b/api", inNamespace("b"), share("k", 443), shareWith("a")), "198.51.100.0"),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, New(snap(tc.pools...)), tc.steps)
		})
	}
}

func TestNotAllowedMessageNamesThePool(t *testing.T) {
	a := New(snap(mkPool("reserved", []string{"192.0.2.0/30"}, namespaces("team-a", "team-b"))))
	_, err := a.Assign(mkReq("tenant/x", inNamespace("tenant"), inPool("reserved")))
	want := "NotAllowedByPool: IPAddressPool reserved does not admit this Service (its serviceAllocation admits namespaces team-a, team-b)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	_, err = a.Assign(mkReq("tenant/y", inNamespace("tenant"), wantIPs("192.0.2.1")))
	if err == nil || !strings.Contains(err.Error(), "IPAddressPool reserved does not admit") {
		t.Fatalf("error %v, want the pool named", err)
	}
}
