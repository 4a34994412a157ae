package uplink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
	"github.com/edgegate/edgegate/internal/freeport"
)

func TestSendModes(t *testing.T) {
	for _, mode := range []string{ModeBatch, ModeBinary, ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			rc := newReceiver(t, nil)
			s := newTestSender(t, rc.URL(), mode, nil)
			records := testRecords(t, 30, 4)
			if err := s.Send(context.Background(), records); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := rc.Views()
			checkSameSet(t, got, records)
			for _, v := range got {
				if v.Mode != mode {
					t.Fatalf("arrived as %s, want %s", v.Mode, mode)
				}
			}
			reqs := rc.Stats().Requests
			want := 30
			if mode == ModeBatch {
				want = 1
				for i, v := range got { // one request: order kept
					if err := sameEvent(v, records[i]); err != nil {
						t.Fatalf("batch order: event %d: %v", i, err)
					}
				}
			}
			if reqs != want {
				t.Errorf("%d requests, want %d", reqs, want)
			}
		})
	}
}

func TestSendEmpty(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newTestSender(t, rc.URL(), ModeBatch, nil)
	if err := s.Send(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if reqs := rc.Stats().Requests; reqs != 0 {
		t.Fatalf("%d requests for an empty slice", reqs)
	}
}

func TestBatchSplitByMaxBytes(t *testing.T) {
	rc := newReceiver(t, nil)
	records := testRecords(t, 40, 3)
	s := newTestSender(t, rc.URL(), ModeBatch, func(c *Config) { c.Batch.MaxBytes = 2048 })
	if err := s.Send(context.Background(), records); err != nil {
		t.Fatal(err)
	}
	got := rc.Views()
	checkSameSet(t, got, records)
	for i, v := range got {
		if err := sameEvent(v, records[i]); err != nil {
			t.Fatalf("order across chunks: event %d: %v", i, err)
		}
	}
	reqs := rc.Stats().Requests
	total := 0
	for _, r := range records {
		total += len(recordJSON(r)) + 1
	}
	if min := (total + 2047) / 2048; reqs < min || reqs > 2*min+1 {
		t.Errorf("%d requests for %d bytes with max_bytes 2048", reqs, total)
	}

	// An event larger than max_bytes goes alone.
	big := *records[0]
	big.Data = bytes.Replace(big.Data, []byte(`"temp"`), []byte(`"pad":"`+strings.Repeat("x", 3000)+`","temp"`), 1)
	rc2 := newReceiver(t, nil)
	s2 := newTestSender(t, rc2.URL(), ModeBatch, func(c *Config) { c.Batch.MaxBytes = 2048 })
	if err := s2.Send(context.Background(), []*cloudevent.Event{records[1], &big, records[2]}); err != nil {
		t.Fatal(err)
	}
	if reqs := rc2.Stats().Requests; reqs != 3 {
		t.Errorf("%d requests, want 3", reqs)
	}
	checkSameSet(t, rc2.Views(), []*cloudevent.Event{records[1], &big, records[2]})
}

// An event no receiver may accept fails the whole call, permanently,
// naming the event, before any request (binary mode finds a control
// character or a CloudEvents datacontenttype only when it builds that
// event's request). Records that are
// not events at all never reach a Sender: the forwarder dead-letters them.
func TestMalformedRecordIsPermanent(t *testing.T) {
	good := testRecords(t, 3, 1)
	event := func(f func(*cloudevent.Event)) *cloudevent.Event {
		e := &cloudevent.Event{ID: "1", Source: "s", Type: "t"}
		f(e)
		return e
	}
	cases := []struct {
		name string
		mode string
		bad  *cloudevent.Event
	}{
		{"batch missing id", ModeBatch, event(func(e *cloudevent.Event) { e.ID = "" })},
		{"batch bad extension name", ModeBatch, event(func(e *cloudevent.Event) { e.SetExtension("Bad-Name", cloudevent.String("x")) })},
		{"batch json data under text/plain", ModeBatch, event(func(e *cloudevent.Event) { e.DataContentType, e.Data = "text/plain", []byte(`{}`) })},
		{"binary missing id", ModeBinary, event(func(e *cloudevent.Event) { e.ID = " " })},
		{"binary reserved extension", ModeBinary, event(func(e *cloudevent.Event) { e.SetExtension("data", cloudevent.String("x")) })},
		{"binary control char in header", ModeBinary, event(func(e *cloudevent.Event) { e.Subject = "a\nb" })},
		{"binary control char in content type", ModeBinary, event(func(e *cloudevent.Event) {
			e.DataContentType, e.Data, e.DataBase64 = "text/plain;\x01", []byte("x"), true
		})},
		{"binary cloudevents content type", ModeBinary, event(func(e *cloudevent.Event) {
			e.DataContentType, e.Data, e.DataBase64 = "Application/CloudEvents+JSON", []byte(`{"specversion":"1.0"}`), true
		})},
		{"structured missing type", ModeStructured, event(func(e *cloudevent.Event) { e.Type = "" })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			reqs := 0
			srv := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
				mu.Lock()
				reqs++
				mu.Unlock()
				return 200
			})
			s := newTestSender(t, srv.URL(), tc.mode, nil)
			err := s.Send(context.Background(), []*cloudevent.Event{good[0], good[1], tc.bad, good[2]})
			if err == nil {
				t.Fatal("Send accepted a malformed record")
			}
			if retry, _ := classify(err); retry {
				t.Errorf("malformed record classified retryable: %v", err)
			}
			var re *RecordError
			if !errors.As(err, &re) || re.Index != 2 {
				t.Errorf("want RecordError index 2, got %v", err)
			}
			// Binary mode finds what headers cannot carry only when it
			// builds that event's request.
			if atBuild := strings.Contains(tc.name, "control") || strings.Contains(tc.name, "cloudevents"); tc.mode == ModeBatch || !atBuild {
				mu.Lock()
				defer mu.Unlock()
				if reqs != 0 {
					t.Errorf("%d requests sent despite a malformed record", reqs)
				}
			}
		})
	}
}

func TestStatusClassification(t *testing.T) {
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		status     int
		retryAfter string
		wantErr    bool
		retryable  bool
		minAfter   time.Duration
		maxAfter   time.Duration
	}{
		{status: 200},
		{status: 202},
		{status: 204},
		{status: 400, wantErr: true},
		{status: 207, wantErr: true}, // partial acceptance: bisect
		{status: 401, wantErr: true, retryable: true},
		{status: 403, wantErr: true, retryable: true},
		{status: 404, wantErr: true, retryable: true},
		{status: 409, wantErr: true},
		{status: 422, wantErr: true},
		{status: 408, wantErr: true, retryable: true},
		{status: 413, wantErr: true},
		{status: 429, wantErr: true, retryable: true},
		{status: 429, retryAfter: "7", wantErr: true, retryable: true, minAfter: 7 * time.Second, maxAfter: 7 * time.Second},
		{status: 500, wantErr: true, retryable: true},
		{status: 502, wantErr: true, retryable: true},
		{status: 503, wantErr: true, retryable: true},
		{status: 503, retryAfter: httpDate, wantErr: true, retryable: true, minAfter: 80 * time.Second, maxAfter: 91 * time.Second},
		{status: 503, retryAfter: "soon", wantErr: true, retryable: true},
		{status: 500, retryAfter: "5", wantErr: true, retryable: true}, // only 429/503 honour it
	}
	records := testRecords(t, 3, 1)
	for _, mode := range []string{ModeBatch, ModeBinary, ModeStructured} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%d/%s", mode, tc.status, tc.retryAfter), func(t *testing.T) {
				rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					return tc.status
				})
				s := newTestSender(t, rc.URL(), mode, nil)
				err := s.Send(context.Background(), records)
				if !tc.wantErr {
					if err != nil {
						t.Fatalf("Send: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatal("Send returned nil")
				}
				var ue *Error
				if !errors.As(err, &ue) {
					t.Fatalf("not an *Error: %T %v", err, err)
				}
				if ue.StatusCode != tc.status {
					t.Errorf("StatusCode %d, want %d", ue.StatusCode, tc.status)
				}
				retry, after := classify(err)
				if retry != tc.retryable {
					t.Errorf("retryable %v, want %v (%v)", retry, tc.retryable, err)
				}
				if after < tc.minAfter || after > tc.maxAfter {
					t.Errorf("RetryAfter %v, want in [%v, %v]", after, tc.minAfter, tc.maxAfter)
				}
				msg := err.Error()
				if !strings.Contains(msg, strconv.Itoa(tc.status)) || (tc.status != 207 && !strings.Contains(msg, "rejected by test line two")) {
					t.Errorf("error lacks status or body snippet: %q", msg)
				}
				if strings.Contains(msg, "\n") || len(msg) > 600 {
					t.Errorf("error text not truncated to one line: %d bytes", len(msg))
				}
			})
		}
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return 200
	})
	t.Cleanup(func() { close(release) }) // runs before the server closes
	for _, mode := range []string{ModeBatch, ModeBinary} {
		t.Run(mode, func(t *testing.T) {
			s := newTestSender(t, rc.URL(), mode, func(c *Config) { c.HTTP.Timeout = 100 * time.Millisecond })
			start := time.Now()
			err := s.Send(context.Background(), testRecords(t, 2, 1))
			if err == nil {
				t.Fatal("Send returned nil against a stalled receiver")
			}
			if retry, _ := classify(err); !retry {
				t.Errorf("timeout not retryable: %v", err)
			}
			if !strings.Contains(err.Error(), "Timeout") && !strings.Contains(err.Error(), "deadline") {
				t.Errorf("error does not mention the timeout: %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send took %v with a 100ms timeout", d)
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	// Below the ephemeral range: no parallel test's bind to port 0 can
	// take it while this test expects it closed.
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{ModeBatch, ModeBinary, ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			s := newTestSender(t, "http://user:hunter2@"+addr+"/ingest?token=sekrit", mode, nil)
			err := s.Send(context.Background(), testRecords(t, 3, 2))
			if err == nil {
				t.Fatal("Send to a closed port returned nil")
			}
			if retry, _ := classify(err); !retry {
				t.Errorf("connection refused not retryable: %v", err)
			}
			if msg := err.Error(); strings.Contains(msg, "hunter2") || strings.Contains(msg, "sekrit") {
				t.Errorf("error leaks URL credentials: %q", msg)
			}
		})
	}
}

func TestContextCancelled(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newTestSender(t, rc.URL(), ModeBinary, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Send(ctx, testRecords(t, 3, 1))
	if retry, _ := classify(err); err == nil || !retry {
		t.Fatalf("cancelled Send: err %v retryable %v", err, retry)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error does not wrap context.Canceled: %v", err)
	}
}

// TestBinaryPerSourceOrder sends interleaved sources concurrently; the
// receiver checks that each source's seq arrives strictly increasing.
func TestBinaryPerSourceOrder(t *testing.T) {
	const sources, perSource = 6, 20
	var mu sync.Mutex
	last := map[string]int{}
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		for _, v := range evs {
			seq, _ := strconv.Atoi(v.Attrs["seq"])
			mu.Lock()
			prev, seen := last[v.Attrs["source"]]
			if seen && seq != prev+1 || !seen && seq != 0 {
				t.Errorf("source %s: seq %d after %d", v.Attrs["source"], seq, prev)
			}
			last[v.Attrs["source"]] = seq
			mu.Unlock()
		}
		time.Sleep(time.Millisecond) // widen the window for reordering
		return 200
	})
	for _, mode := range []string{ModeBinary, ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			mu.Lock()
			clear(last)
			mu.Unlock()
			s := newTestSender(t, rc.URL(), mode, func(c *Config) { c.HTTP.MaxInFlight = 4 })
			records := testRecords(t, sources*perSource, sources)
			if err := s.Send(context.Background(), records); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			for src, seq := range last {
				if seq != perSource-1 {
					t.Errorf("source %s ended at seq %d", src, seq)
				}
			}
			mu.Unlock()
		})
	}
	if maxIn := rc.Stats().MaxInflight; maxIn < 2 || maxIn > 4 {
		t.Errorf("max concurrent requests %d, want 2..4 (max_in_flight 4)", maxIn)
	}
}

// TestBinaryStopsSourceAfterFailure fails one event of one source and checks
// that no later event of that source is delivered.
func TestBinaryStopsSourceAfterFailure(t *testing.T) {
	records := testRecords(t, 40, 4)
	const failID = "evt-0009" // source dev1, seq 2
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		if evs[0].Attrs["id"] == failID {
			w.Header().Set("Retry-After", "2")
			return http.StatusServiceUnavailable
		}
		return 200
	})
	s := newTestSender(t, rc.URL(), ModeBinary, func(c *Config) { c.HTTP.MaxInFlight = 4 })
	err := s.Send(context.Background(), records)
	retry, after := classify(err)
	if err == nil || !retry || after != 2*time.Second {
		t.Fatalf("err %v retryable %v after %v", err, retry, after)
	}
	var re *RecordError
	if !errors.As(err, &re) || re.Index != 9 {
		t.Errorf("want RecordError index 9, got %v", err)
	}
	for _, v := range rc.Views() {
		if v.Attrs["source"] == "edgegate/devices/dev1" {
			if seq, _ := strconv.Atoi(v.Attrs["seq"]); seq >= 2 {
				t.Errorf("dev1 seq %d delivered after seq 2 failed", seq)
			}
		}
	}
}

func TestHeadersSentAndNeverLogged(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		return 500
	})
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, mode := range []string{ModeBatch, ModeBinary} {
		cfg := DefaultConfig()
		cfg.HTTP = new(DefaultHTTPConfig())
		cfg.Name = "hdr"
		cfg.HTTP.URL = rc.URL()
		cfg.HTTP.Mode = mode
		cfg.HTTP.Headers = map[string]string{"Authorization": "Bearer s3cr3t-token", "X-Gateway": "edge-1"}
		s, err := New(cfg, log, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = s.Send(context.Background(), testRecords(t, 2, 1))
		if err == nil {
			t.Fatal("want error from 500")
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error leaks header value: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auth) == 0 {
		t.Fatal("no requests")
	}
	for _, a := range auth {
		if a != "Bearer s3cr3t-token" {
			t.Errorf("Authorization %q", a)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if logs.Len() == 0 {
		t.Error("no debug logs written")
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Errorf("logs leak header value: %s", logs.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestMetrics(t *testing.T) {
	fail := true
	var mu sync.Mutex
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false
			return 503
		}
		return 200
	})
	set := metrics.NewSet()
	cfg := DefaultConfig()
	cfg.HTTP = new(DefaultHTTPConfig())
	cfg.Name = "m1"
	cfg.HTTP.URL = rc.URL()
	s, err := New(cfg, nil, set)
	if err != nil {
		t.Fatal(err)
	}
	records := testRecords(t, 5, 1)
	if err := s.Send(context.Background(), records); err == nil {
		t.Fatal("want 503 error")
	}
	if err := s.Send(context.Background(), records); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	set.WritePrometheus(&out)
	for _, want := range []string{
		`edgegate_uplink_requests_total{uplink="m1",code="503"} 1`,
		`edgegate_uplink_requests_total{uplink="m1",code="200"} 1`,
		`edgegate_uplink_events_sent_total{uplink="m1"} 5`,
		`edgegate_uplink_request_duration_seconds_count{uplink="m1"} 2`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
}

func TestRedirect(t *testing.T) {
	rc := newReceiver(t, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/temp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, rc.URL()+"final", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/found", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, rc.URL()+"final", http.StatusFound)
	})
	front := newReceiverHandler(t, mux)
	records := testRecords(t, 3, 1)

	s := newTestSender(t, front+"/temp", ModeBatch, nil)
	if err := s.Send(context.Background(), records); err != nil {
		t.Fatalf("307: %v", err)
	}
	checkSameSet(t, rc.Views(), records)

	s = newTestSender(t, front+"/found", ModeBatch, nil)
	err := s.Send(context.Background(), records)
	if retry, _ := classify(err); err == nil || retry {
		t.Fatalf("302 for POST: err %v retryable %v", err, retry)
	}
}

// New takes a validated config (Validate refuses an ftp:// url, see
// TestConfigValidate) but still refuses one without exactly one sender.
func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{Name: "x"}, nil, nil); err == nil || !strings.Contains(err.Error(), "set exactly one sender section") {
		t.Errorf("no sender: %v", err)
	}
	h, m := DefaultHTTPConfig(), DefaultMQTTConfig()
	if _, err := New(Config{Name: "x", HTTP: &h, MQTT: &m}, nil, nil); err == nil {
		t.Error("two senders accepted")
	}
}

// TestBinaryHeadersPercentEncoded: in binary mode, attribute values with a
// space, '"', '%' or non-ASCII characters travel percent-encoded (HTTP
// binding 3.1.3.2) and arrive unchanged after decoding. sdk-go alone sends
// them raw.
func TestBinaryHeadersPercentEncoded(t *testing.T) {
	rc := newReceiver(t, nil)
	s := newTestSender(t, rc.URL(), ModeBinary, nil)
	rec := testRecords(t, 1, 1)[0]
	markFailed(rec, &Error{Err: errors.New(`post x: 400 "Bad" 100% café 😀`), StatusCode: 400}, 2, "cloud")
	rec.Subject = "salle à manger/temp 100%"
	if err := s.Send(context.Background(), []*cloudevent.Event{rec}); err != nil {
		t.Fatal(err)
	}
	got := rc.Views()
	checkSameSet(t, got, []*cloudevent.Event{rec})
	if len(got) == 1 && (got[0].Attrs["subject"] != "salle à manger/temp 100%" || got[0].Attrs[ExtError] != `post x: 400 "Bad" 100% café 😀`) {
		t.Errorf("attributes %v", got[0].Attrs)
	}
}

// TestBinaryHeadersAllocations holds the binary-mode header budget: one
// request per event makes this the per-event cost of building the
// headers (the map, one array of values, the time, an integer extension's text), whatever the number of
// attributes and of the extensions the gateway sets.
func TestBinaryHeadersAllocations(t *testing.T) {
	e := testRecords(t, 1, 1)[0]
	e.SetExtension(cloudevent.ExtQoS, cloudevent.Integer(1))
	e.SetExtension(cloudevent.ExtClientID, cloudevent.String("dev0"))
	e.Extensions = slices.DeleteFunc(e.Extensions, func(x cloudevent.Extension) bool { return x.Name == "seq" })
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := binaryHeaders(e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 6 {
		t.Errorf("binaryHeaders: %.0f allocations per event, budget 6", allocs)
	}
}

// TestURLCredentialsAndRedirectPerEvent: user info in the URL travels as
// HTTP basic auth, and a 307 is followed with the body, in every mode
// (requests go on the transport itself; these are what http.Client did
// for them).
func TestURLCredentialsAndRedirectPerEvent(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pa ss" {
			mu.Lock()
			bad = append(bad, r.Header.Get("Authorization"))
			mu.Unlock()
			return http.StatusUnauthorized
		}
		return http.StatusOK
	})
	front := newReceiverHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(rc.URL(), "://", "://user:pa%20ss@", 1)+"final", http.StatusTemporaryRedirect)
	}))
	for _, mode := range []string{ModeBatch, ModeBinary, ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			records := testRecords(t, 6, 2)
			for _, url := range []string{strings.Replace(rc.URL(), "://", "://user:pa%20ss@", 1), front + "/temp"} {
				before := len(rc.Views())
				s := newTestSender(t, url, mode, nil)
				if err := s.Send(context.Background(), records); err != nil {
					t.Fatalf("%s: %v", url, err)
				}
				checkSameSet(t, rc.Views()[before:], records)
			}
		})
	}
	if len(bad) > 0 {
		t.Errorf("requests without the URL's credentials: %q", bad)
	}
}
