package inspect

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/internal/planner"
)

// Status is the cluster on one screen.
type Status struct {
	Pools    []PoolStatus   `json:"pools"`
	Speakers []SpeakerState `json:"speakers"`
	Services []ServiceIssue `json:"services"`
	Counts   map[string]int `json:"counts"`
}

// PoolStatus is one pool's use and conditions.
type PoolStatus struct {
	Name    string `json:"name"`
	UsedV4  int64  `json:"usedV4"`
	FreeV4  int64  `json:"freeV4"`
	UsedV6  int64  `json:"usedV6"`
	FreeV6  int64  `json:"freeV6"`
	Ready   string `json:"ready"`
	Problem string `json:"problem,omitempty"`
}

// SpeakerState is one node's speaker as it reports itself.
type SpeakerState struct {
	Node      string   `json:"node"`
	Ready     string   `json:"ready"`
	Members   int      `json:"members"`
	Announced int32    `json:"announced"`
	Sessions  []string `json:"sessions,omitempty"`
	Conflicts []string `json:"conflicts,omitempty"`
}

// ServiceIssue is a handled Service not allocated or not announced.
type ServiceIssue struct {
	Service string `json:"service"`
	Problem string `json:"problem"`
}

// Summarize makes the Status of c.
func Summarize(c *Cluster) *Status {
	st := &Status{Pools: []PoolStatus{}, Speakers: []SpeakerState{}, Services: []ServiceIssue{}, Counts: map[string]int{}}
	for _, p := range c.Pools {
		ps := PoolStatus{Name: p.Name, UsedV4: p.Status.AssignedIPv4, FreeV4: p.Status.AvailableIPv4, UsedV6: p.Status.AssignedIPv6, FreeV6: p.Status.AvailableIPv6, Ready: "Unknown"}
		if r := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolReady); r != nil {
			ps.Ready = string(r.Status)
			if r.Status != metav1.ConditionTrue {
				ps.Problem = r.Reason + ": " + r.Message
			}
		}
		if cf := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolConflicting); cf != nil && cf.Status == metav1.ConditionTrue {
			ps.Problem = strings.TrimPrefix(ps.Problem+"; ", "; ") + "conflicting: " + cf.Message
		}
		st.Pools = append(st.Pools, ps)
	}
	for _, s := range c.Speakers {
		ss := SpeakerState{Node: s.Name, Ready: "Unknown", Members: len(s.Status.Members), Announced: s.Status.AnnouncedCount}
		if r := meta.FindStatusCondition(s.Status.Conditions, "Ready"); r != nil {
			ss.Ready = string(r.Status)
			if r.Status != metav1.ConditionTrue {
				ss.Ready += " (" + r.Reason + ")"
			}
		}
		for _, sess := range s.Status.Sessions {
			x := sess.Peer + " " + sess.State
			if sess.BFD != "" {
				x += ", BFD " + sess.BFD
			}
			ss.Sessions = append(ss.Sessions, x)
		}
		for _, cf := range s.Status.Conflicts {
			ss.Conflicts = append(ss.Conflicts, cf.IP+" also claimed by "+cf.MAC)
		}
		st.Speakers = append(st.Speakers, ss)
	}
	for i := range c.Services {
		s := &c.Services[i]
		if !planner.Handled(s, c.LBClass) {
			continue
		}
		st.Counts["services"]++
		key := s.Namespace + "/" + s.Name
		a := condition(s.Status.Conditions, v1alpha1.ConditionIPAllocated)
		n := condition(s.Status.Conditions, v1alpha1.ConditionAnnounced)
		switch {
		case a == nil:
			st.Services = append(st.Services, ServiceIssue{key, "not handled by the controller yet"})
		case a.Status != metav1.ConditionTrue:
			st.Services = append(st.Services, ServiceIssue{key, "not allocated: " + a.Reason + ": " + a.Message})
		case n == nil || n.Status != metav1.ConditionTrue:
			why := "no Announced condition yet"
			if n != nil {
				why = n.Reason + ": " + n.Message
			}
			st.Services = append(st.Services, ServiceIssue{key, "not announced: " + why})
		default:
			st.Counts["healthy"]++
		}
	}
	slices.SortFunc(st.Services, func(a, b ServiceIssue) int { return strings.Compare(a.Service, b.Service) })
	return st
}

// WriteStatus writes st for a person.
func WriteStatus(w io.Writer, st *Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POOL\tREADY\tUSED V4\tFREE V4\tUSED V6\tFREE V6\tPROBLEM")
	for _, p := range st.Pools {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.Ready, p.UsedV4, p.FreeV4, p.UsedV6, p.FreeV6, p.Problem)
	}
	tw.Flush()
	if len(st.Pools) == 0 {
		fmt.Fprintln(w, "no IPAddressPool: no Service can get an address")
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPEAKER\tREADY\tMEMBERS\tANNOUNCED\tSESSIONS\tCONFLICTS")
	for _, s := range st.Speakers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", s.Node, s.Ready, s.Members, s.Announced, strings.Join(s.Sessions, "; "), strings.Join(s.Conflicts, "; "))
	}
	tw.Flush()
	if len(st.Speakers) == 0 {
		fmt.Fprintln(w, "no speaker has reported: nothing is announced")
	}
	fmt.Fprintf(w, "\n%d LoadBalancer Services, %d allocated and announced", st.Counts["services"], st.Counts["healthy"])
	if len(st.Services) == 0 {
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintln(w, "; the others:")
	for _, s := range st.Services {
		fmt.Fprintf(w, "  %s: %s\n", s.Service, s.Problem)
	}
}

// Healthy tells whether every pool and speaker is Ready, with no conflict, and every
// Service allocated and announced.
func (st *Status) Healthy() bool {
	for _, p := range st.Pools {
		if p.Ready != "True" || p.Problem != "" {
			return false
		}
	}
	for _, s := range st.Speakers {
		if s.Ready != "True" || len(s.Conflicts) > 0 {
			return false
		}
	}
	return len(st.Services) == 0 && len(st.Speakers) > 0
}
