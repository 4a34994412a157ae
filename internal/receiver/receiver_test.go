package receiver

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

const (
	validJSON   = `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"a":1}}`
	warnJSON    = `{"specversion":"1.0","id":"1","source":"s","type":"t","abcdefghijklmnopqrstuvwxyz":"x"}`
	missingType = `{"specversion":"1.0","id":"1","source":"s"}`
)

func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

// serve sends one request through h and returns the status and body.
func serve(h http.Handler, method string, header map[string]string, body string) (int, string) {
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestHandler(t *testing.T) {
	structured := map[string]string{"Content-Type": "application/cloudevents+json"}
	gz := map[string]string{"Content-Type": "application/cloudevents+json", "Content-Encoding": "gzip"}
	cases := []struct {
		name    string
		h       *Handler
		method  string
		header  map[string]string
		body    string
		code    int
		want    string // in the answer
		refused bool   // Refused hook called
		checked bool   // Accept saw a checked request
	}{
		{"valid", &Handler{}, "POST", structured, validJSON, 200, "", false, true},
		{"get", &Handler{}, "GET", nil, "", 405, "POST CloudEvents here", true, false},
		{"gzip", &Handler{}, "POST", gz, gzipped(validJSON), 200, "", false, true},
		{"bad gzip", &Handler{}, "POST", gz, "not gzip", 400, "invalid gzip body", true, false},
		{"brotli", &Handler{}, "POST", map[string]string{"Content-Encoding": "br"}, "x", 415, `unsupported Content-Encoding "br"`, true, false},
		{"too large", &Handler{MaxBody: 10}, "POST", structured, validJSON, 413, "larger than 10 bytes", true, false},
		{"too large unzipped", &Handler{MaxBody: 200}, "POST", gz, gzipped(validJSON + strings.Repeat(" ", 2000)), 413, "larger than 200 bytes", true, false},
		{"invalid", &Handler{}, "POST", structured, missingType, 400, "not a valid CloudEvents 1.0 request (structured mode):\ntype: required", true, false},
		{"invalid lenient", &Handler{Lenient: true}, "POST", structured, missingType, 200, "", false, true},
		{"nothing to read lenient", &Handler{Lenient: true}, "POST", map[string]string{"Content-Type": "application/json"}, `{}`, 400, "not a CloudEvent", true, false},
		{"warning", &Handler{}, "POST", structured, warnJSON, 200, "", false, true},
		{"warning strict", &Handler{Strict: true}, "POST", structured, warnJSON, 400, "longer than 20 characters (SHOULD NOT) (SHOULD)", true, false},
		{"unchecked", &Handler{Check: func() bool { return false }}, "POST", structured, missingType, 200, "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			refused, accepted := false, false
			var got *Request
			h := tc.h
			h.Refused = func(_ *http.Request, why *Refusal) {
				refused = true
				if why.Status != tc.code || !strings.Contains(why.Reason, tc.want) || why.Incomplete {
					t.Errorf("Refused(%+v)", why)
				}
			}
			h.Accept = func(w http.ResponseWriter, r *Request) { accepted, got = true, r; w.WriteHeader(http.StatusOK) }
			code, body := serve(h, tc.method, tc.header, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %q, want %d containing %q", code, body, tc.code, tc.want)
			}
			if refused != tc.refused || accepted == tc.refused {
				t.Errorf("refused %v accepted %v", refused, accepted)
			}
			if accepted && (got.Checked != tc.checked || got.Checked != (len(got.Events) == 1)) {
				t.Errorf("checked %v with %d events, want checked %v", got.Checked, len(got.Events), tc.checked)
			}
			if accepted && got.HTTP.Header.Get("Content-Encoding") != "" {
				t.Error("Content-Encoding left on a decoded body")
			}
		})
	}
}

// The report names each violation once per line, escaped, and the counts
// follow what was refused.
func TestHandlerReport(t *testing.T) {
	var log bytes.Buffer // the handler runs synchronously here
	h := &Handler{Name: "sink", Log: &log}
	binary := map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t", "ce-subject": "a\tb"}
	if code, body := serve(h, "POST", binary, `{}`); code != 400 || !strings.Contains(body, "header ce-subject: not percent-encoded") {
		t.Errorf("binary: %d %s", code, body)
	}
	if code, _ := serve(h, "POST", map[string]string{"Content-Type": "application/cloudevents+json"}, warnJSON); code != 200 {
		t.Errorf("warning: %d", code)
	}
	out := log.String()
	if !strings.Contains(out, "sink: INVALID binary request from 192.0.2.1:1234: header ce-subject:") || strings.Contains(out, "\t") ||
		!strings.Contains(out, "sink: WARNING structured request from 192.0.2.1:1234: abcdefghijklmnopqrstuvwxyz: attribute name longer than 20 characters (SHOULD NOT) (SHOULD)\n") ||
		strings.Count(out, "\n") != 2 {
		t.Errorf("report:\n%s", out)
	}
	if h.Requests() != 2 || h.Invalid() != 1 {
		t.Errorf("requests %d invalid %d", h.Requests(), h.Invalid())
	}
}

func TestReasonsBounded(t *testing.T) {
	var problems []string
	for i := range MaxReported + 5 {
		problems = append(problems, fmt.Sprintf("p%d", i))
	}
	r := Reasons("batch", problems)
	if !strings.HasPrefix(r, "not a valid CloudEvents 1.0 request (batch mode):\np0\n") || !strings.HasSuffix(r, "\n… and 5 more") ||
		strings.Count(r, "\n") != MaxReported+1 {
		t.Errorf("Reasons:\n%s", r)
	}
}

// Decode hands sdk-go percent-decoded headers and the body again.
func TestRequestDecode(t *testing.T) {
	var events []string
	h := &Handler{Accept: func(w http.ResponseWriter, r *Request) {
		for range 2 { // twice: the body is put back each time
			evs, err := r.Decode()
			if err != nil || len(evs) != 1 {
				t.Fatalf("Decode: %v %v", evs, err)
			}
			events = append(events, evs[0].Subject()+" "+string(evs[0].Data()))
		}
	}}
	binary := map[string]string{"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "1", "ce-source": "s", "ce-type": "t", "ce-subject": "salle%20%C3%A0"}
	serve(h, "POST", binary, `{"a":1}`)
	if strings.Join(events, ",") != `salle à {"a":1},salle à {"a":1}` {
		t.Errorf("decoded %q", events)
	}
}

// A body that ends early is refused as incomplete (the sender went away),
// not as a violation; a broken gzip stream that arrived whole is not.
func TestHandlerIncomplete(t *testing.T) {
	for _, tc := range []struct {
		name       string
		enc        string
		body       io.Reader
		incomplete bool
	}{
		{"cut", "", io.MultiReader(strings.NewReader(`{"specversion":`), iotest.ErrReader(io.ErrUnexpectedEOF)), true},
		{"cut gzip", "gzip", io.MultiReader(strings.NewReader(gzipped(validJSON)[:20]), iotest.ErrReader(io.ErrUnexpectedEOF)), true},
		{"truncated gzip", "gzip", strings.NewReader(gzipped(validJSON)[:20]), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *Refusal
			h := &Handler{Refused: func(_ *http.Request, why *Refusal) { got = why }}
			req := httptest.NewRequest("POST", "/", tc.body)
			req.Header.Set("Content-Type", "application/cloudevents+json")
			req.Header.Set("Content-Encoding", tc.enc)
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got == nil || got.Status != 400 || got.Incomplete != tc.incomplete {
				t.Errorf("refusal %+v, want incomplete %v", got, tc.incomplete)
			}
		})
	}
}
