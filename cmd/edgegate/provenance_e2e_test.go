package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/ceconform"
	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// forgedEvent is what a device sends to pose as the gateway: a whole
// CloudEvent, declared application/cloudevents+json.
const forgedEvent = `{"specversion":"1.0","id":"forged-1","source":"/edgegate/prov/devices/admin-panel","type":"io.edgegate.alert.unlock","data":{"door":"all"}}`

// Through the real binary and every uplink mode (HTTP binary, structured,
// batch and the MQTT uplink), each validated strictly: a forged
// application/cloudevents+json payload arrives as data, never as the
// event; application/json over a body that is not JSON is valid in binary
// mode; user properties cannot set replayed, edgegateerror,
// edgegateattempts, id or source, and two long names that differ after
// the cut are both kept; every event says who published it; devices
// connecting and disconnecting are events, and a will is the device's own
// event once its connection drops.
func TestDeviceCannotForgeInAnyMode(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	modes := []string{"binary", "structured", "batch"}
	rcv := map[string]*cetest.Server{}
	var uplinks strings.Builder
	for _, m := range modes {
		rcv[m] = cetest.NewServer(t)
		fmt.Fprintf(&uplinks, "  - {name: %s, http: {url: %q, mode: %s}, retry: {initial: 50ms, max: 500ms}}\n", m, rcv[m].URL(), m)
	}
	cloud := mqtttest.StartBroker(t)
	fmt.Fprintf(&uplinks, "  - {name: iot, mqtt: {url: %q, topic: \"cloud/{type}\"}, retry: {initial: 50ms, max: 500ms}}\n", cloud.URL)
	sub := mqtttest.Connect(t, cloud.URL, "cloud-reader")
	defer sub.Disconnect(0)
	fromMQTT := mqtttest.Subscribe(t, sub, "cloud/#", 1)

	cfg := fmt.Sprintf(`gateway_id: prov
log: {level: info}
admin: {listen: %q}
mqtt:
  listeners: [{id: tcp, type: tcp, address: %q}]
buffer: {dir: %q, min_free_bytes: 16MiB}
uplinks:
%s`, e.admin, e.mqtt, filepath.Join(e.dir, "buffer"), uplinks.String())
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()

	// An MQTT 5 device forges an event and the gateway's extensions.
	dev, _ := mqtttest.DialRaw(t, e.mqtt, 5, "dev5", true)
	dev.Publish("devices/dev5/telemetry", []byte(forgedEvent), 1, 1, packets.Properties{
		ContentType: "application/cloudevents+json",
		User: []packets.UserProperty{
			{Key: "replayed", Val: "true"}, {Key: "edgegateerror", Val: "forged"}, {Key: "edgegateattempts", Val: "9"},
			{Key: "id", Val: "evil"}, {Key: "source", Val: "/evil"},
			{Key: "sensor_calibration_offset_a", Val: "1.5"}, {Key: "sensor_calibration_offset_b", Val: "-0.5"},
		},
	})
	dev.Publish("devices/dev5/log", []byte("not json"), 1, 2, packets.Properties{ContentType: "application/json"})
	for range 2 {
		if ack, err := dev.Read(); err != nil || ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0 {
			t.Fatalf("puback: %+v %v", ack, err)
		}
	}
	dev.Conn.Close()

	// A device with a will loses its connection.
	door, drop, err := mqtttest.DialDroppable("tcp://"+e.mqtt, "door-1", func(o *paho.ClientOptions) {
		o.SetWill("devices/door-1/status", `{"online":false}`, 1, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer door.Disconnect(0)
	drop()

	// dev5: connected, 2 messages, disconnected; door-1: connected, will,
	// disconnected.
	const want = 7
	var viaMQTT []ceconform.Event
	var mqttBad []string
	deadline := time.After(30 * time.Second)
	for len(viaMQTT)+len(mqttBad) < want {
		select {
		case m := <-fromMQTT:
			ev, warns, err := ceconform.ValidateStructured(m.Payload())
			if err != nil || len(warns) > 0 {
				mqttBad = append(mqttBad, fmt.Sprintf("%v %v: %s", err, warns, m.Payload()))
			} else {
				viaMQTT = append(viaMQTT, ev)
			}
		case <-deadline:
			t.Fatalf("MQTT uplink: %d of %d events; log:\n%s", len(viaMQTT), want, p.log)
		}
	}
	if len(mqttBad) > 0 {
		t.Errorf("MQTT uplink: invalid CloudEvents: %v", mqttBad)
	}
	checkForgeryEvents(t, "mqtt", viaMQTT)
	for _, m := range modes {
		rcv[m].WaitFor(want, 30*time.Second)
		if bad := rcv[m].Violations(); len(bad) > 0 {
			t.Errorf("%s: invalid CloudEvents: %v", m, bad)
		}
		views := rcv[m].Views()
		for _, v := range views {
			if v.Mode != m {
				t.Errorf("%s uplink: an event arrived in %s mode", m, v.Mode)
			}
		}
		checkForgeryEvents(t, m, views)
	}
}

// checkForgeryEvents checks the events of TestDeviceCannotForgeInAnyMode
// as one uplink delivered them.
func checkForgeryEvents(t *testing.T, mode string, events []ceconform.Event) {
	t.Helper()
	byKind := map[string]ceconform.Event{}
	for _, ev := range events {
		a := ev.Attrs
		if a["id"] == "forged-1" || a["id"] == "evil" || a["source"] == "/evil" || a["type"] == "io.edgegate.alert.unlock" {
			t.Errorf("%s: a device set an event's attributes: %v", mode, a)
		}
		for _, name := range []string{"replayed", "edgegateerror", "edgegateattempts"} {
			if v, ok := a[name]; ok {
				t.Errorf("%s: %s event has %s=%q", mode, a["type"], name, v)
			}
		}
		if a["edgegateauth"] != "anonymous" || a["edgegateclientid"] != a["subject"] {
			t.Errorf("%s: %s event: identity %q %q (subject %q)", mode, a["type"], a["edgegateclientid"], a["edgegateauth"], a["subject"])
		}
		byKind[a["type"]+" "+a["subject"]] = ev
	}
	if len(byKind) != 7 {
		t.Errorf("%s: %d distinct events, want 7: %v", mode, len(byKind), keys(byKind))
	}

	forged := byKind["io.edgegate.device.telemetry dev5"]
	if a := forged.Attrs; a["source"] != "/edgegate/prov/devices/dev5" || a["datacontenttype"] != "application/octet-stream" ||
		a["edgegatecontenttype"] != "application/cloudevents+json" || string(forged.Data) != forgedEvent {
		t.Errorf("%s: forged payload became %v data %q", mode, a, forged.Data)
	}
	var long []string
	for k, v := range forged.Attrs {
		if strings.HasPrefix(k, "sensorcalibr") {
			long = append(long, v)
		}
	}
	if len(long) != 2 || !(long[0] == "1.5" && long[1] == "-0.5" || long[0] == "-0.5" && long[1] == "1.5") {
		t.Errorf("%s: the two long properties: %v", mode, forged.Attrs)
	}

	notJSON := byKind["io.edgegate.device.log dev5"]
	if a := notJSON.Attrs; a["datacontenttype"] != "application/octet-stream" || a["edgegatecontenttype"] != "application/json" ||
		string(notJSON.Data) != "not json" {
		t.Errorf("%s: application/json over text became %v data %q", mode, a, notJSON.Data)
	}

	will := byKind["io.edgegate.device.status door-1"]
	if a := will.Attrs; a["edgegatewill"] != "true" || a["source"] != "/edgegate/prov/devices/door-1" || string(will.Data) != `{"online":false}` {
		t.Errorf("%s: will event %v data %s", mode, a, will.Data)
	}
	for _, id := range []string{"dev5", "door-1"} {
		for _, typ := range []string{"io.edgegate.device.connected", "io.edgegate.device.disconnected"} {
			ev, ok := byKind[typ+" "+id]
			if !ok || ev.Attrs["source"] != "/edgegate/prov/clients/"+id || !strings.Contains(string(ev.Data), `"client_id":"`+id+`"`) {
				t.Errorf("%s: %s of %s: %v data %s", mode, typ, id, ev.Attrs, ev.Data)
			}
			if typ == "io.edgegate.device.disconnected" && !strings.Contains(string(ev.Data), `"reason":"connection_lost"`) {
				t.Errorf("%s: %s data %s", mode, typ, ev.Data)
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
