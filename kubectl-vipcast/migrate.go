package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vipcast/vipcast/kubectl-vipcast/internal/migrate"
)

// files is a repeatable -f flag.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

// kubeFlags are the flags that pick the cluster, as kubectl's.
type kubeFlags struct{ kubeconfig, context string }

func (k *kubeFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&k.context, "context", "", "the kubeconfig context (default: the current one)")
}

func (k *kubeFlags) client(scheme client.Options) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	return client.New(cfg, scheme)
}

func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 || args[0] != "metallb" {
		return 0, fmt.Errorf("%w: migrate takes one source: metallb", errUsage)
	}
	fs := flag.NewFlagSet("migrate metallb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `kubectl vipcast migrate metallb [flags]

Reads MetalLB's configuration (metallb.io IPAddressPool, L2Advertisement, BGPAdvertisement,
BGPPeer v1beta1/v1beta2, Community, BFDProfile) from the cluster, or from -f files, and
prints vipcast's equivalent, ready for "kubectl apply -f -". Names are kept. What cannot be
carried over is listed with the reason (as comments at the top, and on stderr); the exit
code is then 3.

`)
		fs.PrintDefaults()
	}
	var (
		from   files
		k      kubeFlags
		o      migrate.Options
		output string
	)
	fs.Var(&from, "f", "a file of MetalLB objects (YAML or JSON, Lists too; - for stdin); repeatable. Without: read from the cluster")
	fs.StringVar(&o.MetalLBNamespace, "metallb-namespace", "metallb-system", "the namespace MetalLB runs in (its objects are read there)")
	fs.StringVar(&o.SecretNamespace, "secret-namespace", "vipcast-system", "where vipcast's speakers read BGP passwords (the chart's release namespace by default)")
	fs.StringVar(&output, "o", "yaml", "output: yaml (to apply; gaps as comments) or json ({objects, gaps})")
	k.bind(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return 0, parseError(err)
	}
	if fs.NArg() > 0 {
		return 0, fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	if output != "yaml" && output != "json" {
		return 0, fmt.Errorf("%w: -o %q: yaml or json", errUsage, output)
	}
	in, gaps, err := readMetalLB(ctx, from, k, o.MetalLBNamespace)
	if err != nil {
		return 0, err
	}
	res := migrate.Convert(in, o)
	res.Gaps = append(gaps, res.Gaps...)
	if output == "json" {
		err = migrate.WriteJSON(stdout, res)
	} else {
		err = migrate.WriteYAML(stdout, res)
	}
	if err != nil {
		return 0, err
	}
	if len(res.Objects) == 0 && len(res.Gaps) == 0 {
		fmt.Fprintln(stderr, "No MetalLB objects found.")
	}
	if len(res.Gaps) > 0 {
		fmt.Fprintf(stderr, "%d part(s) of MetalLB's configuration not carried over:\n", len(res.Gaps))
		for _, g := range res.Gaps {
			fmt.Fprintf(stderr, "  %s\n", g)
		}
		return exitAttention, nil
	}
	return exitOK, nil
}

// readMetalLB reads MetalLB's objects from the files, or from the cluster when there are none.
func readMetalLB(ctx context.Context, from files, k kubeFlags, ns string) (migrate.Input, []migrate.Gap, error) {
	var in migrate.Input
	if len(from) == 0 {
		scheme, err := migrate.Scheme()
		if err != nil {
			return in, nil, err
		}
		c, err := k.client(client.Options{Scheme: scheme})
		if err != nil {
			return in, nil, err
		}
		in, err = migrate.Read(ctx, c, ns)
		return in, nil, err
	}
	var gaps []migrate.Gap
	for _, name := range from {
		r := io.Reader(os.Stdin)
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return in, gaps, err
			}
			defer f.Close()
			r = f
		}
		g, err := migrate.Decode(r, &in)
		if err != nil {
			return in, gaps, fmt.Errorf("%s: %w", name, err)
		}
		gaps = append(gaps, g...)
	}
	return in, gaps, nil
}
