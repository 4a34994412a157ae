package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// FuzzLoad feeds random YAML to the rules loader and random expressions to
// the compiler; whatever compiles is evaluated. Errors are fine, panics
// are not.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b), "data.t > 1")
		}
	}
	f.Add("rules: [{name: a, when: 'x', actions: [{drop: true}]}]", "changed(data.t, 0.5) && !sample('1s')")
	f.Add("rules: 5", "prev(prev(data.t))")
	f.Add("max_keys: 1\nrules: [{name: a, actions: [{aggregate: {value: data.t, every: 1s, emit: {type: t}}}]}]", "duplicate(data, '1ns')")
	f.Add("", "map(1..1000000, # * 2)")
	f.Fuzz(func(t *testing.T, src, when string) {
		var cfg Config
		dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			cfg = Config{}
		}
		cfg.Rules = append(cfg.Rules, Rule{Name: "fuzzed", When: when, Actions: []Action{
			{Set: Assignments{{Target: "data.f", Expr: when}}},
			{Aggregate: &AggregateSpec{Value: "1", Every: time.Second, Emit: EmitSpec{Type: "x"}}},
		}})
		s, err := Compile(cfg, []string{"cloud"}, WithGatewayID("gw"))
		if err != nil {
			return
		}
		for i, data := range []any{nil, map[string]any{"t": 1.5, "a": map[string]any{"b": "c"}}, "s", []byte{1}} {
			now := t0.Add(time.Duration(i) * time.Second)
			s.Evaluate(Input{Event: Event{Type: "t", Subject: "s", Data: data}, Topic: "a/b/c"}, now)
			s.Tick(now)
		}
		s.Stats()
	})
}
