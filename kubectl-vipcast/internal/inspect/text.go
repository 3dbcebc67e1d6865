package inspect

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteExplanation writes e for a person.
func WriteExplanation(w io.Writer, e *Explanation) {
	fmt.Fprintf(w, "Service %s\n", e.Service)
	fmt.Fprintf(w, "  %s\n", e.Why)
	if !e.Handled {
		return
	}
	fmt.Fprintf(w, "Allocation: %s\n", e.Allocation)
	if len(e.Pools) > 0 {
		fmt.Fprintln(w, "Pools, in the order they are tried:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, p := range e.Pools {
			fmt.Fprintf(tw, "  %s\t%s\n", p.Pool, p.Verdict)
		}
		tw.Flush()
	} else {
		fmt.Fprintln(w, "Pools: none (create an IPAddressPool)")
	}
	if len(e.Addresses) == 0 {
		fmt.Fprintln(w, "Addresses: none")
	}
	for _, a := range e.Addresses {
		fmt.Fprintf(w, "Address %s: %s\n", a.Address, a.Words)
	}
	if e.Announced != "" {
		fmt.Fprintf(w, "Announced: %s\n", e.Announced)
	}
}

// WriteWhatIf writes w for a person.
func WriteWhatIf(out io.Writer, w *WhatIf) {
	what := map[string]string{"node-down": "goes down (its speaker and its endpoints gone)", "drain": "is drained (its endpoints gone, its speaker running)"}[w.Event]
	fmt.Fprintf(out, "If %s %s:\n", w.Node, what)
	if len(w.Moves) == 0 {
		fmt.Fprintln(out, "  no address moves over layer 2")
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ADDRESS\tFROM\tTO\tSERVICES")
		for _, m := range w.Moves {
			to := m.To
			if to == "" {
				to = "nobody: " + ReasonWords(m.Reason)
			}
			from := m.From
			if from == "" {
				from = "nobody"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", m.Address, from, to, strings.Join(m.Services, ", "))
		}
		tw.Flush()
	}
	if w.BGPWithdrawn > 0 {
		fmt.Fprintf(out, "  %d BGP routes withdrawn from %s's sessions (the other nodes' routes stay)\n", w.BGPWithdrawn, w.Node)
	}
	if len(w.Dark) == 0 {
		fmt.Fprintln(out, "  no Service goes dark")
		return
	}
	fmt.Fprintln(out, "Services that go dark:")
	for _, d := range w.Dark {
		fmt.Fprintf(out, "  %s: %s\n", d.Service, d.Why)
	}
}
