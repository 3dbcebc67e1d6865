package main

// Bounds set on every label selector's schema. Kubernetes sets none; these are far beyond
// any selector a person writes.
const (
	MaxExpressions = 32
	MaxValues      = 64
	MaxLabels      = 64
	// MaxKeyLength is a qualified name's: a 253-character prefix, '/', a 63-character name.
	MaxKeyLength   = 317
	MaxValueLength = 63
)

// Operators are the operators a label selector (not a node selector) accepts.
var Operators = []any{"In", "NotIn", "Exists", "DoesNotExist"}

// Bound walks a decoded CRD and bounds every schema shaped like a metav1.LabelSelector (an
// object with the properties matchLabels and matchExpressions).
func Bound(node any) {
	switch n := node.(type) {
	case map[string]any:
		if props, ok := n["properties"].(map[string]any); ok && props["matchLabels"] != nil && props["matchExpressions"] != nil {
			boundSelector(props)
		}
		for _, v := range n {
			Bound(v)
		}
	case []any:
		for _, v := range n {
			Bound(v)
		}
	}
}

func boundSelector(props map[string]any) {
	if labels, ok := props["matchLabels"].(map[string]any); ok {
		labels["maxProperties"] = MaxLabels
		if v, ok := labels["additionalProperties"].(map[string]any); ok {
			v["maxLength"] = MaxValueLength
		}
	}
	exprs, ok := props["matchExpressions"].(map[string]any)
	if !ok {
		return
	}
	exprs["maxItems"] = MaxExpressions
	req, _ := exprs["items"].(map[string]any)
	reqProps, _ := req["properties"].(map[string]any)
	if key, ok := reqProps["key"].(map[string]any); ok {
		key["maxLength"] = MaxKeyLength
	}
	if op, ok := reqProps["operator"].(map[string]any); ok {
		op["enum"] = Operators
	}
	if values, ok := reqProps["values"].(map[string]any); ok {
		values["maxItems"] = MaxValues
		if item, ok := values["items"].(map[string]any); ok {
			item["maxLength"] = MaxValueLength
		}
	}
}
