package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every shipped configuration passes `edgegate validate` as shipped.
func TestValidateShippedConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	if len(files) == 0 {
		t.Fatal("no configs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := runArgs([]string{"validate", "--config", f}, &out, &errOut); code != 0 {
				t.Fatalf("exit %d:\n%s", code, errOut.String())
			}
			if want := f + ": ok\n"; out.String() != want {
				t.Fatalf("stdout %q, want %q", out.String(), want)
			}
		})
	}
}

// validate prints every problem on its own line as file:line:col: path:
// message, and exits 2.
func TestValidateReportsEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edgegate.yaml")
	src := `gateway_id: gw-1
buffer: { dir: ./data, max_bytes: [1] }
memory_limit: lots
uplinks:
  - name: cloud
    url: http://127.0.0.1:8081/
    batch: { max_events: 500, max_bytes: 1MiB, linger: 0s }
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runArgs([]string{"validate", "--config", path}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, errOut.String())
	}
	want := []string{
		path + ":2:35: buffer.max_bytes: invalid byte size",
		path + ":3:15: memory_limit: invalid byte size \"lots\"",
		path + ":6:5: uplinks[0].url: moved to uplinks[0].http.url",
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, w)
		}
		if !found {
			t.Errorf("missing %q in:\n%s", w, errOut.String())
		}
	}
	if strings.Contains(errOut.String(), "batch") {
		t.Errorf("batch.max_bytes: 1MiB is a valid size:\n%s", errOut.String())
	}
}
