package gateway

import (
	"encoding/json"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// A device's life as events: connected, its telemetry, its will when the
// connection drops (the device's own event, mapped by the topic templates,
// marked edgegatewill), disconnected with the reason; each says who it
// came from, and presence events go through the rules like any event.
func TestPresenceAndWillEvents(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t, rcv.URL())
	cfg.Events.Presence.Enabled = true
	cfg.Rules = rulesConfig(t, `
rules:
  - name: offline
    when: type == 'io.edgegate.device.disconnected'
    actions: [{ set: { ext.alert: "'offline ' + data.reason" } }]
`)
	gw := start(t, cfg)
	c, drop, err := mqtttest.DialDroppable(gw.mqtt, "door-1", func(o *paho.ClientOptions) {
		o.SetWill("devices/door-1/status", `{"online":false}`, 1, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	mqtttest.Publish(t, c, "devices/door-1/telemetry", 1, `{"open":true}`)
	drop()

	events := rcv.WaitFor(4, 10*time.Second)
	if len(events) != 4 {
		t.Fatalf("got %d events, want 4", len(events))
	}
	want := []struct{ typ, source, subject string }{
		{cloudevent.TypeConnected, "/edgegate/gw-test/clients/door-1", "door-1"},
		{"io.edgegate.device.telemetry", "/edgegate/gw-test/devices/door-1", "door-1"},
		{"io.edgegate.device.status", "/edgegate/gw-test/devices/door-1", "door-1"},
		{cloudevent.TypeDisconnected, "/edgegate/gw-test/clients/door-1", "door-1"},
	}
	for i, e := range events {
		if e.Type() != want[i].typ || e.Source() != want[i].source || e.Subject() != want[i].subject {
			t.Errorf("event %d: %s %s %s, want %+v", i, e.Type(), e.Source(), e.Subject(), want[i])
		}
		x := e.Extensions()
		if x[cloudevent.ExtClientID] != "door-1" || x[cloudevent.ExtAuth] != "anonymous" || x[cloudevent.ExtUser] != nil {
			t.Errorf("event %d (%s): identity %v", i, e.Type(), x)
		}
		if will := x[cloudevent.ExtWill]; (i == 2) != (will == true) {
			t.Errorf("event %d (%s): %s = %v", i, e.Type(), cloudevent.ExtWill, will)
		}
	}
	if got := string(events[2].Data()); got != `{"online":false}` {
		t.Errorf("will data %s", got)
	}
	var d struct{ ClientID, Listener, Reason string }
	if err := json.Unmarshal(events[3].Data(), &d); err != nil || d.Reason != "connection_lost" {
		t.Errorf("disconnected data %s: %v", events[3].Data(), err)
	}
	if a := events[3].Extensions()["alert"]; a != "offline connection_lost" {
		t.Errorf("rule on the disconnected event: alert = %v", a)
	}
	if bad := rcv.Violations(); len(bad) > 0 {
		t.Errorf("invalid CloudEvents: %v", bad)
	}
}

// MQTT 5: a device cannot set the gateway's names through user
// properties (dropped and counted), two keys that differ after the cut
// are both kept, and a forged CloudEvent payload is the event's data.
func TestDeviceCannotForge(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t, rcv.URL())
	cfg.Uplinks[0].HTTP.Mode = "binary"
	gw := start(t, cfg)
	const forged = `{"specversion":"1.0","id":"forged-1","source":"/edgegate/gw-test/devices/admin-panel","type":"io.edgegate.alert.unlock"}`
	dev, _ := mqtttest.DialRaw(t, gw.mqtt[len("tcp://"):], 5, "dev5", true)
	dev.Publish("devices/dev5/telemetry", []byte(forged), 1, 1, packets.Properties{
		ContentType: "application/cloudevents+json",
		User: []packets.UserProperty{
			{Key: "replayed", Val: "true"}, {Key: "edgegateerror", Val: "x"}, {Key: "edgegateattempts", Val: "9"},
			{Key: "id", Val: "evil"}, {Key: "source", Val: "/evil"}, {Key: "EdgeGateUser", Val: "admin"},
			{Key: "sensor_calibration_offset_a", Val: "1"}, {Key: "sensor_calibration_offset_b", Val: "2"},
		},
	})
	if ack, err := dev.Read(); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("puback %+v %v", ack, err)
	}
	events := rcv.WaitFor(1, 10*time.Second)
	if len(events) != 1 {
		t.Fatalf("got %d events", len(events))
	}
	e := events[0]
	if e.ID() == "forged-1" || e.Type() != "io.edgegate.device.telemetry" || e.Source() != "/edgegate/gw-test/devices/dev5" ||
		e.DataContentType() != "application/octet-stream" || string(e.Data()) != forged {
		t.Errorf("forged payload became %s", e.String())
	}
	x := e.Extensions()
	for _, name := range []string{"replayed", "edgegateerror", "edgegateattempts", "edgegateuser"} {
		if v, ok := x[name]; ok {
			t.Errorf("device set %s = %v", name, v)
		}
	}
	if x[cloudevent.ExtContentType] != "application/cloudevents+json" || x[cloudevent.ExtClientID] != "dev5" {
		t.Errorf("extensions %v", x)
	}
	var long []string
	for k, v := range x {
		if len(k) == 20 && k[:12] == "sensorcalibr" {
			long = append(long, k+"="+v.(string))
		}
	}
	if len(long) != 2 {
		t.Errorf("long colliding properties: %v (all: %v)", long, x)
	}
	if got := metricValue(t, gw, `edgegate_events_properties_dropped_total{reason="reserved"}`); got != 6 {
		t.Errorf("reserved properties dropped: %v, want 6", got)
	}
	views := rcv.Views()
	if len(views) != 1 || views[0].Mode != ceconform.ModeBinary {
		t.Errorf("views %+v", views)
	}
	if bad := rcv.Violations(); len(bad) > 0 {
		t.Errorf("invalid CloudEvents: %v", bad)
	}
}
