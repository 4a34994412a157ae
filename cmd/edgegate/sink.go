package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/internal/receiver"
)

func newSinkCmd(a *app) *cobra.Command {
	var o sinkOptions
	var listen string
	cmd := &cobra.Command{
		Use:   "sink [flags]",
		Short: "receive CloudEvents over HTTP and print them",
		Long: `Receive CloudEvents over HTTP (binary, structured or batch mode), check them
strictly against CloudEvents 1.0 and print them. Violations are printed to
stderr as "sink: INVALID …" and answered 400, unless --lenient. It runs until
interrupted and then prints how many events it received.`,
		Example: `  edgegate sink                    # uplink url: http://127.0.0.1:8081/
  edgegate sink --status 503       # an endpoint that is down`,
		GroupID: groupTools,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSink(cmd.Context(), listen, o, a.stdout, a.stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8081", "address to listen on (host:port)")
	f.IntVar(&o.status, "status", http.StatusOK, "HTTP status to answer with, e.g. 503 to simulate failures")
	f.BoolVar(&o.quiet, "quiet", false, "do not print events (only a count at exit)")
	f.StringVar(&o.format, "format", "pretty", "output: pretty (one line per event) or json (one CloudEvent JSON per line)")
	f.BoolVar(&o.lenient, "lenient", false, "accept requests that violate CloudEvents 1.0 (still reported on stderr) instead of answering 400")
	return cmd
}

// runSink runs `edgegate sink`: a CloudEvents HTTP receiver for testing
// uplinks. It accepts binary, structured and batch requests, validates each
// strictly against CloudEvents 1.0 (internal/ceconform), prints every event to
// stdout and answers o.status. A request that violates the spec gets one
// "sink: INVALID …" line per violation on stderr and a 400 with the reasons,
// unless o.lenient (internal/receiver does the receiving). It returns when
// ctx is cancelled.
func runSink(ctx context.Context, listen string, o sinkOptions, stdout, stderr io.Writer) error {
	if o.status < 200 || o.status > 599 {
		return fmt.Errorf("sink: --status %d: must be between 200 and 599", o.status)
	}
	if o.format != "pretty" && o.format != "json" {
		return fmt.Errorf("sink: --format %q: must be pretty or json", o.format)
	}

	h := newSinkHandler(o, stdout, stderr)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("sink: listen %s: %w", listen, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(stderr, "sink: ", 0),
	}
	fmt.Fprintf(stderr, "edgegate sink listening on http://%s (answering %d)\n", ln.Addr(), o.status)

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
	fmt.Fprintf(stderr, "edgegate sink: received %d events in %d requests", h.events.Load(), h.Requests())
	if n := h.Invalid(); n > 0 {
		fmt.Fprintf(stderr, ", %d of them not valid CloudEvents 1.0", n)
	}
	fmt.Fprintln(stderr)
	if err != nil {
		return fmt.Errorf("sink: shutdown: %w", err)
	}
	return nil
}

type sinkOptions struct {
	status  int    // answer for valid requests
	quiet   bool   // print nothing per event
	format  string // "pretty" or "json"
	lenient bool   // accept requests that violate the spec
}

// sinkHandler prints the CloudEvents its receiver accepts. Safe for
// concurrent use.
type sinkHandler struct {
	*receiver.Handler
	opts   sinkOptions
	mu     sync.Mutex // serialises writes to out
	out    io.Writer  // events
	events atomic.Int64
}

// newSinkHandler returns a handler that reports violations to errOut and
// prints events to out.
func newSinkHandler(opts sinkOptions, out, errOut io.Writer) *sinkHandler {
	if opts.status == 0 {
		opts.status = http.StatusOK
	}
	h := &sinkHandler{opts: opts, out: out}
	h.Handler = &receiver.Handler{Name: "sink", Log: errOut, Lenient: opts.lenient, Accept: h.accept}
	return h
}

// accept decodes an accepted request with sdk-go, prints its events and
// answers --status.
func (h *sinkHandler) accept(w http.ResponseWriter, r *receiver.Request) {
	events, err := r.Decode()
	if err != nil {
		msg := fmt.Sprintf("cannot decode the CloudEvents request (%s mode): %v", r.Mode, err)
		if len(r.Problems) > 0 {
			msg = receiver.Reasons(r.Mode, r.Problems) + "\n" + msg
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	h.events.Add(int64(len(events)))
	if !h.opts.quiet {
		h.print(r.Mode, events)
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
