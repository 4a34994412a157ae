package uplink

import (
	"strings"
	"testing"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
)

// FuzzBinaryHeaders maps arbitrary device messages and writes them in
// binary mode: whatever content type the device declared (a CloudEvents
// format, JSON over a body that is not JSON), the strict validator accepts
// the headers and body, and reads back the event that was written (as the
// JSON format has it).
func FuzzBinaryHeaders(f *testing.F) {
	f.Add("devices/salle à manger/temp 100%", []byte(`{"t":1}`), "", "Zone", "a \"b\" %", false)
	f.Add("devices/\xff/x", []byte{0, 0xff}, "image/png", "k", "\x00\x7f", true)
	f.Add("devices/d/t", []byte(`x`), "application/cloudevents+json", "replayed", "no", true)
	m, err := cloudevent.Compile(cloudevent.DefaultConfig(), "gw 1")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte, contentType, key, value string, replayed bool) {
		e, err := m.Map(cloudevent.Message{Topic: topic, Payload: payload, ContentType: contentType, QoS: 1,
			UserProperties: []cloudevent.Property{{Key: key, Value: value}}})
		if err != nil {
			t.Fatal(err)
		}
		e.Replayed = replayed
		h, err := binaryHeaders(&e)
		if err != nil {
			t.Fatalf("binaryHeaders: %v", err)
		}
		views, warns, err := ceconform.Validate(h, e.Data)
		if err != nil || len(warns) > 0 || len(views) != 1 {
			t.Fatalf("strict validator: %v %v (%d events)\n%v", err, warns, len(views), h)
		}
		if err := sameEvent(views[0], &e); err != nil {
			t.Fatalf("read back: %v\n%v", err, h)
		}
	})
}

// The sender's own refusal of a datacontenttype that is a CloudEvents
// format, a safety net behind the mapping (which never makes one): in any
// case and with parameters, binary mode refuses to send it.
func TestBinaryHeadersRefuseCloudEventsFormat(t *testing.T) {
	for _, ct := range []string{"application/cloudevents+json", "Application/CloudEvents-Batch+JSON; charset=utf-8",
		" application/cloudevents", "application/cloudevents+xml"} {
		e := cloudevent.Event{ID: "1", Source: "/s", Type: "t", DataContentType: ct, Data: []byte(`{"id":"forged-1"}`), DataBase64: true}
		if _, err := binaryHeaders(&e); err == nil || !strings.Contains(err.Error(), "CloudEvents format") {
			t.Errorf("%q: err = %v, want a refusal", ct, err)
		}
	}
}
