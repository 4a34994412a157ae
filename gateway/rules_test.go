package gateway

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/rules"
)

func rulesConfig(t *testing.T, src string) rules.Config {
	t.Helper()
	var c rules.Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// Rules act locally with no cloud link: a hot reading turns the fan on
// through the embedded broker while the uplink is down; the alert and the
// transformed reading reach the cloud once it is back. A rule that fails at
// runtime (division by zero) affects neither the other rules nor the event.
func TestRulesActLocallyAndIsolateErrors(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Refuse(http.StatusServiceUnavailable)
	cfg := testConfig(t, rcv.URL())
	cfg.Rules = rulesConfig(t, `
rules:
  - name: broken
    when: data.temperature / data.zero > 1
    actions: [{ set: { data.never: "true" } }]
  - name: fahrenheit
    when: data.temperature != nil
    actions: [{ set: { data.temperature_f: "data.temperature * 9 / 5 + 32" } }]
  - name: fan-on
    when: data.temperature > 28
    actions:
      - publish: { topic: "'devices/' + subject + '/cmd/fan'", payload: "{'on': true}", qos: 1 }
      - emit: { type: io.edgegate.alert.overheat, data: "{'temperature': data.temperature}" }
  - name: quiet
    when: data.noise == true
    actions: [{ drop: true }]
`)
	gw := start(t, cfg)

	var mu sync.Mutex
	var commands []string
	sub := mqtttest.Connect(t, gw.mqtt, "fan")
	tok := sub.Subscribe("devices/+/cmd/fan", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		commands = append(commands, m.Topic()+" "+string(m.Payload()))
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	dev := mqtttest.Connect(t, gw.mqtt, "t1")
	for _, p := range []string{`{"temperature":30,"zero":0}`, `{"temperature":20,"zero":0}`, `{"noise":true}`} {
		if tok := dev.Publish("devices/t1/telemetry", 1, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(commands)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if len(commands) != 1 || commands[0] != `devices/t1/cmd/fan {"on":true}` {
		t.Fatalf("local commands with the uplink down: %q", commands)
	}
	mu.Unlock()

	rcv.Refuse(0)
	events := rcv.WaitFor(3, 10*time.Second) // two readings + one alert; the noise was dropped
	time.Sleep(100 * time.Millisecond)
	if got := len(rcv.WaitFor(0, time.Second)); got != 3 {
		t.Fatalf("cloud got %d events, want 3", got)
	}
	var alerts, readings int
	for _, e := range events {
		switch e.Type() {
		case "io.edgegate.alert.overheat":
			alerts++
		case "io.edgegate.device.telemetry":
			readings++
			data := string(e.Data())
			if !strings.Contains(data, "temperature_f") || strings.Contains(data, "never") {
				t.Errorf("reading not transformed as expected: %s", data)
			}
		}
	}
	if alerts != 1 || readings != 2 {
		t.Errorf("alerts %d, readings %d", alerts, readings)
	}
	var broken rules.RuleStats
	for _, s := range gw.g.live.Load().rules.Stats() {
		if s.Name == "broken" {
			broken = s
		}
	}
	if broken.Errors < 2 {
		t.Errorf("runtime errors of the broken rule not counted: %+v", broken)
	}
}
