package rules

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCase is a testdata/golden/*.yaml file: a rules section plus input
// steps. Its decisions are written, one JSON line per step, to the .golden
// file beside it.
type goldenCase struct {
	Config `yaml:",inline"`
	Input  []Step `yaml:"input"`
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var gc goldenCase
			dec := yaml.NewDecoder(bytes.NewReader(src))
			dec.KnownFields(true)
			if err := dec.Decode(&gc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			n := 0
			set, err := Compile(gc.Config, []string{"cloud", "backup"}, WithGatewayID("gw1"),
				WithIDGenerator(func() string { n++; return fmt.Sprintf("emit-%d", n) }))
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			var out bytes.Buffer
			now := DefaultTestTime
			for i, s := range gc.Input {
				now = now.Add(s.After)
				line := map[string]any{"step": i + 1, "time": now.Format(time.RFC3339)}
				if s.Tick {
					line["tick"] = set.Tick(now)
				} else {
					line["decision"] = set.Evaluate(s.Event.Input(i+1, now), now)
				}
				enc := json.NewEncoder(&out)
				enc.SetEscapeHTML(false)
				enc.SetIndent("", "  ")
				if err := enc.Encode(line); err != nil {
					t.Fatalf("step %d: %v", i+1, err)
				}
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./rules -run Golden -update)", err)
			}
			if !bytes.Equal(want, out.Bytes()) {
				wl, gl := strings.Split(string(want), "\n"), strings.Split(out.String(), "\n")
				for i := range max(len(wl), len(gl)) {
					var w, g string
					if i < len(wl) {
						w = wl[i]
					}
					if i < len(gl) {
						g = gl[i]
					}
					if w != g {
						t.Errorf("%s line %d:\nwant %s\n got %s", golden, i+1, w, g)
					}
				}
			}
		})
	}
}
