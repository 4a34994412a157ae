package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/edgegate/edgegate/buffer"
)

// registerBufferRoutes adds the buffer tools to the admin endpoint (JSON;
// `edgegate buffer` is their client):
//
//	GET  /v1/buffer/stats          BufferStats
//	GET  /v1/buffer/events?…       ListResult (query: ListRequest.Values)
//	GET  /v1/buffer/events/{id}    the event as CloudEvents JSON (?queue=)
//	POST /v1/buffer/replay         ReplayRequest → ReplayResult
//	POST /v1/buffer/purge          PurgeRequest → PurgeResult
//
// An error is {"error": "..."} with 400 (bad request), 404 (no such queue
// or event), 507 (no room in the buffer) or 500.
//
// While the buffer is not open (bufferstate.go) every route answers 503.
func (g *Gateway) registerBufferRoutes(mux *http.ServeMux) {
	var t *BufferTool // built once the buffer is open
	var once sync.Once
	handle := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if g.buffer() == nil {
				writeJSON(w, nil, g.unavailable())
				return
			}
			once.Do(func() { t = g.bufferTool() })
			h(w, r)
		})
	}
	handle("GET /v1/buffer/stats", func(w http.ResponseWriter, _ *http.Request) {
		s, err := t.Stats()
		writeJSON(w, s, err)
	})
	handle("GET /v1/buffer/events", func(w http.ResponseWriter, r *http.Request) {
		req, err := ParseListQuery(r.URL.RawQuery)
		if err != nil {
			writeJSON(w, nil, err)
			return
		}
		res, err := t.List(req)
		writeJSON(w, res, err)
	})
	handle("GET /v1/buffer/events/{id}", func(w http.ResponseWriter, r *http.Request) {
		e, err := t.Show(r.PathValue("id"), r.URL.Query().Get("queue"))
		if err != nil {
			writeJSON(w, nil, err)
			return
		}
		w.Header().Set("Content-Type", "application/cloudevents+json")
		w.Header().Set("Edgegate-Queue", e.Summary.Queue)
		w.Header().Set("Edgegate-Seq", strconv.FormatUint(e.Summary.Seq, 10))
		w.Write(e.JSON)
	})
	handle("POST /v1/buffer/replay", func(w http.ResponseWriter, r *http.Request) {
		var req ReplayRequest
		if err := readJSON(w, r, &req); err != nil {
			writeJSON(w, nil, err)
			return
		}
		res, err := t.Replay(r.Context(), req)
		writeJSON(w, res, err)
	})
	handle("POST /v1/buffer/purge", func(w http.ResponseWriter, r *http.Request) {
		var req PurgeRequest
		if err := readJSON(w, r, &req); err != nil {
			writeJSON(w, nil, err)
			return
		}
		res, err := t.Purge(req)
		writeJSON(w, res, err)
	})
}

// maxRequestBody bounds a POST body of the buffer routes.
const maxRequestBody = 64 << 10

// readJSON decodes one JSON object, refusing unknown fields.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

// APIError is the body of an admin API error.
type APIError struct {
	Error string `json:"error"`
}

// writeJSON writes v, or err as an APIError with its status.
func writeJSON(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // live state
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrBadRequest):
			status = http.StatusBadRequest
		case errors.Is(err, ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, buffer.ErrFull):
			status = http.StatusInsufficientStorage
		case errors.Is(err, buffer.ErrClosed), errors.Is(err, ErrBufferUnavailable):
			status = http.StatusServiceUnavailable
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(APIError{Error: err.Error()})
		return
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// listParams are the query parameters of GET /v1/buffer/events.
var listParams = []string{"queue", "after", "limit", "since", "until", "id", "type", "source", "subject"}

// Values encodes r as the query of GET /v1/buffer/events
// (ParseListQuery's input).
func (r ListRequest) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("queue", r.Queue)
	if r.After != 0 {
		v.Set("after", strconv.FormatUint(r.After, 10))
	}
	if r.Limit != 0 {
		v.Set("limit", strconv.Itoa(r.Limit))
	}
	if !r.Since.IsZero() {
		v.Set("since", r.Since.Format(time.RFC3339Nano))
	}
	if !r.Until.IsZero() {
		v.Set("until", r.Until.Format(time.RFC3339Nano))
	}
	set("id", r.ID)
	set("type", r.Type)
	set("source", r.Source)
	set("subject", r.Subject)
	return v
}

// ParseListQuery decodes the query of GET /v1/buffer/events: every
// parameter at most once, none unknown, times in RFC 3339.
func ParseListQuery(raw string) (ListRequest, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return ListRequest{}, badRequest("query: %v", err)
	}
	var r ListRequest
	for k, vs := range q {
		if !slices.Contains(listParams, k) {
			return ListRequest{}, badRequest("unknown query parameter %q (known: %v)", k, listParams)
		}
		if len(vs) != 1 {
			return ListRequest{}, badRequest("query parameter %q given %d times", k, len(vs))
		}
	}
	r.Queue, r.ID, r.Type, r.Source, r.Subject = q.Get("queue"), q.Get("id"), q.Get("type"), q.Get("source"), q.Get("subject")
	if s := q.Get("after"); s != "" {
		if r.After, err = strconv.ParseUint(s, 10, 64); err != nil {
			return ListRequest{}, badRequest("after: %q is not a position", s)
		}
	}
	if s := q.Get("limit"); s != "" {
		if r.Limit, err = strconv.Atoi(s); err != nil || r.Limit < 0 || r.Limit > MaxListLimit {
			return ListRequest{}, badRequest("limit: %q is not a number from 0 to %d", s, MaxListLimit)
		}
	}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &r.Since}, {"until", &r.Until}} {
		if s := q.Get(p.name); s != "" {
			if *p.t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				return ListRequest{}, badRequest("%s: %q is not an RFC 3339 time", p.name, s)
			}
		}
	}
	if r.After != 0 && r.Queue == "" {
		return ListRequest{}, badRequest("after needs queue")
	}
	return r, nil
}
