package cetest

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/internal/ceconform"
	"github.com/edgegate/edgegate/internal/receiver"
)

// Request is one valid request as the Server decoded it.
type Request struct {
	HTTP *http.Request
	// Events are the events as sdk-go decoded them.
	Events []event.Event
	// Views are the same events as the strict validator read them.
	Views []ceconform.Event
}

// Stats counts the requests a Server saw.
type Stats struct {
	Requests    int // every request, refused ones included
	Gzipped     int // with Content-Encoding: gzip
	MaxInflight int // most requests served at once
}

// Server is a strict CloudEvents HTTP receiver on 127.0.0.1 that records
// what it accepts. It stops when the test ends.
type Server struct {
	tb     testing.TB
	srv    *httptest.Server
	h      *receiver.Handler
	refuse atomic.Int32

	mu       sync.Mutex
	respond  func(w http.ResponseWriter, r *Request) int
	events   []event.Event     // every accepted arrival
	views    []ceconform.Event // the same, as the validator read them
	first    []event.Event     // the first arrival of each id
	ids      map[string]int    // arrivals per id
	bad      []string          // violations
	stats    Stats
	inflight int
	notify   chan struct{}
}

// Option configures a Server.
type Option func(*options)

type options struct {
	tls  *tls.Config
	addr string
}

// TLS serves HTTPS with cfg; failed handshakes are not logged (tests
// provoke them).
func TLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// Addr listens on addr instead of a free port on 127.0.0.1, for a gateway
// whose configuration already names the address.
func Addr(addr string) Option { return func(o *options) { o.addr = addr } }

// NewServer starts a Server that answers 200 to every valid request until
// the test ends.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{tb: tb, ids: map[string]int{}, notify: make(chan struct{}, 1)}
	s.h = &receiver.Handler{
		Strict:  true,
		Accept:  s.accept,
		Refused: s.refused,
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if o.addr != "" {
		l, err := net.Listen("tcp", o.addr)
		if err != nil {
			tb.Fatalf("cetest: listen %s: %v", o.addr, err)
		}
		s.srv.Listener.Close()
		s.srv.Listener = l
	}
	if o.tls != nil {
		s.srv.TLS = o.tls
		s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	tb.Cleanup(s.srv.Close)
	return s
}

// URL is the server's base URL, ending in "/".
func (s *Server) URL() string { return s.srv.URL + "/" }

// Respond makes f decide the answer to every valid request: it returns the
// status and may set headers. A 2xx records the events; any other status
// gets a two-line text body ("rejected by test", "line two zzz…") unless f
// wrote one. f runs concurrently.
func (s *Server) Respond(f func(w http.ResponseWriter, r *Request) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// RejectIf answers 400 ("event <id> refused") to a request holding an event
// pred returns true for: the whole request fails, as on a real batch
// endpoint.
func (s *Server) RejectIf(pred func(event.Event) bool) {
	s.Respond(func(w http.ResponseWriter, r *Request) int {
		for _, e := range r.Events {
			if pred(e) {
				http.Error(w, "event "+e.ID()+" refused", http.StatusBadRequest)
				return http.StatusBadRequest
			}
		}
		return http.StatusOK
	})
}

// Refuse answers every request with status, unread, until Refuse(0): an
// outage.
func (s *Server) Refuse(status int) { s.refuse.Store(int32(status)) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.Requests++
	if r.Header.Get("Content-Encoding") == "gzip" {
		s.stats.Gzipped++
	}
	s.inflight++
	s.stats.MaxInflight = max(s.stats.MaxInflight, s.inflight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()
	if code := s.refuse.Load(); code != 0 {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "unavailable", int(code))
		return
	}
	s.h.ServeHTTP(w, r)
}

// accept decodes a request the strict receiver accepted, lets Respond
// decide and records the events of a 2xx before answering.
func (s *Server) accept(w http.ResponseWriter, r *receiver.Request) {
	events, err := r.Decode()
	if err == nil && len(events) != len(r.Events) {
		err = fmt.Errorf("sdk-go decoded %d events, the validator %d", len(events), len(r.Events))
	}
	if err != nil {
		s.violation("sdk-go cannot decode a valid request: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, e := range events {
		if err := e.Validate(); err != nil {
			s.violation("sdk-go: event %s: %v", e.ID(), err)
		}
	}
	s.mu.Lock()
	respond := s.respond
	s.mu.Unlock()
	status := http.StatusOK
	aw := &answerWriter{ResponseWriter: w}
	if respond != nil {
		status = respond(aw, &Request{HTTP: r.HTTP, Events: events, Views: r.Events})
	}
	if status >= 200 && status < 300 {
		s.record(events, r.Events)
	}
	if aw.answered {
		return
	}
	if status >= 200 && status < 300 {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	fmt.Fprintf(w, "rejected by test\nline two %s", strings.Repeat("z", 500))
}

// answerWriter notes whether Respond wrote the answer itself.
type answerWriter struct {
	http.ResponseWriter
	answered bool
}

func (w *answerWriter) WriteHeader(code int) {
	w.answered = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *answerWriter) Write(b []byte) (int, error) {
	w.answered = true
	return w.ResponseWriter.Write(b)
}

func (s *Server) record(events []event.Event, views []ceconform.Event) {
	s.mu.Lock()
	for _, e := range events {
		if s.ids[e.ID()] == 0 {
			s.first = append(s.first, e)
		}
		s.ids[e.ID()]++
	}
	s.events = append(s.events, events...)
	s.views = append(s.views, views...)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// refused records a request the strict receiver refused as a violation,
// unless its sender went away mid-request (a gateway killed by the test).
func (s *Server) refused(r *http.Request, why *receiver.Refusal) {
	if why.Incomplete {
		s.tb.Logf("cetest: incomplete request from %s: %s", r.RemoteAddr, why.Reason)
		return
	}
	s.violation("%d %s", why.Status, why.Reason)
}

// violation records and reports a request the strict receiver refused.
func (s *Server) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.bad = append(s.bad, msg)
	s.mu.Unlock()
	s.tb.Errorf("cetest: invalid CloudEvents request: %s", msg)
}

// Events returns every event accepted, duplicates included, in arrival
// order.
func (s *Server) Events() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.events...)
}

// Views returns Events as the strict validator read them.
func (s *Server) Views() []ceconform.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ceconform.Event(nil), s.views...)
}

// Counts returns how many distinct event ids and how many events arrived.
func (s *Server) Counts() (distinct, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.first), len(s.events)
}

// Duplicates returns how many events arrived with an id seen before.
func (s *Server) Duplicates() int {
	d, total := s.Counts()
	return total - d
}

// Violations returns the refused requests, one line each.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}

// Stats returns the request counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// WaitFor waits until n distinct events arrived and returns the first
// arrival of each id. It fails the test when within passes first or when
// any request was invalid.
func (s *Server) WaitFor(n int, within time.Duration) []event.Event {
	s.tb.Helper()
	deadline := time.After(within)
	for {
		got, _ := s.Counts()
		if got >= n {
			break
		}
		select {
		case <-s.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			s.tb.Fatalf("receiver got %d distinct events, want %d", got, n)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bad) > 0 {
		s.tb.Fatalf("receiver saw invalid requests/events: %v", s.bad[:min(5, len(s.bad))])
	}
	return append([]event.Event(nil), s.first...)
}
