package uplink

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/uplink/cetest"
)

// testRecords builds n records spread over the given number of sources. The
// "seq" extension counts events per source from 0. Data cycles through JSON,
// text and binary (data_base64).
func testRecords(tb testing.TB, n, sources int) [][]byte {
	tb.Helper()
	seq := make([]int, sources)
	out := make([][]byte, n)
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := range n {
		src := i % sources
		e := event.New()
		e.SetID(fmt.Sprintf("evt-%04d", i))
		e.SetSource(fmt.Sprintf("edgegate/devices/dev%d", src))
		e.SetType("com.example.telemetry")
		e.SetSubject(fmt.Sprintf("sensors/dev%d/temp", src))
		e.SetTime(base.Add(time.Duration(i) * time.Millisecond))
		e.SetExtension("seq", seq[src])
		e.SetExtension("mqtttopic", fmt.Sprintf("sensors/dev%d/temp", src))
		seq[src]++
		var err error
		switch i % 3 {
		case 0:
			err = e.SetData(event.ApplicationJSON, map[string]any{"temp": 21.5, "n": i, "unit": "°C"})
		case 1:
			err = e.SetData("text/plain", fmt.Sprintf("reading %d \"quoted\"", i))
		case 2:
			err = e.SetData("application/octet-stream", []byte{0, 1, 2, 0xff, byte(i)})
		}
		if err != nil {
			tb.Fatal(err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// receiver is an httptest server that validates every request with the
// strict validator and records the events it accepted.
type receiver struct {
	tb  testing.TB
	srv *httptest.Server

	// respond, when set, decides the answer after validation; it returns the
	// status code. It runs concurrently.
	respond func(w http.ResponseWriter, r *http.Request, evs []cetest.Event) int

	mu          sync.Mutex
	events      []cetest.Event
	requests    int
	gzipped     int
	inflight    int
	maxInflight int
}

func newReceiver(tb testing.TB, respond func(w http.ResponseWriter, r *http.Request, evs []cetest.Event) int) *receiver {
	tb.Helper()
	rc := &receiver{tb: tb, respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	tb.Cleanup(rc.srv.Close)
	return rc
}

// newTLSReceiver is newReceiver over HTTPS with the given server config.
func newTLSReceiver(tb testing.TB, cfg *tls.Config, respond func(w http.ResponseWriter, r *http.Request, evs []cetest.Event) int) *receiver {
	tb.Helper()
	rc := &receiver{tb: tb, respond: respond}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.srv.TLS = cfg
	rc.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are expected in some tests
	rc.srv.StartTLS()
	tb.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.requests++
	rc.inflight++
	rc.maxInflight = max(rc.maxInflight, rc.inflight)
	rc.mu.Unlock()
	defer func() {
		rc.mu.Lock()
		rc.inflight--
		rc.mu.Unlock()
	}()

	if r.Method != http.MethodPost {
		rc.tb.Errorf("method %s, want POST", r.Method)
		http.Error(w, "want POST", http.StatusMethodNotAllowed)
		return
	}
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "":
	case "gzip":
		rc.mu.Lock()
		rc.gzipped++
		rc.mu.Unlock()
	default:
		rc.tb.Errorf("unexpected Content-Encoding %q", enc)
		http.Error(w, "bad encoding", http.StatusUnsupportedMediaType)
		return
	}
	// Strict CloudEvents 1.0: our sender must not break a SHOULD either.
	evs, warns, err := cetest.ValidateRequest(r)
	if err == nil && len(warns) > 0 {
		err = fmt.Errorf("SHOULD violations: %s", strings.Join(warns, "; "))
	}
	if err != nil {
		rc.tb.Errorf("invalid CloudEvents request: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(w, r, evs)
	}
	if status >= 200 && status < 300 {
		rc.mu.Lock()
		rc.events = append(rc.events, evs...)
		rc.mu.Unlock()
	}
	if status >= 200 && status < 300 {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	fmt.Fprintf(w, "rejected by test\nline two %s", strings.Repeat("z", 500))
}

// newReceiverHandler serves h on 127.0.0.1 and returns its URL.
func newReceiverHandler(tb testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}

func (rc *receiver) received() []cetest.Event {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]cetest.Event(nil), rc.events...)
}

func (rc *receiver) stats() (requests, maxInflight int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests, rc.maxInflight
}

// newTestSender builds a sender for url with small, fast settings.
func newTestSender(tb testing.TB, url, mode string, mod func(*Config)) Sender {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Name = "test"
	h := DefaultHTTPConfig()
	h.URL, h.Mode, h.Timeout = url, mode, 5*time.Second
	cfg.HTTP = &h
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	s, err := New(cfg, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.(io.Closer).Close() })
	return s
}

// validStructured checks one event in the JSON format strictly (SHOULD
// violations included) and returns it.
func validStructured(tb testing.TB, b []byte) cetest.Event {
	tb.Helper()
	v, warns, err := cetest.ValidateStructured(b)
	if err != nil || len(warns) > 0 {
		tb.Fatalf("invalid CloudEvent: %v %v\n%s", err, warns, b)
	}
	return v
}

// checkSameSet checks that got holds exactly the records (in any order).
func checkSameSet(t *testing.T, got []cetest.Event, records [][]byte) {
	t.Helper()
	if len(got) != len(records) {
		t.Fatalf("received %d events, want %d", len(got), len(records))
	}
	byID := map[string][]byte{}
	for _, r := range records {
		var m struct{ ID string }
		if err := json.Unmarshal(r, &m); err != nil {
			t.Fatal(err)
		}
		byID[m.ID] = r
	}
	for _, v := range got {
		r, ok := byID[v.Attrs["id"]]
		if !ok {
			t.Errorf("unexpected or duplicate event id %q", v.Attrs["id"])
			continue
		}
		delete(byID, v.Attrs["id"])
		if err := cetest.SameEvent(v, r); err != nil {
			t.Errorf("event %s: %v", v.Attrs["id"], err)
		}
	}
}
