package lab

import (
	"context"
	"net/netip"

	"github.com/vipcast/vipcast/api/v1alpha1"
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
		for _, a := range st.Status.Announcements {
			if a.IP == addr.String() && a.Mode == v1alpha1.ModeL2 {
				out = append(out, st.Name)
			}
		}
	}
	return out, nil
}
