package uplink

import (
	"encoding/json"
	"mime"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
)

// FuzzBinaryHeaders maps arbitrary device messages and writes them in
// binary mode: the strict validator accepts the headers and body, and
// reads back the event that was written (as the JSON format has it). A
// device content type that is a CloudEvents format is refused instead.
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
		if ceFormat(e.DataContentType) {
			if err == nil {
				t.Fatalf("datacontenttype %q sent in binary mode", e.DataContentType)
			}
			return
		}
		if err != nil {
			t.Fatalf("binaryHeaders: %v", err)
		}
		if jsonType(e.DataContentType) && e.DataBase64 && !json.Valid(e.Data) {
			// A device declared JSON (application/vnd.x+json) and sent
			// something else: strict receivers refuse that body in binary
			// mode (and the delivery dead-letters it); other modes carry
			// it as data_base64.
			return
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

// jsonType reports whether a content type declares JSON: */json or
// */*+json.
func jsonType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	_, sub, _ := strings.Cut(mt, "/")
	return err == nil && (sub == "json" || strings.HasSuffix(sub, "+json"))
}
