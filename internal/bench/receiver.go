package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegate/edgegate/internal/ceconform"
	"github.com/edgegate/edgegate/internal/receiver"
	"github.com/edgegate/edgegate/mqtt"
)

// maxBody bounds one request body read by the recorder.
const maxBody = 64 << 20

// eventKey identifies one published message.
type eventKey struct {
	dev string
	seq int64
}

// recorder is the CloudEvents HTTP endpoint the gateway's uplink sends to
// (an internal/receiver Handler, lenient), or in mqtt mode the cloud
// broker's mqtt.Handler (Handle): it records for each event whose
// data is a device payload when it arrived and how often. One request in
// validateEvery is checked strictly against CloudEvents 1.0 (the others are
// only decoded, so the receiver does not become the bottleneck on the shared
// machine): events that violate it are still recorded, so the measurements
// stay meaningful, but counted as invalid. Requests that hold no event it can
// read are rejected.
type recorder struct {
	now           func() time.Time
	validateEvery int64 // 1: every request
	http          *receiver.Handler
	seen          atomic.Int64 // requests offered to Check
	// down makes the recorder refuse every request with 503 (an outage).
	down atomic.Bool

	mu        sync.Mutex
	counts    map[eventKey]uint32
	latencies []time.Duration // of first receipts
	// steadyPrefix: devices whose id starts with it (overload runs' steady
	// devices) also have their latencies in steadyLat.
	steadyPrefix string
	steadyLat    []time.Duration
	first        time.Time
	last         time.Time
	requests     int64
	events       int64  // every event, duplicates included
	foreign      int64  // events whose data is not a device payload
	bad          int64  // requests rejected
	invalid      int64  // events that violate CloudEvents 1.0
	sample       string // the first violation seen
}

func newRecorder() *recorder {
	r := &recorder{now: time.Now, validateEvery: 1, counts: make(map[eventKey]uint32, 1<<16)}
	r.http = &receiver.Handler{
		Accept:  r.accept,
		Refused: func(*http.Request, *receiver.Refusal) { r.rejected() },
		Check:   func() bool { return r.validateEvery <= 1 || (r.seen.Add(1)-1)%r.validateEvery == 0 },
		Clock:   func() time.Time { return r.now() },
		Lenient: true,
		MaxBody: maxBody,
	}
	return r
}

// devicePayloadJSON is what the bench devices publish.
type devicePayloadJSON struct {
	Dev    string `json:"dev"`
	Seq    int64  `json:"seq"`
	SentNS int64  `json:"sent_ns"`
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.down.Load() {
		http.Error(w, "outage", http.StatusServiceUnavailable)
		return
	}
	r.http.ServeHTTP(w, req)
}

// accept records a request the Handler accepted: checked, with the events
// the validator read; unchecked, with the data decodePayloads finds.
func (r *recorder) accept(w http.ResponseWriter, req *receiver.Request) {
	if !req.Checked {
		payloads, err := decodePayloads(req.HTTP.Header, req.Body)
		if err != nil {
			r.rejected()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.record(req.Received, payloads, 0, "")
		w.WriteHeader(http.StatusOK)
		return
	}
	payloads := make([][]byte, len(req.Events))
	invalid := 0
	for i, e := range req.Events {
		payloads[i] = e.Data
		if e.Err != nil {
			invalid++
		}
	}
	sample := ""
	if len(req.Problems) > 0 {
		sample = req.Problems[0]
		if invalid == 0 {
			invalid = len(req.Events) // the message as a whole is invalid
		}
	}
	r.record(req.Received, payloads, invalid, sample)
	w.WriteHeader(http.StatusOK)
}

// structuredHeader is what an MQTT uplink message is: the CloudEvents MQTT
// binding's structured mode, the event in the JSON format (MQTT 3.1.1 has
// no content type to say so).
var structuredHeader = http.Header{"Content-Type": {"application/cloudevents+json"}}

// Handle is the recorder as the cloud broker's mqtt.Handler (mqtt mode):
// each PUBLISH from the gateway's MQTT uplink is one event, checked against
// CloudEvents 1.0 as one in validateEvery HTTP requests would be, and
// recorded like one. During an outage (down) it answers mqtt.ErrOverloaded:
// the broker withholds the PUBACK and closes the uplink's 3.1.1
// connection, so the gateway keeps the event and sends it again.
func (r *recorder) Handle(_ context.Context, m mqtt.Message) error {
	if r.down.Load() {
		return mqtt.ErrOverloaded
	}
	now := r.now()
	if !r.http.Check() {
		payloads, err := decodePayloads(structuredHeader, m.Payload)
		if err != nil {
			r.rejected()
			return mqtt.ErrRejected
		}
		r.record(now, payloads, 0, "")
		return nil
	}
	e, _, err := ceconform.ValidateStructured(m.Payload)
	invalid, sample := 0, ""
	if v := (*ceconform.Violations)(nil); errors.As(err, &v) && len(v.Problems) > 0 {
		invalid, sample = 1, v.Problems[0]
	} else if err != nil {
		invalid, sample = 1, err.Error()
	}
	r.record(now, [][]byte{e.Data}, invalid, sample)
	return nil
}

func (r *recorder) rejected() {
	r.mu.Lock()
	r.requests++
	r.bad++
	r.mu.Unlock()
}

// record counts one accepted request: its events' data, how many of them are
// invalid, and its first violation.
func (r *recorder) record(now time.Time, payloads [][]byte, invalid int, sample string) {
	type parsed struct {
		key eventKey
		lat time.Duration
		ok  bool
	}
	ps := make([]parsed, len(payloads))
	for i, p := range payloads {
		if len(p) > 0 && p[0] == '"' { // a JSON string holding the payload
			var s string
			if json.Unmarshal(p, &s) == nil {
				p = []byte(s)
			}
		}
		var d devicePayloadJSON
		if len(bytes.TrimSpace(p)) == 0 || json.Unmarshal(p, &d) != nil || d.Dev == "" || d.Seq <= 0 {
			continue
		}
		ps[i] = parsed{eventKey{d.Dev, d.Seq}, now.Sub(time.Unix(0, d.SentNS)), true}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.events += int64(len(payloads))
	r.invalid += int64(invalid)
	if r.sample == "" {
		r.sample = sample
	}
	if len(payloads) > 0 {
		if r.first.IsZero() {
			r.first = now
		}
		if now.After(r.last) {
			r.last = now
		}
	}
	for _, p := range ps {
		if !p.ok {
			r.foreign++
			continue
		}
		c := r.counts[p.key]
		r.counts[p.key] = c + 1
		if c == 0 {
			r.latencies = append(r.latencies, p.lat)
			if r.steadyPrefix != "" && strings.HasPrefix(p.key.dev, r.steadyPrefix) {
				r.steadyLat = append(r.steadyLat, p.lat)
			}
		}
	}
}

// setSteady makes the recorder keep the latencies of devices whose id
// starts with prefix apart as well.
func (r *recorder) setSteady(prefix string) {
	r.mu.Lock()
	r.steadyPrefix = prefix
	r.mu.Unlock()
}

// unique returns how many distinct device messages have arrived.
func (r *recorder) unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.latencies)
}

// receiverStats is a snapshot of a recorder.
type receiverStats struct {
	Counts    map[eventKey]uint32
	Latencies []time.Duration
	// SteadyLatencies are those of the steady devices (setSteady).
	SteadyLatencies []time.Duration
	First           time.Time
	Last            time.Time
	Requests        int64
	Events          int64
	Foreign         int64
	Bad             int64
	Invalid         int64  // events that violate CloudEvents 1.0
	Sample          string // the first violation seen
}

// snapshot copies the recorder's state; call it once the load is over.
func (r *recorder) snapshot() receiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := make(map[eventKey]uint32, len(r.counts))
	for k, v := range r.counts {
		counts[k] = v
	}
	return receiverStats{
		Counts:          counts,
		Latencies:       append([]time.Duration(nil), r.latencies...),
		SteadyLatencies: append([]time.Duration(nil), r.steadyLat...),
		First:           r.first,
		Last:            r.last,
		Requests:        r.requests,
		Events:          r.events,
		Foreign:         r.foreign,
		Bad:             r.bad,
		Invalid:         r.invalid,
		Sample:          r.sample,
	}
}

// decodePayloads returns the data of each event of a request without
// checking it against the spec (the fast path between validated requests).
func decodePayloads(h http.Header, body []byte) ([][]byte, error) {
	type structured struct {
		Data       json.RawMessage `json:"data"`
		DataBase64 []byte          `json:"data_base64"`
	}
	pick := func(e structured) []byte {
		if e.DataBase64 != nil {
			return e.DataBase64
		}
		return e.Data
	}
	ct := h.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/cloudevents-batch+json"):
		var evs []structured
		if err := json.Unmarshal(body, &evs); err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
		out := make([][]byte, len(evs))
		for i, e := range evs {
			out[i] = pick(e)
		}
		return out, nil
	case strings.HasPrefix(ct, "application/cloudevents+json"):
		var e structured
		if err := json.Unmarshal(body, &e); err != nil {
			return nil, fmt.Errorf("structured: %w", err)
		}
		return [][]byte{pick(e)}, nil
	default:
		if h.Get("Ce-Id") == "" {
			return nil, fmt.Errorf("not a CloudEvents request (content type %q, no ce-id)", ct)
		}
		return [][]byte{body}, nil
	}
}
