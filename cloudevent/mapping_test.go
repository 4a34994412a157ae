package cloudevent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
)

func mustCompile(t testing.TB, c Config) *Mapper {
	t.Helper()
	m, err := Compile(c, "gw-1")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// decode marshals the event as the buffer stores it and decodes the JSON.
func decode(t testing.TB, e event.Event) map[string]any {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
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
		cfg     Config
		msg     Message
		want    map[string]any // attributes that must be present with these values
		absent  []string
		wantErr error
	}{
		{
			name: "json telemetry",
			cfg:  DefaultConfig(),
			msg:  Message{Topic: "devices/th-01/telemetry", Payload: []byte(`{"temperature":21.5}`), QoS: 1, Received: at},
			want: map[string]any{
				"specversion": "1.0", "source": "/edgegate/gw-1/devices/th-01", "type": "io.edgegate.device.telemetry",
				"subject": "th-01", "datacontenttype": "application/json", "data": map[string]any{"temperature": 21.5},
				"time": "2026-11-23T03:00:00Z", "mqtttopic": "devices/th-01/telemetry", "mqttqos": float64(1),
			},
			absent: []string{"data_base64"},
		},
		{
			name:   "binary payload",
			cfg:    DefaultConfig(),
			msg:    Message{Topic: "devices/cam/image", Payload: []byte{0xff, 0x00, 0x01}, Received: at},
			want:   map[string]any{"datacontenttype": "application/octet-stream", "data_base64": base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1})},
			absent: []string{"data"},
		},
		{
			name:   "empty payload has no data",
			cfg:    DefaultConfig(),
			msg:    Message{Topic: "devices/d/ping", Received: at},
			absent: []string{"data", "data_base64", "datacontenttype"},
		},
		{
			name:   "plain text is not JSON",
			cfg:    DefaultConfig(),
			msg:    Message{Topic: "devices/d/status", Payload: []byte("online"), Received: at},
			want:   map[string]any{"data_base64": base64.StdEncoding.EncodeToString([]byte("online"))},
			absent: []string{"data"},
		},
		{
			name: "mqtt5 content type and user properties",
			cfg:  DefaultConfig(),
			msg: Message{Topic: "devices/d/t", Payload: []byte(`{"a":1}`), ContentType: "application/vnd.acme+json", Received: at,
				UserProperties: []Property{{"Firmware-Version", "1.2"}, {"id", "spoof"}, {"%%", "x"}}},
			want:   map[string]any{"datacontenttype": "application/vnd.acme+json", "firmwareversion": "1.2", "data_base64": base64.StdEncoding.EncodeToString([]byte(`{"a":1}`))},
			absent: []string{"data"},
		},
		{
			name: "unusual characters are escaped in source",
			cfg:  DefaultConfig(),
			msg:  Message{Topic: "devices/a b?#ü/x y", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/devices/a%20b%3F%23%C3%BC", "subject": "a b?#ü", "type": "io.edgegate.device.x y"},
		},
		{
			name: "invalid utf-8 topic",
			cfg:  DefaultConfig(),
			msg:  Message{Topic: "devices/\xff\xfe/t", Payload: []byte(`1`), Received: at},
			want: map[string]any{"subject": "\uFFFD", "mqtttopic": "devices/\uFFFD/t"},
		},
		{
			name: "unmatched generic",
			cfg:  DefaultConfig(),
			msg:  Message{Topic: "factory/line1", ClientID: "plc 7", Payload: []byte(`true`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/clients/plc%207", "type": "io.edgegate.mqtt.message", "subject": "factory/line1", "data": true},
		},
		{
			name:    "unmatched drop",
			cfg:     Config{Topics: []Topic{DefaultTopic()}, Unmatched: UnmatchedDrop},
			msg:     Message{Topic: "factory/line1"},
			wantErr: ErrUnmatched,
		},
		{
			name: "empty device level omits subject",
			cfg:  DefaultConfig(),
			msg:  Message{Topic: "devices//t", Payload: []byte(`1`), Received: at},
			want: map[string]any{"source": "/edgegate/gw-1/devices/"}, absent: []string{"subject"},
		},
		{
			name: "multi-level wildcard",
			cfg: Config{Topics: []Topic{{Match: "site/{site}/#", Source: "/sites/{site}", Type: "io.site", Subject: "{topic}"}},
				Unmatched: UnmatchedDrop},
			msg:  Message{Topic: "site/berlin/a/b/c", Payload: []byte(`1`), Received: at},
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
	m := mustCompile(t, DefaultConfig())
	prev := ""
	for i := 0; i < 1000; i++ {
		e, err := m.Map(Message{Topic: "devices/a/t"})
		if err != nil {
			t.Fatal(err)
		}
		if e.ID() <= prev {
			t.Fatalf("id %q not after %q", e.ID(), prev)
		}
		prev = e.ID()
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want []string
	}{
		{Config{Topics: []Topic{{Match: "a/{x}", Source: "/s/{y}", Type: "t"}}}, []string{"topics[0].source: unknown variable {y}"}},
		{Config{Topics: []Topic{{Match: "a/#/b", Source: "/s", Type: "t"}}}, []string{"topics[0].match: \"a/#/b\": # must be the last level"}},
		{Config{Topics: []Topic{{Match: "a/{x}/{x}", Source: "/s", Type: ""}}}, []string{"topics[0].match", "appears twice", "topics[0].type: must not be empty"}},
		{Config{Topics: []Topic{{Match: "a", Source: "/s", Type: "t{"}}}, []string{"topics[0].type: unclosed {"}},
		{Config{Unmatched: "keep"}, []string{`unmatched: must be "generic" or "drop"`}},
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
// mapping: it must never panic and always produce a valid CloudEvent whose
// JSON form round-trips and keeps the payload bytes.
func FuzzMap(f *testing.F) {
	f.Add("devices/th-01/telemetry", []byte(`{"temperature":21.5}`), "", "k", "v")
	f.Add("devices/\xff/x", []byte{0, 1, 2, 0xff}, "application/json", "", "")
	f.Add("", []byte(nil), "text/plain; charset=utf-8", "Ü", "\x00")
	f.Add("a/b/c/d", []byte(`"str"`), "not a type", "ID", "x")
	m, err := Compile(DefaultConfig(), "gw")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte, contentType, key, value string) {
		e, err := m.Map(Message{Topic: topic, Payload: payload, ContentType: contentType, QoS: 1,
			UserProperties: []Property{{key, value}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("invalid event: %v", err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.Valid(b) || !json.Valid(b) {
			t.Fatalf("not valid JSON: %q", b)
		}
		var back event.Event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("round trip: %v\n%s", err, b)
		}
		if len(payload) > 0 && string(back.Data()) != string(payload) {
			// JSON data may be re-encoded by the decoder but must stay equivalent.
			if !json.Valid(payload) {
				t.Fatalf("data changed: %q -> %q", payload, back.Data())
			}
		}
	})
}

func BenchmarkMap(b *testing.B) {
	m := mustCompile(b, DefaultConfig())
	msg := Message{Topic: "devices/th-01/telemetry", Payload: []byte(`{"temperature":21.5,"humidity":40}`), QoS: 1}
	b.ReportAllocs()
	for b.Loop() {
		e, err := m.Map(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.MarshalJSON(); err != nil { // as the gateway encodes
			b.Fatal(err)
		}
	}
}
