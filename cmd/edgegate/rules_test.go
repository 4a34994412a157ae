package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/gateway"
	"github.com/edgegate/edgegate/uplink"
)

// exampleRuleConfigs are the shipped example configurations with rules.
func exampleRuleConfigs(t *testing.T) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	for _, dir := range []string{"../../configs"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil || !bytes.Contains(b, []byte("\nrules:")) || seen[filepath.Base(f)] {
				continue
			}
			seen[filepath.Base(f)] = true
			out = append(out, f)
		}
	}
	if len(out) < 3 {
		t.Fatalf("want the three example configs with rules, found %v", out)
	}
	return out
}

// setupOf loads a configuration file for `rules test`.
func setupOf(t *testing.T, path string) *gateway.Compiled {
	t.Helper()
	c, err := gateway.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The shipped examples pass their own tests.
func TestRulesExamplesPass(t *testing.T) {
	for _, f := range exampleRuleConfigs(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, stderr bytes.Buffer
			err := runCmd(context.Background(), []string{"rules", "test", "--config", f}, nil, &out, &stderr)
			if stderr.Len() > 0 {
				t.Logf("stderr: %s", stderr.String())
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), " 0 failed") || strings.Contains(out.String(), "FAIL") {
				t.Fatalf("output:\n%s", out.String())
			}
		})
	}
}

func TestRulesTestReportsFailures(t *testing.T) {
	s := gateway.DefaultConfig()
	u, h := uplink.DefaultConfig(), uplink.DefaultHTTPConfig()
	u.Name, h.URL, u.HTTP = "cloud", "http://127.0.0.1:1/", &h
	s.GatewayID, s.Uplinks = "gw", []uplink.Config{u}
	if err := yaml.Unmarshal([]byte(`
rules:
  - name: hot
    when: data.t > 30
    actions: [{ route: [cloud] }]
tests:
  - name: ok
    event: { data: { t: 31 } }
    expect: { routes: [cloud] }
  - name: wrong
    event: { data: { t: 20 } }
    expect: { routes: [cloud], drop: true }
`), &s.Rules); err != nil {
		t.Fatal(err)
	}
	c, err := gateway.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = runRulesTest(context.Background(), c, "", false, &out)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 rule tests failed") {
		t.Fatalf("err = %v", err)
	}
	for _, w := range []string{"PASS  ok", "FAIL  wrong", "routes: want [cloud], got default (every uplink)", "drop: want true, got false", "1 passed, 1 failed"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("missing %q in\n%s", w, out.String())
		}
	}
}

func TestRulesEventsFile(t *testing.T) {
	s := setupOf(t, exampleConfig(t, "thermostat.yaml"))
	events := filepath.Join(t.TempDir(), "events.jsonl")
	lines := `# an MQTT message, mapped by the events section
{"topic": "devices/t9/telemetry", "payload": {"temperature": 35}, "client_id": "t9", "time": "2026-01-01T00:00:00Z"}
{"specversion": "1.0", "id": "x1", "source": "/s", "type": "io.edgegate.device.telemetry", "subject": "t9", "time": "2026-01-01T00:01:00Z", "datacontenttype": "application/json", "data": {"temperature": 20}}
`
	if err := os.WriteFile(events, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runRulesTest(context.Background(), s, events, false, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, w := range []string{`"topic": "devices/t9/cmd/fan"`, `"on": true`, `"on": false`, "io.edgegate.alert.overheat", `"temperature_f": 95`} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("missing %q in\n%s", w, out.String())
		}
	}
	if err := os.WriteFile(events, []byte("{\"nope\": 1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runRulesTest(context.Background(), s, events, false, &out); err == nil || !strings.Contains(err.Error(), "events.jsonl:1:") {
		t.Fatalf("bad line: %v", err)
	}
}

func TestRulesUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runArgs([]string{"rules"}, &out, &errOut); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(errOut.String(), "edgegate rules COMMAND") || !strings.Contains(errOut.String(), "\n  test ") {
		t.Fatal(errOut.String())
	}
}

func exampleConfig(t *testing.T, name string) string {
	for _, f := range exampleRuleConfigs(t) {
		if filepath.Base(f) == name {
			return f
		}
	}
	t.Fatalf("no %s", name)
	return ""
}
