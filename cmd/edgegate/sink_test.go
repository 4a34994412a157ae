package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/uplink"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func sinkTestEvent(t *testing.T, i int) event.Event {
	t.Helper()
	e := event.New()
	e.SetID(fmt.Sprintf("id-%d", i))
	e.SetSource("edgegate/dev1")
	e.SetType("com.example.telemetry")
	e.SetSubject("sensors/dev1/temp")
	e.SetTime(time.Date(2026, 11, 22, 10, 0, i, 0, time.UTC))
	if err := e.SetData(event.ApplicationJSON, map[string]any{"temp": 20 + i}); err != nil {
		t.Fatal(err)
	}
	return e
}

// sinkTestRecords returns n sinkTestEvents as records for an uplink.
func sinkTestRecords(t *testing.T, n int) []*cloudevent.Event {
	t.Helper()
	out := make([]*cloudevent.Event, n)
	for i := range out {
		b, err := json.Marshal(sinkTestEvent(t, i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = new(cloudevent.Event)
		if err := cloudevent.Decode(b, out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func postSink(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestSinkHandlerModes(t *testing.T) {
	for _, format := range []string{"pretty", "json"} {
		t.Run(format, func(t *testing.T) {
			var out, errOut syncBuffer
			h := newSinkHandler(sinkOptions{status: 202, format: format}, &out, &errOut)
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx := context.Background()

			// binary
			req, err := cehttp.NewHTTPRequestFromEvent(ctx, srv.URL, sinkTestEvent(t, 1))
			if err != nil {
				t.Fatal(err)
			}
			if req.Header.Get("Ce-Id") != "id-1" {
				t.Fatalf("not a binary request: %v", req.Header)
			}
			if code, body := postSink(t, req); code != 202 {
				t.Fatalf("binary: %d %s", code, body)
			}

			// structured
			e2 := sinkTestEvent(t, 2)
			req, _ = http.NewRequest(http.MethodPost, srv.URL, nil)
			if err := cehttp.WriteRequest(binding.WithForceStructured(ctx), (*binding.EventMessage)(&e2), req); err != nil {
				t.Fatal(err)
			}
			if ct := req.Header.Get("Content-Type"); ct != event.ApplicationCloudEventsJSON {
				t.Fatalf("structured content type %q", ct)
			}
			if code, body := postSink(t, req); code != 202 {
				t.Fatalf("structured: %d %s", code, body)
			}

			// batch
			req, err = cehttp.NewHTTPRequestFromEvents(ctx, srv.URL, []event.Event{sinkTestEvent(t, 3), sinkTestEvent(t, 4)})
			if err != nil {
				t.Fatal(err)
			}
			if code, body := postSink(t, req); code != 202 {
				t.Fatalf("batch: %d %s", code, body)
			}

			if errOut.String() != "" {
				t.Errorf("sdk-go's requests reported: %s", errOut.String())
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 4 {
				t.Fatalf("%d lines:\n%s", len(lines), out.String())
			}
			if format == "pretty" {
				want := []string{
					`2026-11-22T10:00:01Z binary id=id-1 type=com.example.telemetry source=edgegate/dev1 subject=sensors/dev1/temp data={"temp":21}`,
					`2026-11-22T10:00:02Z structured id=id-2 type=com.example.telemetry source=edgegate/dev1 subject=sensors/dev1/temp data={"temp":22}`,
					`2026-11-22T10:00:03Z batch id=id-3 type=com.example.telemetry source=edgegate/dev1 subject=sensors/dev1/temp data={"temp":23}`,
					`2026-11-22T10:00:04Z batch id=id-4 type=com.example.telemetry source=edgegate/dev1 subject=sensors/dev1/temp data={"temp":24}`,
				}
				for i := range want {
					if lines[i] != want[i] {
						t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
					}
				}
				return
			}
			for i, l := range lines {
				var e event.Event
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("line %d not a CloudEvent: %v: %s", i, err, l)
				}
				if e.ID() != fmt.Sprintf("id-%d", i+1) || string(e.Data()) != fmt.Sprintf(`{"temp":%d}`, 21+i) {
					t.Errorf("line %d: %s", i, l)
				}
			}
		})
	}
}

func TestSinkHandlerRejects(t *testing.T) {
	var out, errOut syncBuffer
	h := newSinkHandler(sinkOptions{format: "pretty"}, &out, &errOut)
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func(ct string, hdr map[string]string, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return postSink(t, req)
	}
	cases := []struct {
		name string
		ct   string
		hdr  map[string]string
		body string
		code int
		want string
	}{
		{"plain json", "application/json", nil, `{"a":1}`, 400, "not a CloudEvent"},
		{"binary without id", "application/json", map[string]string{"ce-specversion": "1.0", "ce-source": "s", "ce-type": "t"}, `{}`, 400, "id"},
		{"binary bad specversion", "application/json", map[string]string{"ce-specversion": "0.1", "ce-id": "1", "ce-source": "s", "ce-type": "t"}, `{}`, 400, `header ce-specversion: "0.1", want "1.0"`},
		{"binary not percent-encoded", "application/json", map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t", "ce-subject": "salle à manger"}, `{}`, 400,
			"header ce-subject: not percent-encoded: space at byte 5, 8; not percent-encoded: non-ASCII 'à' at byte 6"},
		{"binary body not json", "application/json", map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t"}, `{`, 400, "body: not JSON"},
		{"structured not json", event.ApplicationCloudEventsJSON, nil, `nope`, 400, "(structured mode):\nevent: not JSON"},
		{"structured missing type", event.ApplicationCloudEventsJSON, nil, `{"specversion":"1.0","id":"1","source":"s"}`, 400, "type: required"},
		{"structured bad time", event.ApplicationCloudEventsJSON, nil, `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-13-01"}`, 400, `time: "2026-13-01" is not RFC 3339`},
		{"batch not array", event.ApplicationCloudEventsBatchJSON, nil, `{"specversion":"1.0"}`, 400, "(batch mode):\nbody: a batch must be a JSON array"},
		{"batch bad member", event.ApplicationCloudEventsBatchJSON, nil,
			`[{"specversion":"1.0","id":"1","source":"s","type":"t"},{"specversion":"1.0","id":"","source":"s","type":"t"}]`, 400, "batch[1]: id: must be a non-empty string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.ct, tc.hdr, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %q, want %d containing %q", code, body, tc.code, tc.want)
			}
		})
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
	if out.String() != "" {
		t.Errorf("rejected requests printed events: %s", out.String())
	}
	for _, want := range []string{
		`sink: INVALID batch request from 127.0.0.1:`,
		`: batch[1]: id: must be a non-empty string`,
		`sink: INVALID binary request from 127.0.0.1:`,
		`: header ce-subject: not percent-encoded: space at byte 5, 8`,
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
	if n := strings.Count(errOut.String(), "sink: INVALID"); n != len(cases) {
		t.Errorf("%d INVALID lines for %d bad requests:\n%s", n, len(cases), errOut.String())
	}
	if h.Invalid() != int64(len(cases)) {
		t.Errorf("counted %d invalid requests", h.Invalid())
	}
}

// TestSinkHandlerLenient: --lenient reports violations but accepts and
// prints what it can decode; percent-encoded values print decoded.
func TestSinkHandlerLenient(t *testing.T) {
	var out, errOut syncBuffer
	srv := httptest.NewServer(newSinkHandler(sinkOptions{format: "pretty", lenient: true}, &out, &errOut))
	defer srv.Close()
	send := func(subject string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"a":1}`))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t", "ce-subject": subject} {
			req.Header.Set(k, v)
		}
		return postSink(t, req)
	}
	if code, body := send("salle à manger"); code != 200 {
		t.Fatalf("lenient: %d %s", code, body)
	}
	if code, body := send("salle%20%C3%A0%20manger"); code != 200 {
		t.Fatalf("encoded: %d %s", code, body)
	}
	if !strings.Contains(errOut.String(), "sink: INVALID (accepted, --lenient) binary request from") ||
		strings.Count(errOut.String(), "\n") != 1 {
		t.Errorf("stderr:\n%s", errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `subject="salle à manger"`) || !strings.Contains(lines[1], `subject="salle à manger"`) {
		t.Errorf("printed:\n%s", out.String())
	}

	// A SHOULD violation is a warning, accepted even when strict.
	var out2, errOut2 syncBuffer
	srv2 := httptest.NewServer(newSinkHandler(sinkOptions{format: "pretty"}, &out2, &errOut2))
	defer srv2.Close()
	req, _ := http.NewRequest(http.MethodPost, srv2.URL, strings.NewReader(`{"specversion":"1.0","id":"1","source":"s","type":"t","abcdefghijklmnopqrstuvwxyz":"x"}`))
	req.Header.Set("Content-Type", event.ApplicationCloudEventsJSON)
	if code, body := postSink(t, req); code != 200 {
		t.Errorf("warning only: %d %s", code, body)
	}
	if !strings.Contains(errOut2.String(), "sink: WARNING structured request from") || !strings.Contains(errOut2.String(), "longer than 20 characters") {
		t.Errorf("stderr:\n%s", errOut2.String())
	}
}

func TestSinkHandlerStatusAndQuiet(t *testing.T) {
	var out syncBuffer
	h := newSinkHandler(sinkOptions{status: 503, format: "pretty"}, &out, io.Discard)
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := cehttp.NewHTTPRequestFromEvent(context.Background(), srv.URL, sinkTestEvent(t, 1))
	if code, _ := postSink(t, req); code != 503 {
		t.Errorf("status %d, want 503", code)
	}
	if !strings.Contains(out.String(), "answered=503") {
		t.Errorf("output %q", out.String())
	}

	var quiet syncBuffer
	hq := newSinkHandler(sinkOptions{quiet: true, format: "pretty"}, &quiet, io.Discard)
	srvq := httptest.NewServer(hq)
	defer srvq.Close()
	req, _ = cehttp.NewHTTPRequestFromEvent(context.Background(), srvq.URL, sinkTestEvent(t, 1))
	if code, _ := postSink(t, req); code != 200 {
		t.Errorf("quiet status %d", code)
	}
	if quiet.String() != "" || hq.events.Load() != 1 {
		t.Errorf("quiet printed %q, counted %d", quiet.String(), hq.events.Load())
	}
}

func TestSinkRenderData(t *testing.T) {
	e := event.New()
	_ = e.SetData("text/plain", "line1\nline2 é")
	if got := sinkRenderData(&e); got != `"line1\nline2 é"` {
		t.Errorf("text: %s", got)
	}
	_ = e.SetData("text/plain", "red\x1b[31m")
	if got := sinkRenderData(&e); got != "base64:cmVkG1szMW0=" {
		t.Errorf("escape sequence: %s", got)
	}
	_ = e.SetData("application/octet-stream", []byte{0, 1, 2})
	if got := sinkRenderData(&e); got != "base64:AAEC" {
		t.Errorf("binary: %s", got)
	}
	if got := sinkClean("a b"); got != `"a b"` {
		t.Errorf("clean: %s", got)
	}
}

// TestCmdSink runs the command on a free port, delivers events from the
// uplink sender in every mode and stops it by cancelling ctx.
func TestCmdSink(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- runSub(ctx, "sink", []string{"--listen", "127.0.0.1:0", "--format", "pretty"}, &stdout, pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("no startup line: %v", <-done)
	}
	line := sc.Text()
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("startup line %q", line)
	}
	url := strings.Fields(line[i:])[0]
	var stderr syncBuffer
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&stderr, pr); close(copied) }()

	records := sinkTestRecords(t, 3)
	for _, mode := range []string{uplink.ModeBatch, uplink.ModeBinary, uplink.ModeStructured} {
		cfg := uplink.DefaultConfig()
		h := uplink.DefaultHTTPConfig()
		cfg.Name, h.URL, h.Mode, cfg.HTTP = "sink", url, mode, &h
		s, err := uplink.New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(ctx, records); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		s.(io.Closer).Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sink: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sink did not stop")
	}
	out := stdout.String()
	for _, mode := range []string{"batch", "binary", "structured"} {
		if n := strings.Count(out, " "+mode+" id="); n != 3 {
			t.Errorf("%d %s events printed:\n%s", n, mode, out)
		}
	}
	<-copied
	if strings.Contains(stderr.String(), "sink: INVALID") || strings.Contains(stderr.String(), "sink: WARNING") ||
		!strings.Contains(stderr.String(), "received 9 events in 7 requests\n") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

func TestCmdSinkFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--format", "xml"},
		{"--status", "42"},
		{"extra"},
		{"--listen", "256.0.0.1:1"},
		{"--nope"},
	} {
		var stderr syncBuffer
		if err := runSub(context.Background(), "sink", args, io.Discard, &stderr); err == nil {
			t.Errorf("sink %q = nil", args)
		}
	}
	var stdout syncBuffer // help is output asked for: stdout
	if err := runSub(context.Background(), "sink", []string{"-h"}, &stdout, io.Discard); err != nil || !strings.Contains(stdout.String(), "--status") {
		t.Errorf("-h: %v %q", err, stdout.String())
	}
}

// TestSinkHandlerGzip: the sink reads what an uplink with compression: gzip
// sends, in every mode, and refuses unknown encodings.
func TestSinkHandlerGzip(t *testing.T) {
	var out syncBuffer
	srv := httptest.NewServer(newSinkHandler(sinkOptions{format: "json"}, &out, io.Discard))
	defer srv.Close()
	records := sinkTestRecords(t, 3)
	for _, mode := range []string{uplink.ModeBatch, uplink.ModeBinary, uplink.ModeStructured} {
		cfg := uplink.DefaultConfig()
		h := uplink.DefaultHTTPConfig()
		h.URL, h.Mode, h.Compression = srv.URL, mode, uplink.CompressionGzip
		cfg.Name, cfg.HTTP = "gz", &h
		s, err := uplink.New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(context.Background(), records); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 9 {
		t.Fatalf("%d events printed, want 9:\n%s", n, out.String())
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("x"))
	req.Header.Set("Content-Type", event.ApplicationCloudEventsJSON)
	req.Header.Set("Content-Encoding", "br")
	if code, _ := postSink(t, req); code != http.StatusUnsupportedMediaType {
		t.Errorf("br: %d", code)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("not gzip"))
	req.Header.Set("Content-Type", event.ApplicationCloudEventsJSON)
	req.Header.Set("Content-Encoding", "gzip")
	if code, _ := postSink(t, req); code != http.StatusBadRequest {
		t.Errorf("bad gzip: %d", code)
	}
}
