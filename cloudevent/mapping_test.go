package cloudevent_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
)

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
		{cloudevent.Config{Topics: []cloudevent.Topic{{Match: "a/{x}/{x}", Source: "/s", Type: ""}}}, []string{"topics[0].match", "appears twice", "topics[0].type: must not be empty"}},
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
