package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// summary collects the figures for the table printed at the end: one row per figure, one
// column per announcement mode.
type summary struct {
	rows []row
}

type row struct {
	part, figure string
	value        map[string]string // by mode
}

// set records a figure of a part for a mode.
func (s *summary) set(part, figure, mode, value string) {
	for i := range s.rows {
		if s.rows[i].part == part && s.rows[i].figure == figure {
			s.rows[i].value[mode] = value
			return
		}
	}
	s.rows = append(s.rows, row{part: part, figure: figure, value: map[string]string{mode: value}})
}

// print writes the table and what its figures mean.
func (s *summary) print(w io.Writer, cfg *config) {
	if len(s.rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSummary: lab %d, no kube-proxy on the nodes (announced addresses carry no traffic), pool %s, cluster IPs also from %s\n",
		cfg.index, strings.Join(rangeStrings(), ", "), strings.Join(clusterIPRanges, ", "))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "part\tfigure\tL2\tBGP (FRR)")
	fmt.Fprintln(tw, "----\t------\t--\t---------")
	for _, r := range s.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.part, r.figure, orDash(r.value[modeL2]), orDash(r.value[modeBGP]))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, `Announced: L2 = the address's first claim on the wire seen from the router's fabric port (the
owner's gratuitous ARP, or its answer to the router's ARP request; a raw socket in the router's
namespace); BGP = the prefix in FRR's RIB (creation: all N from each of the 3 nodes; steady: from
one node). CPU = utime + stime from /proc/<pid>/stat; RSS = VmHWM from /proc/<pid>/status.`)
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func rangeStrings() []string {
	out := make([]string, len(poolRanges))
	for i, r := range poolRanges {
		out[i] = string(r)
	}
	return out
}
