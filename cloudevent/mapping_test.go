package cloudevent_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
)

// only is a config of one template, dropping unmatched topics.
func only(topic cloudevent.Topic) cloudevent.Config {
	return cloudevent.Config{Topics: []cloudevent.Topic{topic}, Unmatched: cloudevent.UnmatchedDrop}
}

func mustCompile(t testing.TB, c cloudevent.Config) *cloudevent.Mapper {
	t.Helper()
	m, err := cloudevent.Compile(c, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// decode writes the event as a sender does and decodes the JSON.
func decode(t testing.TB, e cloudevent.Event) map[string]any {
	t.Helper()
	b := cloudevent.AppendJSON(nil, &e)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return m
}

func TestMap(t *testing.T) {
	at := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		cfg     cloudevent.Config
		msg     cloudevent.Message
		want    map[string]any // attributes that must be present with these values
		absent  []string
		wantErr error
	}{
		{
			name: "json telemetry",
			cfg:  cloudevent.DefaultConfig(),
			msg:  cloudevent.Message{Topic: "devices/th-01/telemetry", Payload: []byte(`{"temperature":21.5}`), QoS: 1, Received: at},
			want: map[string]any{
				"specversion": "1.0", "source": "/edgegate/gw-1/devices/th-01", "type": "io.edgegate.device.telemetry",
				"subject": "th-01", "datacontenttype": "application/json", "data": map[string]any{"temperature": 21.5},
				"time": "2026-11-23T03:00:00Z", "mqtttopic": "devices/th-01/telemetry", "mqttqos": float64(1),
			},
			absent: []string{"data_base64"},
		},
		{
			name:   "binary payload",
			cfg:    cloudevent.DefaultConfig(),
			msg:    cloudevent.Message{Topic: "devices/cam/image", Payload: []byte{0xff, 0x00, 0x01}, Received: at},
			want:   map[string]any{"datacontenttype": "application/octet-stream", "data_base64": base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1})},
			absent: []string{"data"},
		},
		{
			name:   "empty payload has no data",
			cfg:    cloudevent.DefaultConfig(),
			msg:    cloudevent.Message{Topic: "devices/d/ping", Received: at},
			absent: []string{"data", "data_base64", "datacontenttype"},
		},
		{
			name:   "plain text is not JSON",
			cfg:    cloudevent.DefaultConfig(),
			msg:    cloudevent.Message{Topic: "devices/d/status", Payload: []byte("online"), Received: at},
			want:   map[string]any{"data_base64": base64.StdEncoding.EncodeToString([]byte("online"))},
			absent: []string{"data"},
		},
		{
			name: "mqtt5 content type and user properties",
			cfg:  cloudevent.DefaultConfig(),
			msg: cloudevent.Message{Topic: "devices/d/t", Payload: []byte(`{"a":1}`), ContentType: "application/vnd.acme+json", Received: at,
				UserProperties: []cloudevent.Property{{"Firmware-Version", "1.2"}, {"id", "spoof"}, {"%%", "x"}}},
			want:   map[string]any{"datacontenttype": "application/vnd.acme+json", "firmwareversion": "1.2", "data_base64": base64.StdEncoding.EncodeToString([]byte(`{"a":1}`))},
			absent: []string{"data"},
		},
		{
			name: "unusual characters are escaped in source",
			cfg:  cloudevent.DefaultConfig(),
			msg:  cloudevent.Message{Topic: "devices/a b?#ü/x y", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/devices/a%20b%3F%23%C3%BC", "subject": "a b?#ü", "type": "io.edgegate.device.x y"},
		},
		{
			name: "invalid utf-8 topic",
			cfg:  cloudevent.DefaultConfig(),
			msg:  cloudevent.Message{Topic: "devices/\xff\xfe/t", Payload: []byte(`1`), Received: at},
			want: map[string]any{"subject": "\uFFFD", "mqtttopic": "devices/\uFFFD/t"},
		},
		{
			name: "unmatched generic",
			cfg:  cloudevent.DefaultConfig(),
			msg:  cloudevent.Message{Topic: "factory/line1", ClientID: "plc 7", Payload: []byte(`true`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/clients/plc%207", "type": "io.edgegate.mqtt.message", "subject": "factory/line1", "data": true},
		},
		{
			name:    "unmatched drop",
			cfg:     cloudevent.Config{Topics: []cloudevent.Topic{cloudevent.DefaultTopic()}, Unmatched: cloudevent.UnmatchedDrop},
			msg:     cloudevent.Message{Topic: "factory/line1"},
			wantErr: cloudevent.ErrUnmatched,
		},
		{
			name: "empty device level omits subject",
			cfg:  cloudevent.DefaultConfig(),
			msg:  cloudevent.Message{Topic: "devices//t", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/devices/"}, absent: []string{"subject"},
		},
		// An events.topics entry may leave source, type and subject out;
		// each takes the default the README documents, so every event of
		// the entry has a subject naming its device (rule state keyed on
		// the subject is per device, never shared).
		{
			name: "defaults with device and kind named",
			cfg:  only(cloudevent.Topic{Match: "devices/{device}/{kind}"}),
			msg:  cloudevent.Message{Topic: "devices/th-01/telemetry", ClientID: "th 7", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/devices/th-01", "type": "io.edgegate.device.telemetry", "subject": "th-01"},
		},
		{
			name: "defaults with device named",
			cfg:  only(cloudevent.Topic{Match: "plant/{device}/#"}),
			msg:  cloudevent.Message{Topic: "plant/p-2/a/b", ClientID: "th 7", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/devices/p-2", "type": "io.edgegate.mqtt.message", "subject": "p-2"},
		},
		{
			name: "defaults with kind named",
			cfg:  only(cloudevent.Topic{Match: "sensors/+/{kind}"}),
			msg:  cloudevent.Message{Topic: "sensors/x/temp", ClientID: "th 7", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/clients/th%207", "type": "io.edgegate.device.temp", "subject": "th 7"},
		},
		{
			name: "defaults without device",
			cfg:  only(cloudevent.Topic{Match: "factory/{line}"}),
			msg:  cloudevent.Message{Topic: "factory/l1", ClientID: "th 7", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/clients/th%207", "type": "io.edgegate.mqtt.message", "subject": "th 7"},
		},
		{
			name: "default subject only",
			cfg:  only(cloudevent.Topic{Match: "site/{site}/#", Source: "/sites/{site}", Type: "io.site"}),
			msg:  cloudevent.Message{Topic: "site/b/x", ClientID: "th 7", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/sites/b", "type": "io.site", "subject": "th 7"},
		},
		{
			name: "templates set are kept",
			cfg:  only(cloudevent.Topic{Match: "devices/{device}/{kind}", Source: "/s/{kind}", Type: "t", Subject: "{topic}"}),
			msg:  cloudevent.Message{Topic: "devices/d/k", ClientID: "th 7", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/s/k", "type": "t", "subject": "devices/d/k"},
		},
		{
			name: "multi-level wildcard",
			cfg: cloudevent.Config{Topics: []cloudevent.Topic{{Match: "site/{site}/#", Source: "/sites/{site}", Type: "io.site", Subject: "{topic}"}},
				Unmatched: cloudevent.UnmatchedDrop},
			msg:  cloudevent.Message{Topic: "site/berlin/a/b/c", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/sites/berlin", "subject": "site/berlin/a/b/c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustCompile(t, tt.cfg)
			e, err := m.Map(tt.msg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("invalid event: %v", err)
			}
			got := decode(t, e)
			for k, v := range tt.want {
				if fmt.Sprint(got[k]) != fmt.Sprint(v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			for _, k := range tt.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s present (%v), want absent", k, got[k])
				}
			}
		})
	}
}

// An entry with only match: devices/{device}/{kind} is the default
// template (TestMap has the defaults of other entries).
func TestTopicDefaultsMakeDefaultTopic(t *testing.T) {
	at := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	short := mustCompile(t, cloudevent.Config{Topics: []cloudevent.Topic{{Match: cloudevent.DefaultTopic().Match}}})
	full := mustCompile(t, cloudevent.DefaultConfig())
	msg := cloudevent.Message{Topic: "devices/a b/telemetry", ClientID: "c", Payload: []byte(`{"t":1}`), Received: at}
	a, _ := short.Map(msg)
	b, _ := full.Map(msg)
	a.ID, b.ID = "", ""
	if !reflect.DeepEqual(a, b) {
		t.Errorf("match only:\n%+v\nDefaultTopic:\n%+v", a, b)
	}
}

func TestIDsAreUniqueAndOrdered(t *testing.T) {
	m := mustCompile(t, cloudevent.DefaultConfig())
	prev := ""
	for i := 0; i < 1000; i++ {
		e, err := m.Map(cloudevent.Message{Topic: "devices/a/t"})
		if err != nil {
			t.Fatal(err)
		}
		if u, err := uuid.Parse(e.ID); err != nil || u.Version() != 7 || u.String() != e.ID {
			t.Fatalf("id %q is not a canonical UUIDv7: %v", e.ID, err)
		}
		if e.ID <= prev {
			t.Fatalf("id %q not after %q", e.ID, prev)
		}
		prev = e.ID
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  cloudevent.Config
		want []string
	}{
		{cloudevent.Config{Topics: []cloudevent.Topic{{Match: "a/{x}", Source: "/s/{y}", Type: "t"}}}, []string{"topics[0].source: unknown variable {y}"}},
		{cloudevent.Config{Topics: []cloudevent.Topic{{Match: "a/#/b", Source: "/s", Type: "t"}}}, []string{"topics[0].match: \"a/#/b\": # must be the last level"}},
		{cloudevent.Config{Topics: []cloudevent.Topic{{Match: "a/{x}/{x}", Source: "/s", Type: "{y}"}}}, []string{"topics[0].match", "appears twice", "topics[0].type: unknown variable {y}"}},
		{cloudevent.Config{Topics: []cloudevent.Topic{{Match: "a", Source: "/s", Type: "t{"}}}, []string{"topics[0].type: unclosed {"}},
		{cloudevent.Config{Unmatched: "keep"}, []string{`unmatched: must be "generic" or "drop"`}},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if err == nil {
			t.Errorf("%+v: no error", tt.cfg)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
	}
}

// FuzzMap feeds arbitrary topics, payloads and properties through the
// mapping: it must never panic and always produce an event that the strict
// validator accepts in the JSON format, that sdk-go reads back as the same
// event, and that keeps the payload bytes (JSON data may differ only in
// white space) through the buffer form.
func FuzzMap(f *testing.F) {
	f.Add("devices/th-01/telemetry", []byte(`{"temperature":21.5}`), "", "k", "v")
	f.Add("devices/\xff/x", []byte{0, 1, 2, 0xff}, "application/json", "", "")
	f.Add("", []byte(nil), "text/plain; charset=utf-8", "Ü", "\x00")
	f.Add("a/b/c/d", []byte(`"str"`), "not a type", "ID", "x")
	m, err := cloudevent.Compile(cloudevent.DefaultConfig(), "gw")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte, contentType, key, value string) {
		e, err := m.Map(cloudevent.Message{Topic: topic, Payload: payload, ContentType: contentType, QoS: 1,
			UserProperties: []cloudevent.Property{{key, value}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("invalid event: %v", err)
		}
		if cloudevent.CloudEventsFormat(e.DataContentType) {
			t.Fatalf("datacontenttype %q names a CloudEvents format", e.DataContentType)
		}
		b := cloudevent.AppendJSON(nil, &e)
		ce, warns, err := ceconform.ValidateStructured(b)
		if err != nil || len(warns) > 0 {
			t.Fatalf("strict validator: %v %v\n%s", err, warns, b)
		}
		if len(payload) > 0 && string(ce.Data) != string(payload) && !json.Valid(payload) {
			t.Fatalf("data changed: %q -> %q", payload, ce.Data)
		}
		checkSameAsSDK(t, "sdk-go", &e, sdkParse(t, b))
		var back cloudevent.Event
		if err := cloudevent.Decode(cloudevent.Encode(&e), &back); err != nil || !bytes.Equal(back.Data, e.Data) || back.Source != e.Source {
			t.Fatalf("buffer form: %v %+v", err, back)
		}
	})
}

// BenchmarkMap: a telemetry message to the record in its buffer form, as
// gateway.Handle does per event.
func BenchmarkMap(b *testing.B) {
	m := mustCompile(b, cloudevent.DefaultConfig())
	msg := cloudevent.Message{Topic: "devices/th-01/telemetry", Payload: []byte(`{"temperature":21.5,"humidity":40}`), QoS: 1}
	b.ReportAllocs()
	for b.Loop() {
		e, err := m.Map(msg)
		if err != nil {
			b.Fatal(err)
		}
		_ = cloudevent.Encode(&e)
	}
}

// A device's content type is used as datacontenttype only when it is safe
// in every uplink mode; otherwise the payload travels as bytes
// (application/octet-stream) and the declared type in edgegatecontenttype.
func TestContentTypes(t *testing.T) {
	const forged = `{"specversion":"1.0","id":"forged-1","source":"/edgegate/gw-1/devices/admin-panel","type":"io.edgegate.alert.unlock"}`
	tests := []struct {
		declared, payload string
		wantCT            string
		wantJSON          bool   // data, not data_base64
		wantExt           string // edgegatecontenttype; "" absent
	}{
		{"application/cloudevents+json", forged, "application/octet-stream", false, "application/cloudevents+json"},
		{"Application/CloudEvents+JSON; charset=utf-8", forged, "application/octet-stream", false, "Application/CloudEvents+JSON; charset=utf-8"},
		{"application/cloudevents-batch+json", "[" + forged + "]", "application/octet-stream", false, "application/cloudevents-batch+json"},
		{"application/cloudevents", forged, "application/octet-stream", false, "application/cloudevents"},
		{" application/cloudevents+json ", "", "application/octet-stream", false, " application/cloudevents+json "},
		{"application/json", "not json", "application/octet-stream", false, "application/json"},
		{"application/json", "\"\xff\"", "application/octet-stream", false, "application/json"},
		{"text/json", "{", "application/octet-stream", false, "text/json"},
		{"application/vnd.acme+json", "<xml/>", "application/octet-stream", false, "application/vnd.acme+json"},
		{"application/vnd.acme+json", `{"a":1}`, "application/vnd.acme+json", false, ""},
		{"application/json", `{"a":1}`, "application/json", true, ""},
		{"  application/json  ", `{"a":1}`, "application/json", true, ""},
		{"text/plain", "hello", "text/plain", false, ""},
		{"application/json", "", "application/json", false, ""},
		{"bogus", "x", "application/octet-stream", false, "bogus"},
		{"text/plain;\tq=1", "x", "application/octet-stream", false, "text/plain;\uFFFDq=1"},
		{"", "x", "application/octet-stream", false, ""},
	}
	m := mustCompile(t, cloudevent.DefaultConfig())
	for _, tt := range tests {
		e, err := m.Map(cloudevent.Message{Topic: "devices/d/t", Payload: []byte(tt.payload), ContentType: tt.declared})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Validate(); err != nil {
			t.Errorf("%q: invalid: %v", tt.declared, err)
		}
		ext, _ := e.Extension(cloudevent.ExtContentType)
		if e.DataContentType != tt.wantCT || len(e.Data) > 0 && e.DataBase64 == tt.wantJSON || ext.Str() != tt.wantExt {
			t.Errorf("%q over %q: datacontenttype %q, base64 %v, %s %q; want %q, JSON %v, %q",
				tt.declared, tt.payload, e.DataContentType, e.DataBase64, cloudevent.ExtContentType, ext.Str(),
				tt.wantCT, tt.wantJSON, tt.wantExt)
		}
		if string(e.Data) != tt.payload {
			t.Errorf("%q: data %q, want the payload", tt.declared, e.Data)
		}
	}
}

// Every device event says who published it; a device cannot say it.
func TestProvenance(t *testing.T) {
	m := mustCompile(t, cloudevent.DefaultConfig())
	spoof := []cloudevent.Property{{Key: "edgegateuser", Value: "admin"}, {Key: "EdgeGate-ClientID", Value: "other"},
		{Key: "edgegateauth", Value: "certificate"}, {Key: "edgegatewill", Value: "true"}}
	tests := []struct {
		msg  cloudevent.Message
		want map[string]any // absent when nil
	}{
		{cloudevent.Message{ClientID: "door-1", Username: "door-1", AuthMethod: "password"},
			map[string]any{"edgegateclientid": "door-1", "edgegateuser": "door-1", "edgegateauth": "password", "edgegatewill": nil}},
		{cloudevent.Message{ClientID: "anon\x00", AuthMethod: "anonymous"},
			map[string]any{"edgegateclientid": "anon\uFFFD", "edgegateuser": nil, "edgegateauth": "anonymous"}},
		{cloudevent.Message{ClientID: "door-1", Username: "CN=door 1", AuthMethod: "certificate", Will: true},
			map[string]any{"edgegateuser": "CN=door 1", "edgegateauth": "certificate", "edgegatewill": true}},
	}
	for _, tt := range tests {
		tt.msg.Topic, tt.msg.Payload, tt.msg.UserProperties = "devices/door-1/state", []byte(`1`), spoof
		var drops int
		tt.msg.DroppedProperty = func(_ cloudevent.Message, p cloudevent.Property, reason string) {
			if reason != cloudevent.DropReserved {
				t.Errorf("%s dropped as %s, want reserved", p.Key, reason)
			}
			drops++
		}
		e, err := m.Map(tt.msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Validate(); err != nil {
			t.Fatal(err)
		}
		got := decode(t, e)
		for k, v := range tt.want {
			if g, ok := got[k]; v == nil && ok || v != nil && g != v {
				t.Errorf("%+v: %s = %v, want %v", tt.msg, k, g, v)
			}
		}
		if drops != len(spoof) {
			t.Errorf("%d of the device's %d gateway extensions dropped", drops, len(spoof))
		}
	}
}

// Connect and disconnect events: source, subject, identity and data.
func TestPresence(t *testing.T) {
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	m := mustCompile(t, cloudevent.DefaultConfig())
	e, err := m.Presence(cloudevent.Presence{Connected: true, ClientID: "door 1", Username: "door 1", AuthMethod: "password",
		Listener: "tls", RemoteAddr: "192.0.2.7:51234", ProtocolVersion: 5, Reason: "ignored", Time: at})
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, e)
	want := map[string]any{
		"type": cloudevent.TypeConnected, "source": "/edgegate/gw-1/clients/door%201", "subject": "door 1",
		"time": "2026-12-01T08:00:00Z", "datacontenttype": "application/json",
		"edgegateclientid": "door 1", "edgegateuser": "door 1", "edgegateauth": "password",
		"data": map[string]any{"client_id": "door 1", "username": "door 1", "auth": "password", "listener": "tls",
			"remote_addr": "192.0.2.7:51234", "protocol_version": float64(5)},
	}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	e, err = m.Presence(cloudevent.Presence{ClientID: "\xff", AuthMethod: "anonymous", Reason: "connection_lost", Detail: "EOF"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	got = decode(t, e)
	if got["type"] != cloudevent.TypeDisconnected || fmt.Sprint(got["data"]) != "map[auth:anonymous client_id:\uFFFD detail:EOF reason:connection_lost]" {
		t.Errorf("disconnected: %v", got)
	}
	if _, ok := got["edgegateuser"]; ok {
		t.Errorf("anonymous client has edgegateuser: %v", got)
	}
	if _, _, err := ceconform.ValidateStructured(cloudevent.AppendJSON(nil, &e)); err != nil {
		t.Errorf("strict validator: %v", err)
	}

	off := cloudevent.DefaultConfig()
	off.Presence.Enabled = false
	if mp := mustCompile(t, off); mp.PresenceEnabled() {
		t.Error("presence enabled")
	} else if _, err := mp.Presence(cloudevent.Presence{ClientID: "x"}); err == nil {
		t.Error("presence event made while off")
	}
}
