package migrate

import (
	"encoding/json"
	"fmt"
	"io"

	"sigs.k8s.io/yaml"
)

// clean is obj as written to apply: without the empty fields the API server fills in.
func clean(obj any) (map[string]any, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	return m, nil
}

// WriteYAML writes the objects as YAML documents to apply, the gaps first as comments.
func WriteYAML(w io.Writer, r Result) error {
	if len(r.Gaps) > 0 {
		fmt.Fprintf(w, "# Not carried over (%d):\n", len(r.Gaps))
		for _, g := range r.Gaps {
			fmt.Fprintf(w, "# - %s\n", g)
		}
	}
	for _, o := range r.Objects {
		m, err := clean(o)
		if err != nil {
			return err
		}
		out, err := yaml.Marshal(m)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", out); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSON writes {"objects": [...], "gaps": [...]}.
func WriteJSON(w io.Writer, r Result) error {
	out := struct {
		Objects []map[string]any `json:"objects"`
		Gaps    []Gap            `json:"gaps"`
	}{Objects: []map[string]any{}, Gaps: r.Gaps}
	if out.Gaps == nil {
		out.Gaps = []Gap{}
	}
	for _, o := range r.Objects {
		m, err := clean(o)
		if err != nil {
			return err
		}
		out.Objects = append(out.Objects, m)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
