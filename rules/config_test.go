package rules

import (
	"strings"
	"testing"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// A set action's problems are found while decoding, each at its node with
// a path that keeps a dotted target whole; an expression's compile error
// points inside the expression.
func TestConfigErrorsPositioned(t *testing.T) {
	src := `rules:
  - name: a
    actions:
      - set: { data.a: "1", data.a: "2", data.b: [x] }
      - set: [data.c]
  - name: b
    when: 1 > 'x'
    actions: [{ drop: true }]
`
	var cfg Config
	doc, err := yamlconf.Decode("r.yaml", []byte(src), &cfg)
	var errs yamlconf.List
	errs.Nest(yamlconf.Path{}, err)
	_, cerr := Compile(cfg, nil)
	errs.Nest(yamlconf.Path{}, doc.Locate(cerr))
	want := []string{
		`r.yaml:4:29: rules[0].actions[0].set.data.a: duplicate target (first at line 4)`,
		`r.yaml:4:50: rules[0].actions[0].set.data.b: the value must be an expression string`,
		`r.yaml:5:14: rules[0].actions[1].set: must be a mapping of target: expression`,
		// The gateway's loader drops this consequence of the problem above.
		`r.yaml:5:9: rules[0].actions[1]: empty action: use one of set, remove, emit, publish, route, dead_letter, drop, aggregate, stale`,
		`r.yaml:7:13: rules[1].when: invalid operation: > (mismatched types int and string)`,
	}
	var got []string
	for _, p := range yamlconf.Problems(errs.Err()) {
		got = append(got, p.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
