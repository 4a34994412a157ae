package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync"
	"time"
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
// payload when it arrived and how often.
type receiver struct {
	now func() time.Time

	mu        sync.Mutex
	counts    map[eventKey]uint32
	latencies []time.Duration // of first receipts
	first     time.Time
	last      time.Time
	requests  int64
	events    int64 // every event, duplicates included
	foreign   int64 // events whose data is not a device payload
	bad       int64 // requests rejected
}

func newReceiver() *receiver {
	return &receiver{now: time.Now, counts: make(map[eventKey]uint32, 1<<16)}
}

// structuredEvent is the part of a JSON-format CloudEvent the receiver reads.
type structuredEvent struct {
	SpecVersion string          `json:"specversion"`
	Data        json.RawMessage `json:"data"`
	DataBase64  string          `json:"data_base64"`
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
	payloads, err := eventPayloads(req.Header, body)
	if err != nil {
		r.reject(w, http.StatusBadRequest, "%v", err)
		return
	}
	r.record(now, payloads)
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) reject(w http.ResponseWriter, code int, format string, args ...any) {
	r.mu.Lock()
	r.requests++
	r.bad++
	r.mu.Unlock()
	http.Error(w, fmt.Sprintf(format, args...), code)
}

// eventPayloads returns the data of every CloudEvent in one HTTP request.
func eventPayloads(h http.Header, body []byte) ([][]byte, error) {
	ct := h.Get("Content-Type")
	mt := ""
	if ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, fmt.Errorf("content type %q: %w", ct, err)
		}
	}
	switch {
	case mt == "application/cloudevents-batch+json":
		var raw []json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
		out := make([][]byte, 0, len(raw))
		for i, r := range raw {
			d, err := structuredData(r)
			if err != nil {
				return nil, fmt.Errorf("batch event %d: %w", i, err)
			}
			out = append(out, d)
		}
		return out, nil
	case mt == "application/cloudevents+json":
		d, err := structuredData(body)
		if err != nil {
			return nil, err
		}
		return [][]byte{d}, nil
	case h.Get("Ce-Specversion") != "":
		if h.Get("Ce-Id") == "" || h.Get("Ce-Source") == "" || h.Get("Ce-Type") == "" {
			return nil, errors.New("binary event: ce-id, ce-source and ce-type are required")
		}
		return [][]byte{body}, nil
	default:
		return nil, fmt.Errorf("not a CloudEvents request (content type %q, no ce-specversion)", ct)
	}
}

// structuredData returns the data of a JSON-format event: the JSON value itself, the
// contents of a JSON string, or the decoded data_base64.
func structuredData(raw []byte) ([]byte, error) {
	var ev structuredEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	if ev.SpecVersion == "" {
		return nil, errors.New("event: no specversion")
	}
	switch {
	case ev.DataBase64 != "":
		d, err := base64.StdEncoding.DecodeString(ev.DataBase64)
		if err != nil {
			return nil, fmt.Errorf("event data_base64: %w", err)
		}
		return d, nil
	case len(ev.Data) > 0 && ev.Data[0] == '"':
		var s string
		if err := json.Unmarshal(ev.Data, &s); err != nil {
			return nil, fmt.Errorf("event data: %w", err)
		}
		return []byte(s), nil
	default:
		return ev.Data, nil
	}
}

func (r *receiver) record(now time.Time, payloads [][]byte) {
	type parsed struct {
		key eventKey
		lat time.Duration
		ok  bool
	}
	ps := make([]parsed, len(payloads))
	for i, p := range payloads {
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
	}
}
