package receiver

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/edgegate/edgegate/internal/ceconform"
)

// DefaultMaxBody bounds a request body, before and after gzip, when
// Handler.MaxBody is 0.
const DefaultMaxBody = 32 << 20

// MaxReported bounds the violations listed per request, in an answer and in
// the report.
const MaxReported = 20

// Request is one HTTP request as the Handler read it.
type Request struct {
	// HTTP is the request; its body has been read (see Body) and its
	// Content-Encoding removed.
	HTTP *http.Request
	// Mode is the content mode its Content-Type selects:
	// ceconform.ModeBinary, ModeStructured or ModeBatch.
	Mode string
	// Body is the body, gzip undone.
	Body []byte
	// Received is when the body had been read (Handler.Clock).
	Received time.Time
	// Checked is false when Handler.Check skipped the validation; Events,
	// Problems and Warnings are then empty.
	Checked bool
	// Events are the events as the validator read them, invalid ones too
	// (each with its own Err).
	Events []ceconform.Event
	// Problems are the MUST violations, one line each.
	Problems []string
	// Warnings are the SHOULD violations, one line each.
	Warnings []string
}

// Decode decodes the request with sdk-go, after percent-decoding the
// binary-mode headers in place (sdk-go v2.16.2 does not). It can be called
// more than once.
func (r *Request) Decode() ([]event.Event, error) {
	ceconform.DecodeHeaders(r.HTTP.Header)
	r.HTTP.Body = io.NopCloser(bytes.NewReader(r.Body))
	r.HTTP.ContentLength = int64(len(r.Body))
	if r.Mode == ceconform.ModeBatch {
		return cehttp.NewEventsFromHTTPRequest(r.HTTP)
	}
	e, err := cehttp.NewEventFromHTTPRequest(r.HTTP)
	if err != nil {
		return nil, err
	}
	return []event.Event{*e}, nil
}

// Handler is an http.Handler that receives CloudEvents. It answers
// anything but POST with 405, a body over MaxBody with 413, a
// Content-Encoding other than gzip with 415, and a request that violates
// CloudEvents 1.0 with 400 and the violations, one per line; everything
// else goes to Accept. Build it as a struct literal and do not copy it.
type Handler struct {
	// Accept answers a request the Handler accepted; nil answers 200.
	Accept func(w http.ResponseWriter, r *Request)
	// Refused, when set, learns of every request the Handler answered
	// itself, and why.
	Refused func(r *http.Request, why *Refusal)
	// Check, when set, decides per request whether it is validated; a
	// request it skips goes to Accept unchecked. It spares the CPU of a
	// receiver that shares its machine with what it measures.
	Check func() bool
	// Clock stamps Request.Received; nil is time.Now.
	Clock func() time.Time
	// Lenient accepts a request with MUST violations as long as the
	// validator could read an event from it (the violations are still
	// reported, and in Request.Problems).
	Lenient bool
	// Strict refuses SHOULD violations too: edgegate's tests hold its
	// senders to them.
	Strict bool
	// MaxBody bounds the body before and after gzip; 0 is DefaultMaxBody.
	MaxBody int64
	// Log, when set, gets one line per violation and per warning,
	// "<Name>: INVALID <mode> request from <addr>: <problem>", escaped so
	// that a line stays one line.
	Log  io.Writer
	Name string

	logMu    sync.Mutex // one request's lines stay together
	requests atomic.Int64
	invalid  atomic.Int64
}

// Refusal is why the Handler answered a request itself.
type Refusal struct {
	Status int    // the answer
	Reason string // its body
	// Incomplete is true when the body ended early (the client went away
	// mid-request): a transport failure, not a CloudEvents violation.
	Incomplete bool
}

func (r *Refusal) Error() string { return r.Reason }

// Requests returns how many POST requests arrived.
func (h *Handler) Requests() int64 { return h.requests.Load() }

// Invalid returns how many requests violated CloudEvents 1.0 (accepted or
// not; with Strict, SHOULD violations count).
func (h *Handler) Invalid() int64 { return h.invalid.Load() }

// ServeHTTP reads, checks and accepts or refuses one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.refuse(w, r, &Refusal{Status: http.StatusMethodNotAllowed, Reason: "POST CloudEvents here"})
		return
	}
	h.requests.Add(1)
	body, why := h.read(w, r)
	if why != nil {
		h.refuse(w, r, why)
		return
	}
	req := &Request{HTTP: r, Mode: ceconform.ModeOf(r.Header), Body: body, Received: h.now()}
	if h.Check == nil || h.Check() {
		if reasons := h.check(req); len(reasons) > 0 && (!h.Lenient || len(req.Events) == 0) {
			h.refuse(w, r, &Refusal{Status: http.StatusBadRequest, Reason: Reasons(req.Mode, reasons)})
			return
		}
	}
	if h.Accept == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	h.Accept(w, req)
}

func (h *Handler) now() time.Time {
	if h.Clock != nil {
		return h.Clock()
	}
	return time.Now()
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, why *Refusal) {
	if h.Refused != nil {
		h.Refused(r, why)
	}
	http.Error(w, why.Reason, why.Status)
}

// read reads the body, undoing gzip, within MaxBody.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) ([]byte, *Refusal) {
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	raw := &transport{r: r.Body}
	body := http.MaxBytesReader(w, raw, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip": // uplink compression: gzip
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, &Refusal{Status: http.StatusBadRequest, Reason: fmt.Sprintf("invalid gzip body: %v", err), Incomplete: raw.err != nil}
		}
		defer zr.Close()
		body = http.MaxBytesReader(w, io.NopCloser(zr), limit) // bound the decompressed size too
		r.Header.Del("Content-Encoding")
	default:
		return nil, &Refusal{Status: http.StatusUnsupportedMediaType, Reason: fmt.Sprintf("unsupported Content-Encoding %q (want gzip or none)", enc)}
	}
	b, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Refusal{Status: http.StatusRequestEntityTooLarge, Reason: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		}
		return nil, &Refusal{Status: http.StatusBadRequest, Reason: fmt.Sprintf("read body: %v", err), Incomplete: raw.err != nil}
	}
	return b, nil
}

// transport remembers the error of the request body itself, as opposed to
// one of gzip decoding.
type transport struct {
	r   io.ReadCloser
	err error
}

func (t *transport) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

func (t *transport) Close() error { return t.r.Close() }

// check validates req, reports its findings and returns the reasons to
// refuse it (none when it is valid).
func (h *Handler) check(req *Request) []string {
	req.Checked = true
	events, warnings, err := ceconform.Validate(req.HTTP.Header, req.Body)
	req.Events, req.Warnings = events, warnings
	if v := (*ceconform.Violations)(nil); errors.As(err, &v) {
		req.Problems = v.Problems
	} else if err != nil {
		req.Problems = []string{err.Error()}
	}
	reasons := req.Problems
	if h.Strict && len(warnings) > 0 {
		reasons = append(reasons[:len(reasons):len(reasons)], suffixed(warnings, " (SHOULD)")...)
	}
	if len(reasons) > 0 {
		h.invalid.Add(1)
	}
	h.report(req, h.Lenient && len(req.Events) > 0)
	return reasons
}

func suffixed(lines []string, suffix string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l + suffix
	}
	return out
}

// report writes one line per violation and per warning to Log.
func (h *Handler) report(req *Request, accepted bool) {
	if h.Log == nil || len(req.Problems) == 0 && len(req.Warnings) == 0 {
		return
	}
	var buf bytes.Buffer
	kind := "INVALID"
	if accepted {
		kind = "INVALID (accepted, --lenient)"
	}
	from := req.HTTP.RemoteAddr
	for i, p := range req.Problems {
		if i == MaxReported {
			fmt.Fprintf(&buf, "%s: %s %s request from %s: … and %d more\n", h.Name, kind, req.Mode, from, len(req.Problems)-i)
			break
		}
		fmt.Fprintf(&buf, "%s: %s %s request from %s: %s\n", h.Name, kind, req.Mode, from, Printable(p))
	}
	for i, w := range req.Warnings {
		if i == MaxReported {
			fmt.Fprintf(&buf, "%s: WARNING %s request from %s: … and %d more\n", h.Name, req.Mode, from, len(req.Warnings)-i)
			break
		}
		fmt.Fprintf(&buf, "%s: WARNING %s request from %s: %s (SHOULD)\n", h.Name, req.Mode, from, Printable(w))
	}
	h.logMu.Lock()
	defer h.logMu.Unlock()
	_, _ = h.Log.Write(buf.Bytes())
}

// Reasons is the body of a 400 answer: the violations, one per line, at
// most MaxReported of them.
func Reasons(mode string, problems []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "not a valid CloudEvents 1.0 request (%s mode):", mode)
	for i, p := range problems {
		if i == MaxReported {
			fmt.Fprintf(&b, "\n… and %d more", len(problems)-i)
			break
		}
		b.WriteString("\n")
		b.WriteString(p)
	}
	return b.String()
}

// Printable escapes the non-printable runes of s (Go syntax), so a report
// line stays one line and cannot drive a terminal.
func Printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
