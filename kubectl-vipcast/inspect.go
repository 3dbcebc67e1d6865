package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vipcast/vipcast/api/v1alpha1"
	"github.com/vipcast/vipcast/kubectl-vipcast/internal/inspect"
)

// inspectFlags are the flags of the commands that read vipcast's view of the cluster.
type inspectFlags struct {
	kube      kubeFlags
	namespace string
	output    string
	lbClass   string
}

// newInspectFlags is the flag set of an inspecting command with its usage text.
func newInspectFlags(name, usage string, namespaced bool, stderr io.Writer) (*flag.FlagSet, *inspectFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &inspectFlags{}
	f.bind(fs, namespaced)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs, f
}

func (f *inspectFlags) bind(fs *flag.FlagSet, namespaced bool) {
	f.kube.bind(fs)
	if namespaced {
		fs.StringVar(&f.namespace, "n", "default", "the Service's namespace")
	}
	fs.StringVar(&f.output, "o", "text", "output: text, yaml or json")
	fs.StringVar(&f.lbClass, "lb-class", "", "the loadBalancerClass the controller handles (its --lb-class; empty: Services without one)")
}

// read parses args into fs and reads the cluster.
func (f *inspectFlags) read(ctx context.Context, fs *flag.FlagSet, args []string, want int) ([]string, *inspect.Cluster, error) {
	if err := fs.Parse(args); err != nil {
		return nil, nil, parseError(err)
	}
	if fs.NArg() != want {
		return nil, nil, fmt.Errorf("%w: %s takes %d argument(s), got %v", errUsage, fs.Name(), want, fs.Args())
	}
	if f.output != "text" && f.output != "yaml" && f.output != "json" {
		return nil, nil, fmt.Errorf("%w: -o %q: text, yaml or json", errUsage, f.output)
	}
	s := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(s), v1alpha1.AddToScheme(s)); err != nil {
		return nil, nil, err
	}
	c, err := f.kube.client(client.Options{Scheme: s})
	if err != nil {
		return nil, nil, err
	}
	cl, err := inspect.Read(ctx, c, f.lbClass)
	return fs.Args(), cl, err
}

// print writes v as YAML or JSON, or calls text.
func (f *inspectFlags) print(w io.Writer, v any, text func(io.Writer)) error {
	switch f.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	text(w)
	return nil
}

func explainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 || (args[0] != "svc" && args[0] != "service" && args[0] != "services") {
		return 0, fmt.Errorf("%w: explain svc NAME [-n NAMESPACE]", errUsage)
	}
	fs, f := newInspectFlags("explain svc", "kubectl vipcast explain svc NAME [-n NAMESPACE] [flags]\n\nThe whole chain for one Service: handled or not, each pool and why it serves or not, the\naddresses, who announces each and how, or the planner's reason why nobody does.\nExit code 3 when the Service is not allocated or not announced.\n\n", true, stderr)
	rest, cl, err := f.read(ctx, fs, reorder(args[1:]), 1)
	if err != nil {
		return 0, err
	}
	e, err := inspect.Explain(cl, f.namespace, rest[0])
	if err != nil {
		return 0, err
	}
	if err := f.print(stdout, e, func(w io.Writer) { inspect.WriteExplanation(w, e) }); err != nil {
		return 0, err
	}
	if !e.Handled || !e.Allocated || !strings.HasPrefix(e.Announced, "True") {
		return exitAttention, nil
	}
	return exitOK, nil
}

func whatifCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 || (args[0] != "node-down" && args[0] != "drain") {
		return 0, fmt.Errorf("%w: whatif node-down NODE, or whatif drain NODE", errUsage)
	}
	event := args[0]
	fs, f := newInspectFlags("whatif "+event, "kubectl vipcast whatif node-down|drain NODE [flags]\n\nWhich addresses move and to whom, and which Services go dark, if the node goes down\n(its speaker and endpoints gone) or is drained (its endpoints gone), computed with the\nspeakers' planner. Exit code 3 when a Service would go dark.\n\n", false, stderr)
	rest, cl, err := f.read(ctx, fs, reorder(args[1:]), 1)
	if err != nil {
		return 0, err
	}
	var w *inspect.WhatIf
	if event == "drain" {
		w, err = inspect.Drain(cl, rest[0])
	} else {
		w, err = inspect.NodeDown(cl, rest[0])
	}
	if err != nil {
		return 0, err
	}
	if err := f.print(stdout, w, func(out io.Writer) { inspect.WriteWhatIf(out, w) }); err != nil {
		return 0, err
	}
	if len(w.Dark) > 0 {
		return exitAttention, nil
	}
	return exitOK, nil
}

// reorder puts flags before the arguments ("web -n shop" as kubectl allows), for the flag
// package, which stops at the first argument.
func reorder(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(flags, rest...)
}

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs, f := newInspectFlags("status", "kubectl vipcast status [flags]\n\nPools (use, conditions), speakers (Ready, members, sessions, conflicts), and the Services\nnot allocated or not announced, on one screen. Exit code 3 when something is wrong.\n\n", false, stderr)
	_, cl, err := f.read(ctx, fs, args, 0)
	if err != nil {
		return 0, err
	}
	st := inspect.Summarize(cl)
	if err := f.print(stdout, st, func(w io.Writer) { inspect.WriteStatus(w, st) }); err != nil {
		return 0, err
	}
	if st.Healthy() {
		return exitOK, nil
	}
	return exitAttention, nil
}
