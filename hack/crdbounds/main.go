// Command crdbounds bounds the label selectors in the CRDs controller-gen wrote: the schema
// of metav1.LabelSelector, a type vipcast cannot put markers on, has no maxItems or
// maxLength, so the API server estimates the CEL rules that look inside a selector as too
// costly. It rewrites each CRD file given on the command line in place (make generate).
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	for _, f := range os.Args[1:] {
		if err := rewrite(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func rewrite(file string) error {
	in, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var crd map[string]any
	if err := yaml.Unmarshal(in, &crd); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	Bound(crd)
	out, err := yaml.Marshal(crd)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return os.WriteFile(file, append([]byte("---\n"), out...), 0o644)
}
