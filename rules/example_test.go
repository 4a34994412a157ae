package rules_test

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/rules"
)

// A threshold rule that converts units, raises an alert and turns a fan on.
func Example() {
	var cfg rules.Config
	err := yaml.Unmarshal([]byte(`
rules:
  - name: overheat
    when: data.temperature > 30
    actions:
      - set: { data.temperature_f: "data.temperature * 9 / 5 + 32" }
      - emit: { type: io.acme.alert.overheat, data: "{'device': subject}" }
      - publish: { topic: "'devices/' + subject + '/cmd/fan'", payload: "{'on': true}", qos: 1 }
      - route: [cloud]
`), &cfg)
	if err != nil {
		panic(err)
	}
	set, err := rules.Compile(cfg, []string{"cloud", "archive"}, rules.WithGatewayID("edge-01"))
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d := set.Evaluate(rules.Input{
		Event: rules.Event{ID: "1", Source: "/edgegate/edge-01/devices/t1", Type: "io.edgegate.device.telemetry",
			Subject: "t1", Time: now, Data: map[string]any{"temperature": 31.0}},
		Topic: "devices/t1/telemetry",
	}, now)
	fmt.Println("routes:", d.Routes)
	fmt.Println("temperature_f:", d.Event.Data.(map[string]any)["temperature_f"])
	fmt.Println("emitted:", d.Emits[0].Event.Type, d.Emits[0].Event.Source)
	fmt.Println("publish:", d.Publishes[0].Topic, string(d.Publishes[0].Payload))
	// Output:
	// routes: [cloud]
	// temperature_f: 87.8
	// emitted: io.acme.alert.overheat /edgegate/edge-01/rules/overheat
	// publish: devices/t1/cmd/fan {"on":true}
}

// A one-minute average per device, emitted when the window closes.
func ExampleSet_Tick() {
	var cfg rules.Config
	_ = yaml.Unmarshal([]byte(`
rules:
  - name: avg
    actions:
      - aggregate: { value: data.t, every: 1m, emit: { type: io.acme.avg1m, data: "{'avg': avg, 'n': count}" } }
      - drop: true
`), &cfg)
	set, err := rules.Compile(cfg, nil)
	if err != nil {
		panic(err)
	}
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i, v := range []float64{20, 21, 25} {
		set.Evaluate(rules.Input{Event: rules.Event{Subject: "t1", Data: map[string]any{"t": v}}}, t0.Add(time.Duration(i)*10*time.Second))
	}
	for _, e := range set.Tick(t0.Add(time.Minute)) {
		fmt.Println(e.Event.Type, e.Event.Subject, e.Event.Time.Format(time.Kitchen), e.Event.Data)
	}
	// Output:
	// io.acme.avg1m t1 12:01PM map[avg:22 n:3]
}
