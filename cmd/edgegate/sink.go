package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// sinkMaxBody bounds one request body.
const sinkMaxBody = 32 << 20

// cmdSink runs `edgegate sink`: a CloudEvents HTTP receiver for testing
// uplinks. It accepts binary, structured and batch requests, prints every
// event to stdout and answers --status. It returns when ctx is cancelled.
func cmdSink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8081", "address to listen on (host:port)")
	status := fs.Int("status", http.StatusOK, "HTTP status to answer with, e.g. 503 to simulate failures")
	quiet := fs.Bool("quiet", false, "do not print events (only a count at exit)")
	format := fs.String("format", "pretty", "output: pretty (one line per event) or json (one CloudEvent JSON per line)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: edgegate sink [flags]\n\n"+
			"Receive CloudEvents over HTTP (binary, structured or batch mode) and print them.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sink: unexpected argument %q", fs.Arg(0))
	}
	if *status < 200 || *status > 599 {
		return fmt.Errorf("sink: --status %d: must be between 200 and 599", *status)
	}
	if *format != "pretty" && *format != "json" {
		return fmt.Errorf("sink: --format %q: must be pretty or json", *format)
	}

	h := newSinkHandler(sinkOptions{status: *status, quiet: *quiet, format: *format}, stdout)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("sink: listen %s: %w", *listen, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(stderr, "sink: ", 0),
	}
	fmt.Fprintf(stderr, "edgegate sink listening on http://%s (answering %d)\n", ln.Addr(), *status)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("sink: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if err != nil {
		srv.Close()
	}
	<-errc // http.ErrServerClosed
	fmt.Fprintf(stderr, "edgegate sink: received %d events in %d requests\n", h.events.Load(), h.requests.Load())
	if err != nil {
		return fmt.Errorf("sink: shutdown: %w", err)
	}
	return nil
}

type sinkOptions struct {
	status int    // answer for valid requests
	quiet  bool   // print nothing per event
	format string // "pretty" or "json"
}

// sinkHandler receives CloudEvents and prints them. Safe for concurrent use.
type sinkHandler struct {
	opts     sinkOptions
	mu       sync.Mutex // serialises writes to out
	out      io.Writer
	events   atomic.Int64
	requests atomic.Int64
}

func newSinkHandler(opts sinkOptions, out io.Writer) *sinkHandler {
	if opts.status == 0 {
		opts.status = http.StatusOK
	}
	return &sinkHandler{opts: opts, out: out}
}

func (h *sinkHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "edgegate sink: POST CloudEvents here", http.StatusMethodNotAllowed)
		return
	}
	h.requests.Add(1)
	r.Body = http.MaxBytesReader(w, r.Body, sinkMaxBody)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip": // uplink compression: gzip
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, fmt.Sprintf("invalid gzip body: %v", err), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		// Bound the decompressed size too.
		r.Body = http.MaxBytesReader(w, io.NopCloser(zr), sinkMaxBody)
		r.Header.Del("Content-Encoding")
		r.ContentLength = -1
	default:
		http.Error(w, fmt.Sprintf("unsupported Content-Encoding %q (want gzip or none)", enc), http.StatusUnsupportedMediaType)
		return
	}

	var (
		mode   string
		events []event.Event
		err    error
	)
	switch cehttp.NewMessage(r.Header, nil).ReadEncoding() {
	case binding.EncodingBatch:
		mode = "batch"
		events, err = cehttp.NewEventsFromHTTPRequest(r)
	case binding.EncodingStructured:
		mode = "structured"
		var e *event.Event
		if e, err = cehttp.NewEventFromHTTPRequest(r); err == nil {
			events = []event.Event{*e}
		}
	case binding.EncodingBinary:
		mode = "binary"
		var e *event.Event
		if e, err = cehttp.NewEventFromHTTPRequest(r); err == nil {
			events = []event.Event{*e}
		}
	default:
		if sv := r.Header.Get("Ce-Specversion"); sv != "" {
			http.Error(w, fmt.Sprintf("not a CloudEvent: unsupported ce-specversion %q (want 1.0)", sv), http.StatusBadRequest)
			return
		}
		http.Error(w, "not a CloudEvent: want a ce-specversion header (binary mode) or Content-Type "+
			event.ApplicationCloudEventsJSON+" or "+event.ApplicationCloudEventsBatchJSON, http.StatusBadRequest)
		return
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, fmt.Sprintf("request body larger than %d bytes", mbe.Limit), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, fmt.Sprintf("invalid CloudEvent (%s mode): %v", mode, err), http.StatusBadRequest)
		return
	}
	for i := range events {
		if err := events[i].Validate(); err != nil {
			msg := fmt.Sprintf("invalid CloudEvent (%s mode): %v", mode, err)
			if mode == "batch" {
				msg = fmt.Sprintf("invalid CloudEvent at batch index %d: %v", i, err)
			}
			http.Error(w, strings.TrimSpace(msg), http.StatusBadRequest)
			return
		}
	}

	h.events.Add(int64(len(events)))
	if !h.opts.quiet {
		h.print(mode, events)
	}
	if h.opts.status >= 200 && h.opts.status < 300 {
		w.WriteHeader(h.opts.status)
		return
	}
	http.Error(w, fmt.Sprintf("edgegate sink: answering %d as configured (--status)", h.opts.status), h.opts.status)
}

// print writes the events, one line each, in one write.
func (h *sinkHandler) print(mode string, events []event.Event) {
	var buf bytes.Buffer
	for i := range events {
		e := &events[i]
		if h.opts.format == "json" {
			b, err := json.Marshal(e)
			if err != nil {
				fmt.Fprintf(&buf, "{\"error\":%q}\n", err.Error())
				continue
			}
			buf.Write(b)
			buf.WriteByte('\n')
			continue
		}
		t := "-"
		if !e.Time().IsZero() {
			t = e.Time().UTC().Format(time.RFC3339Nano)
		}
		fmt.Fprintf(&buf, "%s %s id=%s type=%s source=%s", t, mode, sinkClean(e.ID()), sinkClean(e.Type()), sinkClean(e.Source()))
		if s := e.Subject(); s != "" {
			fmt.Fprintf(&buf, " subject=%s", sinkClean(s))
		}
		fmt.Fprintf(&buf, " data=%s", sinkRenderData(e))
		if h.opts.status < 200 || h.opts.status > 299 {
			fmt.Fprintf(&buf, " answered=%d", h.opts.status)
		}
		buf.WriteByte('\n')
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, _ = h.out.Write(buf.Bytes())
}

// sinkClean quotes s when it holds spaces, quotes or non-printable characters,
// so one event stays on one line and cannot drive the terminal.
func sinkClean(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == ' ' || r == '"' || r == '=' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// sinkMaxData bounds how much of an event's data is printed.
const sinkMaxData = 4 << 10

// sinkRenderData prints JSON data compacted, text quoted (escapes keep it on
// one line) and anything else as base64, truncated to sinkMaxData.
func sinkRenderData(e *event.Event) string {
	data := e.Data()
	if len(data) == 0 {
		return "-"
	}
	suffix := ""
	if len(data) > sinkMaxData {
		suffix = fmt.Sprintf("…(%d bytes)", len(data))
	}
	mt, _, _ := mime.ParseMediaType(e.DataContentType())
	isJSON := mt == "" || mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
	if isJSON && !e.DataBase64 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err == nil {
			if buf.Len() > sinkMaxData {
				return string(buf.Bytes()[:sinkMaxData]) + suffix
			}
			return buf.String()
		}
	}
	if len(data) > sinkMaxData {
		data = data[:sinkMaxData]
	}
	if sinkIsText(data) {
		return strconv.Quote(string(data)) + suffix
	}
	return "base64:" + base64.StdEncoding.EncodeToString(data) + suffix
}

// sinkIsText reports whether b is UTF-8 without control characters other
// than tab, CR and LF (a rune cut at the end by truncation is tolerated).
func sinkIsText(b []byte) bool {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 && len(b) >= utf8.UTFMax {
			return false
		}
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0x7f {
			return false
		}
		b = b[size:]
	}
	return true
}
