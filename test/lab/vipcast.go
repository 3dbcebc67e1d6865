package lab

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/addrset"
)

// Announcers lists the nodes whose SpeakerStatus says they announce addr over layer 2. A
// powered-off node's last report stays, as it would in a real cluster.
func (l *Lab) Announcers(ctx context.Context, addr netip.Addr) ([]string, error) {
	var list v1alpha1.SpeakerStatusList
	if err := l.Kube.List(ctx, &list); err != nil {
		return nil, err
	}
	var out []string
	for _, st := range list.Items {
		for _, set := range st.Status.Announced {
			if set.Mode != v1alpha1.ModeL2 {
				continue
			}
			addrs, err := addrset.Decode(set.Addresses)
			if err != nil {
				return nil, fmt.Errorf("SpeakerStatus %s: %w", st.Name, err)
			}
			if _, found := slices.BinarySearchFunc(addrs, addr, netip.Addr.Compare); found {
				out = append(out, st.Name)
				break
			}
		}
	}
	return out, nil
}

// ArpingMACs lists the MAC of every reply Debian's arping printed ("60 bytes from <mac>
// (<ip>): index=0 time=…"), in order.
func ArpingMACs(out string) []string {
	var macs []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[1] == "bytes" && f[2] == "from" {
			macs = append(macs, f[3])
		}
	}
	return macs
}
