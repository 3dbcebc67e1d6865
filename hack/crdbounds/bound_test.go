package main

import (
	"testing"

	"sigs.k8s.io/yaml"
)

func TestBound(t *testing.T) {
	selector := `{"type":"object","properties":{
		"matchLabels":{"type":"object","additionalProperties":{"type":"string"}},
		"matchExpressions":{"type":"array","items":{"type":"object","properties":{
			"key":{"type":"string"},"operator":{"type":"string"},"values":{"type":"array","items":{"type":"string"}}}}}}}`
	bounded := `{"type":"object","properties":{
		"matchLabels":{"type":"object","maxProperties":64,"additionalProperties":{"type":"string","maxLength":63}},
		"matchExpressions":{"type":"array","maxItems":32,"items":{"type":"object","properties":{
			"key":{"type":"string","maxLength":317},"operator":{"type":"string","enum":["In","NotIn","Exists","DoesNotExist"]},
			"values":{"type":"array","maxItems":64,"items":{"type":"string","maxLength":63}}}}}}}`
	for _, tc := range []struct{ name, in, want string }{
		{"a selector list", `{"type":"array","items":` + selector + `}`, `{"type":"array","items":` + bounded + `}`},
		{"a selector field deep down", `{"spec":{"versions":[{"schema":{"properties":{"sel":` + selector + `}}}]}}`,
			`{"spec":{"versions":[{"schema":{"properties":{"sel":` + bounded + `}}}]}}`},
		{"an object with matchLabels only is left alone", `{"properties":{"matchLabels":{"type":"object"}}}`, `{"properties":{"matchLabels":{"type":"object"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got, want any
			if err := yaml.Unmarshal([]byte(tc.in), &got); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			Bound(got)
			// Compare through JSON: the bounds are ints, the decoded values float64.
			gj, _ := yaml.Marshal(got)
			wj, _ := yaml.Marshal(want)
			if string(gj) != string(wj) {
				t.Errorf("got\n%s\nwant\n%s", gj, wj)
			}
		})
	}
}
