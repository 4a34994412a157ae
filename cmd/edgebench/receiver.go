package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edgegate/edgegate/internal/ceconform"
)

// maxBody bounds one request body read by the receiver.
const maxBody = 64 << 20

// eventKey identifies one published message.
type eventKey struct {
	dev string
	seq int64
}

// receiver is the CloudEvents HTTP endpoint the gateway's uplink sends to. It accepts
// batch (application/cloudevents-batch+json), structured (application/cloudevents+json)
// and binary (ce-* headers) requests, and records for each event whose data is a device
// payload when it arrived and how often. One request in validateEvery is checked strictly
// against CloudEvents 1.0 (internal/ceconform; the others are only decoded, so the receiver
// does not become the bottleneck on the shared machine): events that violate it are
// still recorded, so the measurements stay meaningful, but counted as invalid. Requests
// that hold no event it can read are rejected.
type receiver struct {
	now           func() time.Time
	validateEvery int64 // 1: every request

	mu        sync.Mutex
	counts    map[eventKey]uint32
	latencies []time.Duration // of first receipts
	first     time.Time
	last      time.Time
	requests  int64
	events    int64  // every event, duplicates included
	foreign   int64  // events whose data is not a device payload
	bad       int64  // requests rejected
	invalid   int64  // events that violate CloudEvents 1.0
	sample    string // the first violation seen
}

func newReceiver() *receiver {
	return &receiver{now: time.Now, validateEvery: 1, counts: make(map[eventKey]uint32, 1<<16)}
}

// devicePayloadJSON is what the bench devices publish.
type devicePayloadJSON struct {
	Dev    string `json:"dev"`
	Seq    int64  `json:"seq"`
	SentNS int64  `json:"sent_ns"`
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost && req.Method != http.MethodPut {
		r.reject(w, http.StatusMethodNotAllowed, "method %s not allowed", req.Method)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		r.reject(w, http.StatusBadRequest, "read body: %v", err)
		return
	}
	now := r.now()
	r.mu.Lock()
	n := r.requests + r.bad
	r.mu.Unlock()
	if r.validateEvery > 1 && n%r.validateEvery != 0 {
		payloads, err := decodePayloads(req.Header, body)
		if err != nil {
			r.reject(w, http.StatusBadRequest, "%v", err)
			return
		}
		r.record(now, payloads, 0, nil)
		w.WriteHeader(http.StatusOK)
		return
	}
	events, _, err := ceconform.Validate(req.Header, body)
	if len(events) == 0 && err != nil {
		r.reject(w, http.StatusBadRequest, "%v", err)
		return
	}
	payloads := make([][]byte, len(events))
	invalid := 0
	for i, e := range events {
		payloads[i] = e.Data
		if e.Err != nil {
			invalid++
		}
	}
	if err != nil && invalid == 0 {
		invalid = len(events) // the message as a whole is invalid
	}
	r.record(now, payloads, invalid, err)
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) reject(w http.ResponseWriter, code int, format string, args ...any) {
	r.mu.Lock()
	r.requests++
	r.bad++
	r.mu.Unlock()
	http.Error(w, fmt.Sprintf(format, args...), code)
}

// record counts one accepted request: its events' data, how many of them are
// invalid, and the violations (verr).
func (r *receiver) record(now time.Time, payloads [][]byte, invalid int, verr error) {
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
	if verr != nil && r.sample == "" {
		r.sample, _, _ = strings.Cut(verr.Error(), "\n")
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
		}
	}
}

// unique returns how many distinct device messages have arrived.
func (r *receiver) unique() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.latencies)
}

// receiverStats is a snapshot of a receiver.
type receiverStats struct {
	Counts    map[eventKey]uint32
	Latencies []time.Duration
	First     time.Time
	Last      time.Time
	Requests  int64
	Events    int64
	Foreign   int64
	Bad       int64
	Invalid   int64  // events that violate CloudEvents 1.0
	Sample    string // the first violation seen
}

// snapshot copies the receiver's state; call it once the load is over.
func (r *receiver) snapshot() receiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := make(map[eventKey]uint32, len(r.counts))
	for k, v := range r.counts {
		counts[k] = v
	}
	return receiverStats{
		Counts:    counts,
		Latencies: append([]time.Duration(nil), r.latencies...),
		First:     r.first,
		Last:      r.last,
		Requests:  r.requests,
		Events:    r.events,
		Foreign:   r.foreign,
		Bad:       r.bad,
		Invalid:   r.invalid,
		Sample:    r.sample,
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
