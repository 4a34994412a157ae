package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/mqtt"
)

func post(t *testing.T, h http.Handler, header map[string]string, body string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func TestReceiverRequests(t *testing.T) {
	base := time.Unix(1000, 0)
	sent := base.Add(-7 * time.Millisecond).UnixNano() // every payload was sent 7 ms before receipt
	payload := func(dev string, seq int) string {
		return string(devicePayload(dev, int64(seq), sent, 0))
	}
	batch := "[" +
		`{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json","data":` + payload("d-001", 1) + `},` +
		`{"specversion":"1.0","id":"2","source":"/s","type":"t","data":` + quoteJSON(payload("d-001", 2)) + `},` +
		`{"specversion":"1.0","id":"3","source":"/s","type":"t","data_base64":"` + base64.StdEncoding.EncodeToString([]byte(payload("d-002", 1))) + `"},` +
		`{"specversion":"1.0","id":"4","source":"/s","type":"t","data":{"other":"thing"}},` +
		`{"specversion":"1.0","id":"5","source":"/s","type":"t"}` +
		"]"
	binaryHeaders := map[string]string{
		"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "9", "ce-source": "/s", "ce-type": "t",
	}

	tests := []struct {
		name   string
		header map[string]string
		body   string
		code   int
	}{
		{"batch", map[string]string{"Content-Type": "application/cloudevents-batch+json; charset=utf-8"}, batch, 200},
		{"structured", map[string]string{"Content-Type": "application/cloudevents+json"},
			`{"specversion":"1.0","id":"6","source":"/s","type":"t","data":` + payload("d-003", 1) + `}`, 200},
		{"binary", binaryHeaders, payload("d-001", 3), 200},
		{"binary duplicate", binaryHeaders, payload("d-001", 3), 200},
		// Invalid events are recorded, and counted as invalid.
		{"binary without id", map[string]string{"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}, payload("d-001", 4), 200},
		{"plain json", map[string]string{"Content-Type": "application/json"}, payload("d-001", 5), 400},
		{"broken batch", map[string]string{"Content-Type": "application/cloudevents-batch+json"}, `[{"specversion":`, 400},
		{"batch event without specversion", map[string]string{"Content-Type": "application/cloudevents-batch+json"}, `[{"data":{}}]`, 200},
		{"bad base64", map[string]string{"Content-Type": "application/cloudevents+json"}, `{"specversion":"1.0","data_base64":"!!"}`, 200},
		{"binary not percent-encoded", map[string]string{
			"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "10", "ce-source": "/s", "ce-type": "t", "ce-subject": "a b",
		}, payload("d-004", 1), 200},
	}
	r := newRecorder()
	r.now = func() time.Time { return base }
	for _, tt := range tests {
		if got := post(t, r, tt.header, tt.body); got != tt.code {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.code)
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", rec.Code)
	}

	s := r.snapshot()
	want := map[eventKey]uint32{{"d-001", 1}: 1, {"d-001", 2}: 1, {"d-002", 1}: 1, {"d-003", 1}: 1, {"d-001", 3}: 2, {"d-001", 4}: 1, {"d-004", 1}: 1}
	if len(s.Counts) != len(want) {
		t.Errorf("counts = %v, want %v", s.Counts, want)
	}
	for k, v := range want {
		if s.Counts[k] != v {
			t.Errorf("count %v = %d, want %d", k, s.Counts[k], v)
		}
	}
	if s.Events != 12 || s.Foreign != 4 || s.Bad != 3 || s.Requests != 11 || s.Invalid != 4 {
		t.Errorf("events=%d foreign=%d bad=%d requests=%d invalid=%d, want 12 4 3 11 4", s.Events, s.Foreign, s.Bad, s.Requests, s.Invalid)
	}
	if s.Sample != "header ce-id: required" {
		t.Errorf("first violation %q", s.Sample)
	}
	if len(s.Latencies) != 7 {
		t.Fatalf("%d latencies, want 7 (first receipts only)", len(s.Latencies))
	}
	for _, l := range s.Latencies {
		if l != 7*time.Millisecond {
			t.Errorf("latency %s, want 7ms", l)
		}
	}
	if !s.First.Equal(base) || !s.Last.Equal(base) || r.unique() != 7 {
		t.Errorf("first=%v last=%v unique=%d", s.First, s.Last, r.unique())
	}
}

func quoteJSON(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// The receiver must survive whatever a broken uplink sends.
func FuzzEventPayloads(f *testing.F) {
	f.Add("application/cloudevents-batch+json", `[{"specversion":"1.0","data":{"dev":"d","seq":1}}]`)
	f.Add("application/cloudevents+json", `{"specversion":"1.0","data_base64":"e30="}`)
	f.Add("", `{}`)
	f.Fuzz(func(t *testing.T, ct, body string) {
		r := newRecorder()
		post(t, r, map[string]string{"Content-Type": ct, "ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}, body)
		post(t, r, map[string]string{"Content-Type": ct}, body)
		_ = r.snapshot()
	})
}

// In mqtt mode the recorder is the cloud broker's Handler: each PUBLISH is
// one structured event, checked (validateEvery 1) or only decoded, and
// counted as the HTTP requests are; during an outage the broker withholds
// the PUBACK.
func TestReceiverMQTT(t *testing.T) {
	base := time.Unix(1000, 0)
	sent := base.Add(-7 * time.Millisecond).UnixNano()
	event := func(id string, seq int) []byte {
		return []byte(`{"specversion":"1.0","id":"` + id + `","source":"/s","type":"t","datacontenttype":"application/json","data":` +
			string(devicePayload("d-001", int64(seq), sent, 0)) + `}`)
	}
	for _, every := range []int64{1, 1000} {
		r := newRecorder()
		r.now = func() time.Time { return base }
		r.validateEvery = every
		ctx := context.Background()
		for _, p := range [][]byte{event("1", 1), event("2", 2), event("2", 2)} {
			if err := r.Handle(ctx, mqtt.Message{Payload: p, QoS: 1}); err != nil {
				t.Fatalf("validate every %d: Handle: %v", every, err)
			}
		}
		// Broken JSON: checked, it is an invalid event (which fails the
		// run); only decoded, the broker rejects it.
		err := r.Handle(ctx, mqtt.Message{Payload: []byte(`{"specversion":`)})
		if every == 1 && err != nil || every > 1 && !errors.Is(err, mqtt.ErrRejected) {
			t.Errorf("validate every %d: broken JSON: %v", every, err)
		}
		r.down.Store(true)
		if err := r.Handle(ctx, mqtt.Message{Payload: event("3", 3)}); !errors.Is(err, mqtt.ErrOverloaded) {
			t.Errorf("validate every %d: outage: %v, want ErrOverloaded", every, err)
		}
		s := r.snapshot()
		if len(s.Counts) != 2 || s.Counts[eventKey{"d-001", 2}] != 2 || s.Requests != 4 ||
			every == 1 && (s.Events != 4 || s.Invalid != 1 || s.Foreign != 1 || s.Bad != 0) ||
			every > 1 && (s.Events != 3 || s.Invalid != 0 || s.Bad != 1) {
			t.Errorf("validate every %d: %+v", every, s)
		}
		if len(s.Latencies) != 2 || s.Latencies[0] != 7*time.Millisecond {
			t.Errorf("validate every %d: latencies %v", every, s.Latencies)
		}
	}
	// A checked message that violates CloudEvents 1.0 is recorded and counted.
	r := newRecorder()
	if err := r.Handle(context.Background(), mqtt.Message{Payload: []byte(`{"id":"1","source":"/s","type":"t","data":` +
		string(devicePayload("d-002", 1, sent, 0)) + `}`)}); err != nil {
		t.Fatal(err)
	}
	if s := r.snapshot(); s.Invalid != 1 || s.Sample == "" || len(s.Counts) != 1 {
		t.Errorf("event without specversion: %+v", s)
	}
}

// --payload pads a device message to the size asked for, and the
// recorder still reads it back.
func TestDevicePayloadPadded(t *testing.T) {
	for _, size := range []int{0, 10, 200, 1000} {
		p := devicePayload("d-001", 42, 1234567890, size)
		if size > 70 && len(p) != size {
			t.Errorf("size %d: payload of %d bytes: %s", size, len(p), p)
		}
		var m struct {
			Dev    string `json:"dev"`
			Seq    int64  `json:"seq"`
			SentNS int64  `json:"sent_ns"`
		}
		if err := json.Unmarshal(p, &m); err != nil || m.Dev != "d-001" || m.Seq != 42 || m.SentNS != 1234567890 {
			t.Errorf("size %d: %s decodes to %+v, %v", size, p, m, err)
		}
	}
}
