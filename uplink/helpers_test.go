package uplink

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
	"github.com/edgegate/edgegate/internal/cetest"
)

// testRecords builds n events spread over the given number of sources.
// The "seq" extension counts events per source from 0. Data cycles through
// JSON, text and binary (text and binary travel as data_base64).
func testRecords(tb testing.TB, n, sources int) []*cloudevent.Event {
	tb.Helper()
	seq := make([]int32, sources)
	out := make([]*cloudevent.Event, n)
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := range n {
		src := i % sources
		e := &cloudevent.Event{
			ID:      fmt.Sprintf("evt-%04d", i),
			Source:  fmt.Sprintf("edgegate/devices/dev%d", src),
			Type:    "com.example.telemetry",
			Subject: fmt.Sprintf("sensors/dev%d/temp", src),
			Time:    base.Add(time.Duration(i) * time.Millisecond),
		}
		e.SetExtension("seq", cloudevent.Integer(seq[src]))
		e.SetExtension("mqtttopic", cloudevent.String(fmt.Sprintf("sensors/dev%d/temp", src)))
		seq[src]++
		switch i % 3 {
		case 0:
			e.DataContentType, e.Data = "application/json", []byte(fmt.Sprintf(`{"n":%d,"temp":21.5,"unit":"°C"}`, i))
		case 1:
			e.DataContentType, e.Data, e.DataBase64 = "text/plain", []byte(fmt.Sprintf("reading %d \"quoted\"", i)), true
		case 2:
			e.DataContentType, e.Data, e.DataBase64 = "application/octet-stream", []byte{0, 1, 2, 0xff, byte(i)}, true
		}
		out[i] = e
	}
	return out
}

// recordJSON is e in the JSON format, as the senders write it.
func recordJSON(e *cloudevent.Event) []byte { return cloudevent.AppendJSON(nil, e) }

// sameEvent compares what arrived with the event sent.
func sameEvent(got ceconform.Event, e *cloudevent.Event) error {
	return ceconform.SameEvent(got, recordJSON(e))
}

// newReceiver starts the shared strict receiver (cetest), which refuses
// and reports any request that violates CloudEvents 1.0 (our sender must
// not break a SHOULD either) and records the events it accepted. respond,
// when set, decides the answer after validation from the events as the
// validator read them; it returns the status code and runs concurrently.
func newReceiver(tb testing.TB, respond func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int, opts ...cetest.Option) *cetest.Server {
	tb.Helper()
	rc := cetest.NewServer(tb, opts...)
	if respond != nil {
		rc.Respond(func(w http.ResponseWriter, r *cetest.Request) int { return respond(w, r.HTTP, r.Views) })
	}
	return rc
}

// newTLSReceiver is newReceiver over HTTPS with the given server config.
func newTLSReceiver(tb testing.TB, cfg *tls.Config, respond func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int) *cetest.Server {
	tb.Helper()
	return newReceiver(tb, respond, cetest.TLS(cfg))
}

// newReceiverHandler serves h on 127.0.0.1 and returns its URL.
func newReceiverHandler(tb testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}

// newTestSender builds a sender for url with small, fast settings.
func newTestSender(tb testing.TB, url, mode string, mod func(*Config)) Sender {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Name = "test"
	h := DefaultHTTPConfig()
	h.URL, h.Mode, h.Timeout = url, mode, 5*time.Second
	cfg.HTTP = &h
	return startSender(tb, cfg, mod)
}

// startSender builds a sender from cfg changed by mod, checked as the
// gateway checks it, and closes it when the test ends.
func startSender(tb testing.TB, cfg Config, mod func(*Config)) Sender {
	tb.Helper()
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
func validStructured(tb testing.TB, b []byte) ceconform.Event {
	tb.Helper()
	v, warns, err := ceconform.ValidateStructured(b)
	if err != nil || len(warns) > 0 {
		tb.Fatalf("invalid CloudEvent: %v %v\n%s", err, warns, b)
	}
	return v
}

// checkSameSet checks that got holds exactly the events (in any order).
func checkSameSet(t *testing.T, got []ceconform.Event, events []*cloudevent.Event) {
	t.Helper()
	if len(got) != len(events) {
		t.Fatalf("received %d events, want %d", len(got), len(events))
	}
	byID := map[string]*cloudevent.Event{}
	for _, e := range events {
		byID[e.ID] = e
	}
	for _, v := range got {
		e, ok := byID[v.Attrs["id"]]
		if !ok {
			t.Errorf("unexpected or duplicate event id %q", v.Attrs["id"])
			continue
		}
		delete(byID, v.Attrs["id"])
		if err := sameEvent(v, e); err != nil {
			t.Errorf("event %s: %v", v.Attrs["id"], err)
		}
	}
}
