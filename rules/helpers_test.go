package rules

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// parseConfig decodes a rules section as the gateway's loader does.
func parseConfig(t testing.TB, src string) Config {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return c
}

func mustCompile(t testing.TB, src string, uplinks ...string) *Set {
	t.Helper()
	if uplinks == nil {
		uplinks = []string{"cloud", "backup"}
	}
	var n atomic.Int64
	s, err := Compile(parseConfig(t, src), uplinks, WithGatewayID("gw1"), WithIDGenerator(func() string {
		return fmt.Sprintf("id-%d", n.Add(1))
	}))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return s
}

// deadbandAvg is the YAML of two rules on data.<field>: "deadband" drops a
// value that moved by at most by from the last one that passed, and "avg"
// aggregates it in windows of every, emitting avgType. Tests may append
// rules, or actions of "avg" (indented by six spaces).
func deadbandAvg(field, by, every, avgType string) string {
	return fmt.Sprintf(`
rules:
  - name: deadband
    when: "!changed(data.%[1]s, %[2]s)"
    actions: [{ drop: true }]
  - name: avg
    actions:
      - aggregate: { value: data.%[1]s, every: %[3]s, emit: { type: %[4]s } }
`, field, by, every, avgType)
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func reading(subject string, data map[string]any) Input {
	return Input{
		Event: Event{ID: "e1", Source: "/edgegate/gw1/devices/" + subject, Type: "io.edgegate.device.telemetry",
			Subject: subject, Time: t0, DataContentType: "application/json", Data: data},
		Topic:    "devices/" + subject + "/telemetry",
		ClientID: subject,
	}
}
