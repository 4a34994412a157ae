package uplink

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/internal/ceconform"
	"github.com/edgegate/edgegate/internal/cetest"
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

// checkSameSet checks that got holds exactly the records (in any order).
func checkSameSet(t *testing.T, got []ceconform.Event, records [][]byte) {
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
		if err := ceconform.SameEvent(v, r); err != nil {
			t.Errorf("event %s: %v", v.Attrs["id"], err)
		}
	}
}
