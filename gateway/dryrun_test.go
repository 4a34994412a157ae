package gateway

import (
	"errors"
	"testing"
	"time"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/mqtt"
)

// DryRun maps and evaluates as Handle does, with rule state carried from
// call to call, and touches no buffer.
func TestDryRun(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1/")
	cfg.Events.Unmatched = cloudevent.UnmatchedDrop
	cfg.Rules = rulesConfig(t, `
rules:
  - name: fahrenheit
    when: data.temperature != nil
    actions: [{ set: { data.temperature_f: "data.temperature * 9 / 5 + 32" } }]
  - name: changes
    when: changed(data.temperature)
    actions: [{ route: [cloud] }]
  - name: avg
    actions: [{ aggregate: { value: data.temperature, every: 1m, size: 1m, emit: { type: io.acme.avg } } }]
`)
	c, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dry := NewDryRun(c)
	t0 := time.Date(2026, 12, 1, 0, 0, 30, 0, time.UTC)
	msg := mqtt.Message{Topic: "devices/t1/telemetry", Payload: []byte(`{"temperature":20}`), QoS: 1, ClientID: "t1"}
	in, d, err := dry.Message(msg, t0)
	if err != nil {
		t.Fatal(err)
	}
	if in.Event.Subject != "t1" || in.Topic != msg.Topic || in.ClientID != "t1" || !in.Event.Time.Equal(t0) {
		t.Errorf("input: %+v", in)
	}
	if !d.Changed || d.Event.Data.(map[string]any)["temperature_f"] != 68.0 || len(d.Routes) != 1 {
		t.Errorf("decision: %+v", d)
	}
	// The same temperature again has not changed: state carried over.
	if _, d, _ = dry.Message(msg, t0.Add(time.Second)); d.Routes != nil {
		t.Errorf("second decision routed: %+v", d)
	}
	// An event that was mapped already; its mqtttopic is the rules' topic.
	e := cloudevent.Event{ID: "x", Source: "/s", Type: "t", Subject: "t1", Data: []byte(`{"temperature":30}`)}
	e.SetExtension(cloudevent.ExtTopic, cloudevent.String("devices/t1/telemetry"))
	in, d = dry.Event(&e, t0.Add(2*time.Second))
	if in.Topic != "devices/t1/telemetry" || len(d.Routes) != 1 {
		t.Errorf("event: %+v %+v", in, d)
	}
	if emits := dry.Tick(t0.Add(2 * time.Minute)); len(emits) != 1 || emits[0].Event.Type != "io.acme.avg" {
		t.Errorf("tick emitted %+v", emits)
	}
	if _, _, err := dry.Message(mqtt.Message{Topic: "other/topic"}, t0); !errors.Is(err, cloudevent.ErrUnmatched) {
		t.Errorf("unmatched: %v", err)
	}
}
