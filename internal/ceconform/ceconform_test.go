package ceconform

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const okEvent = `{"specversion":"1.0","id":"1","source":"/s","type":"t"`

func request(ct string, hdr map[string]string, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

func binHeaders(extra ...string) map[string]string {
	h := map[string]string{"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(h, extra[i])
			continue
		}
		h[extra[i]] = extra[i+1]
	}
	return h
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		ct     string
		hdr    map[string]string
		body   string
		events int    // events returned
		err    string // substring of the error; "" means valid
		warn   string // substring of a warning; "" means none
	}{
		// binary mode
		{"binary ok", "application/json", binHeaders("ce-time", "2026-11-22T10:00:00.123+01:00", "ce-seq", "3"), `{"a": 1}`, 1, "", ""},
		{"binary no data", "", binHeaders(), ``, 1, "", ""},
		{"binary percent-encoded", "text/plain", binHeaders("ce-subject", "Euro%20%E2%82%AC%20%F0%9F%98%80"), `x`, 1, "", ""},
		{"binary space", "text/plain", binHeaders("ce-subject", "a b"), `x`, 1, "header ce-subject: not percent-encoded: space at byte 1", ""},
		{"binary non-ascii", "text/plain", binHeaders("ce-subject", "café"), `x`, 1, `header ce-subject: not percent-encoded: non-ASCII 'é' at byte 3`, ""},
		{"binary quote", "text/plain", binHeaders("ce-subject", `a"b`), `x`, 1, `'"' at byte 1`, ""},
		{"binary bare percent", "text/plain", binHeaders("ce-subject", `100%`), `x`, 1, `a literal '%' must be %25`, ""},
		{"binary overlong", "text/plain", binHeaders("ce-subject", `%C0%A0`), `x`, 1, "not valid UTF-8", ""},
		{"binary lower hex", "text/plain", binHeaders("ce-subject", `a%c3%a9`), `x`, 1, "", "SHOULD be upper-case"},
		{"binary needless", "text/plain", binHeaders("ce-subject", `%41`), `x`, 1, "", "SHOULD NOT"},
		{"binary quoted", "text/plain", binHeaders("ce-subject", `"a%20b"`), `x`, 1, "", "quoted-string"},
		{"binary quoted space", "text/plain", binHeaders("ce-subject", `"a b"`), `x`, 1, "space", "quoted-string"},
		{"binary missing id", "application/json", binHeaders("ce-id", ""), `{}`, 1, "header ce-id: required", ""},
		{"binary empty type", "application/json", binHeaders("ce-type", `""`), `{}`, 1, "header ce-type: must be a non-empty string", "quoted"},
		{"binary specversion", "application/json", binHeaders("ce-specversion", "0.3"), `{}`, 1, `header ce-specversion: "0.3", want "1.0"`, ""},
		{"binary bad time", "", binHeaders("ce-time", "2026-13-01T00:00:00Z"), ``, 1, `header ce-time: "2026-13-01T00:00:00Z" is not RFC 3339: month 13`, ""},
		{"binary date only", "", binHeaders("ce-time", "2026-12-01"), ``, 1, `is not RFC 3339`, ""},
		{"binary feb 30", "", binHeaders("ce-time", "2026-02-29T00:00:00Z"), ``, 1, `day 29 out of range`, ""},
		{"binary leap second", "", binHeaders("ce-time", "2016-12-31t23:59:60z"), ``, 1, "", ""},
		{"binary source", "", binHeaders("ce-source", "a:b%2520c"), ``, 1, "", ""},
		{"binary bad source", "", binHeaders("ce-source", "1a:b"), ``, 1, "header ce-source: \"1a:b\" is not a URI-reference", ""},
		{"binary bad source brackets", "", binHeaders("ce-source", "/a[1]"), ``, 1, "is not a URI-reference", ""},
		{"binary dataschema relative", "", binHeaders("ce-dataschema", "/schema"), ``, 1, "not an absolute URI (RFC 3986 4.3): no scheme", ""},
		{"binary dataschema ok", "", binHeaders("ce-dataschema", "https://example.com/s.json"), ``, 1, "", ""},
		{"binary datacontenttype header", "application/json", binHeaders("ce-datacontenttype", "application/json"), `{}`, 1, "header ce-datacontenttype: MUST NOT be present", ""},
		{"binary bad ext name", "", binHeaders("ce-my_ext", "x"), ``, 1, `"my_ext" is not a valid attribute name`, ""},
		{"binary long ext name", "", binHeaders("ce-abcdefghijklmnopqrstu", "x"), ``, 1, "", "longer than 20"},
		{"binary bad json", "application/json", binHeaders(), `{nope`, 1, `body: not JSON although Content-Type "application/json" says so`, ""},
		{"binary vendor json", "application/vnd.x+json; charset=utf-8", binHeaders(), `[1]`, 1, "", ""},
		{"binary no content type", "", binHeaders(), `x`, 1, "", "no Content-Type"},
		{"binary bad content type", "text/", binHeaders(), `x`, 1, `Content-Type: "text/" is not a media type`, ""},
		{"binary control char", "", binHeaders("ce-subject", "a%0Ab"), ``, 1, "control character U+000A", ""},
		{"not a cloudevent", "application/json", nil, `{}`, 0, "not a CloudEvent: no ce- headers", ""},

		// structured mode
		{"structured ok", "application/cloudevents+json; charset=UTF-8", nil, okEvent + `,"data":{"x":1},"ext1":5,"flag":true,"nothing":null}`, 1, "", ""},
		{"structured headers match", MediaTypeJSON, map[string]string{"ce-id": "1"}, okEvent + `}`, 1, "", ""},
		{"structured header mismatch", MediaTypeJSON, map[string]string{"ce-id": "2"}, okEvent + `}`, 1, `header ce-id: "2", but the payload has "1"`, ""},
		{"structured header not in payload", MediaTypeJSON, map[string]string{"ce-subject": "x"}, okEvent + `}`, 1, "attribute subject is not in the payload", ""},
		{"structured charset", MediaTypeJSON + "; charset=latin1", nil, okEvent + `}`, 1, `charset "latin1"`, ""},
		{"structured other format", "application/cloudevents+avro", nil, `x`, 0, `event format "application/cloudevents+avro" is not supported`, ""},
		{"structured not json", MediaTypeJSON, nil, `nope`, 1, "event: not JSON", ""},
		{"structured array", MediaTypeJSON, nil, `[]`, 1, "event: not a JSON object, got [", ""},
		{"structured trailing", MediaTypeJSON, nil, okEvent + `}{}`, 1, "trailing data", ""},
		{"structured duplicate", MediaTypeJSON, nil, okEvent + `,"id":"2"}`, 1, `member "id": duplicate`, ""},
		{"structured missing type", MediaTypeJSON, nil, `{"specversion":"1.0","id":"1","source":"s"}`, 1, "type: required", ""},
		{"structured null type", MediaTypeJSON, nil, `{"specversion":"1.0","id":"1","source":"s","type":null}`, 1, "type: required", ""},
		{"structured numeric id", MediaTypeJSON, nil, `{"specversion":"1.0","id":1,"source":"s","type":"t"}`, 1, "id: must be a JSON string, got 1", ""},
		{"structured empty subject", MediaTypeJSON, nil, okEvent + `,"subject":""}`, 1, "subject: must be a non-empty string", ""},
		{"structured bad time", MediaTypeJSON, nil, okEvent + `,"time":"2026-13-01"}`, 1, `time: "2026-13-01" is not RFC 3339`, ""},
		{"structured both data", MediaTypeJSON, nil, okEvent + `,"data":1,"data_base64":"AA=="}`, 1, "mutually exclusive", ""},
		{"structured bad base64", MediaTypeJSON, nil, okEvent + `,"data_base64":"!!"}`, 1, "data_base64: not base64", ""},
		{"structured base64 newline", MediaTypeJSON, nil, okEvent + `,"data_base64":"AA\n=="}`, 1, "line break", ""},
		{"structured text data", MediaTypeJSON, nil, okEvent + `,"datacontenttype":"text/plain","data":"hi"}`, 1, "", ""},
		{"structured text data not string", MediaTypeJSON, nil, okEvent + `,"datacontenttype":"text/plain","data":{"a":1}}`, 1, `datacontenttype "text/plain" is not JSON, so data MUST be a string`, ""},
		{"structured encoded json", MediaTypeJSON, nil, okEvent + `,"datacontenttype":"application/json","data":"{\"a\":1}"}`, 1, "", ""},
		{"structured null data", MediaTypeJSON, nil, okEvent + `,"data":null}`, 1, "", ""},
		{"structured float ext", MediaTypeJSON, nil, okEvent + `,"n":1.5}`, 1, "n: number 1.5 is not an Integer", ""},
		{"structured big ext", MediaTypeJSON, nil, okEvent + `,"n":2147483648}`, 1, "out of the signed 32-bit range", ""},
		{"structured object ext", MediaTypeJSON, nil, okEvent + `,"o":{}}`, 1, "o: must be a string, boolean or integer", ""},
		{"structured bad ext name", MediaTypeJSON, nil, okEvent + `,"Ext":"x"}`, 1, `member "Ext": not a valid attribute name`, ""},
		{"structured long ext name", MediaTypeJSON, nil, okEvent + `,"abcdefghijklmnopqrstu":"x"}`, 1, "", "longer than 20"},
		{"structured surrogate", MediaTypeJSON, nil, okEvent + `,"subject":"\udead"}`, 1, `subject: unpaired surrogate \uDEAD`, ""},
		{"structured surrogate pair", MediaTypeJSON, nil, okEvent + `,"subject":"\ud800\udead"}`, 1, "", ""},
		{"structured control", MediaTypeJSON, nil, okEvent + `,"subject":"a\u0085"}`, 1, "control character U+0085", ""},
		{"structured noncharacter", MediaTypeJSON, nil, okEvent + `,"x":"\ufdd0"}`, 1, "noncharacter U+FDD0", ""},
		{"structured bad utf8", MediaTypeJSON, nil, okEvent + ",\"subject\":\"\xff\"}", 1, "invalid UTF-8", ""},
		{"structured dataschema fragment", MediaTypeJSON, nil, okEvent + `,"dataschema":"https://x/s#a"}`, 1, "no fragment", ""},
		{"structured bad datacontenttype", MediaTypeJSON, nil, okEvent + `,"datacontenttype":"json"}`, 1, `datacontenttype: "json" is not a media type`, ""},
		{"structured unknown param", MediaTypeJSON + "; foo=bar", nil, okEvent + `}`, 1, "", `unknown parameter "foo"`},

		// batch mode
		{"batch empty", MediaTypeBatchJSON, nil, `[]`, 0, "", ""},
		{"batch ok", MediaTypeBatchJSON + "; charset=utf-8", nil, `[` + okEvent + `},` + okEvent + `,"data_base64":"AAE="}]`, 2, "", ""},
		{"batch bad member", MediaTypeBatchJSON, nil, `[` + okEvent + `},` + okEvent + `,"time":"2026-13-01"}]`, 2, `batch[1]: time: "2026-13-01" is not RFC 3339`, ""},
		{"batch not array", MediaTypeBatchJSON, nil, okEvent + `}`, 0, "a batch must be a JSON array, got an object", ""},
		{"batch null", MediaTypeBatchJSON, nil, `null`, 0, "got null", ""},
		{"batch element not object", MediaTypeBatchJSON, nil, `[1]`, 1, "batch[0]: event: not a JSON object, got a number", ""},
		{"batch truncated", MediaTypeBatchJSON, nil, `[` + okEvent + `}`, 1, "bad JSON", ""},
		{"batch trailing", MediaTypeBatchJSON, nil, `[] []`, 0, "trailing data", ""},
		{"batch with ce headers", MediaTypeBatchJSON, map[string]string{"ce-id": "1"}, `[]`, 0, "", "binary-mode header on a batch"},
		{"batch other format", "application/cloudevents-batch+xml", nil, `[]`, 0, "is not supported", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, warns, err := ValidateRequest(request(tc.ct, tc.hdr, tc.body))
			if len(evs) != tc.events {
				t.Errorf("%d events, want %d", len(evs), tc.events)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want it to contain %q", err, tc.err)
			}
			if err != nil {
				var v *Violations
				if !errors.As(err, &v) || len(v.Problems) == 0 {
					t.Errorf("error %T is not *Violations", err)
				}
			}
			w := strings.Join(warns, "\n")
			switch {
			case tc.warn == "" && w != "":
				t.Errorf("unexpected warnings: %s", w)
			case tc.warn != "" && !strings.Contains(w, tc.warn):
				t.Errorf("warnings %q, want one containing %q", w, tc.warn)
			}
			for i, e := range evs {
				if e.Err != nil && (err == nil || !strings.Contains(err.Error(), e.Err.Error())) {
					t.Errorf("event %d: Err %v not in the request error %v", i, e.Err, err)
				}
			}
		})
	}
}

// TestImportsStdlibOnly enforces doc.go: ceconform imports only the standard
// library (no sdk-go, no edgegate package).
func TestImportsStdlibOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

func TestValidateValues(t *testing.T) {
	evs, _, err := ValidateRequest(request("text/plain; charset=utf-8",
		binHeaders("ce-subject", "Euro%20%E2%82%AC", "ce-seq", "7", "ce-time", "2026-11-22T10:00:00Z"), "hello"))
	if err != nil {
		t.Fatal(err)
	}
	e := evs[0]
	if e.Mode != ModeBinary || e.Attrs["subject"] != "Euro €" || e.Attrs["seq"] != "7" ||
		e.Attrs["datacontenttype"] != "text/plain; charset=utf-8" || string(e.Data) != "hello" || !e.HasData || e.Err != nil {
		t.Errorf("binary event %+v", e)
	}

	evs, _, err = ValidateRequest(request(MediaTypeBatchJSON, nil, `[`+
		okEvent+`,"data":{ "a" : [1, 2] },"n":-3,"b":false},`+
		okEvent+`,"datacontenttype":"text/plain","data":"a\"b"},`+
		okEvent+`,"data_base64":"AAH/"},`+
		okEvent+`,"time":"2026-13-01"}]`))
	if err == nil || strings.Count(err.Error(), "\n") != 0 {
		t.Fatalf("want one problem, got %v", err)
	}
	if len(evs) != 4 {
		t.Fatalf("%d events", len(evs))
	}
	if string(evs[0].Data) != `{"a":[1,2]}` || evs[0].Attrs["n"] != "-3" || evs[0].Attrs["b"] != "false" || evs[0].Mode != ModeBatch {
		t.Errorf("event 0: %+v", evs[0])
	}
	if string(evs[1].Data) != `a"b` || evs[1].DataBase64 {
		t.Errorf("event 1: %+v", evs[1])
	}
	if !bytes.Equal(evs[2].Data, []byte{0, 1, 0xff}) || !evs[2].DataBase64 {
		t.Errorf("event 2: %+v", evs[2])
	}
	for i, e := range evs {
		if (e.Err != nil) != (i == 3) {
			t.Errorf("event %d: Err %v", i, e.Err)
		}
	}
}

func TestValidateRequestGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(`[` + okEvent + `}]`))
	zw.Close()
	r := request(MediaTypeBatchJSON, map[string]string{"Content-Encoding": "gzip"}, buf.String())
	evs, _, err := ValidateRequest(r)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	// The decoded body is put back for a second reader.
	again, _ := io.ReadAll(r.Body)
	if string(again) != `[`+okEvent+`}]` || r.Header.Get("Content-Encoding") != "" {
		t.Errorf("body put back %q, encoding %q", again, r.Header.Get("Content-Encoding"))
	}

	for _, enc := range []string{"gzip", "br"} {
		r := request(MediaTypeBatchJSON, map[string]string{"Content-Encoding": enc}, "not gzip")
		if _, _, err := ValidateRequest(r); err == nil {
			t.Errorf("%s: accepted", enc)
		} else if v := (*Violations)(nil); errors.As(err, &v) {
			t.Errorf("%s: a transport error reported as a violation: %v", enc, err)
		}
	}
}

func TestSameEvent(t *testing.T) {
	record := []byte(okEvent + `,"time":"2026-11-22T10:00:00Z","n":3,"data":{"a":1}}`)
	bin, _, err := ValidateRequest(request("application/json", binHeaders("ce-time", "2026-11-22T11:00:00.000+01:00", "ce-n", "3"), `{ "a": 1 }`))
	if err != nil {
		t.Fatal(err)
	}
	if err := SameEvent(bin[0], record); err != nil {
		t.Errorf("binary: %v", err)
	}
	for _, tc := range []struct{ hdr, want string }{
		{"ce-n", "attribute n"},
		{"ce-time", "attribute time"},
	} {
		h := binHeaders("ce-time", "2026-11-22T10:00:01Z", "ce-n", "4")
		if tc.hdr == "ce-n" {
			h["ce-time"] = "2026-11-22T10:00:00Z"
		} else {
			h["ce-n"] = "3"
		}
		evs, _, _ := ValidateRequest(request("application/json", h, `{"a":1}`))
		if err := SameEvent(evs[0], record); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.hdr, err, tc.want)
		}
	}
	evs, _, _ := ValidateRequest(request("application/json", binHeaders("ce-time", "2026-11-22T10:00:00Z", "ce-n", "3"), `{"a":2}`))
	if err := SameEvent(evs[0], record); err == nil || !strings.Contains(err.Error(), "data") {
		t.Errorf("data: %v", err)
	}
	if err := SameEvent(evs[0], []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "sent record is invalid") {
		t.Errorf("invalid record: %v", err)
	}
}

func TestDecodeHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("Ce-Subject", "a%20b%C3%A9")
	h.Set("Ce-Bad", "a b")
	h.Set("Content-Type", "a%20b")
	DecodeHeaders(h)
	if h.Get("Ce-Subject") != "a bé" || h.Get("Ce-Bad") != "a b" || h.Get("Content-Type") != "a%20b" {
		t.Errorf("decoded %v", h)
	}
	if _, err := DecodeHeaderValue("100%"); err == nil {
		t.Error("bare % accepted")
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(MediaTypeBatchJSON, "", `[`+okEvent+`,"data":"x"}]`)
	f.Add(MediaTypeJSON, "", okEvent+`,"data_base64":"AA=="}`)
	f.Add("text/plain", "a%C3%A9", "x")
	f.Add("", `"a\"b"`, "")
	f.Fuzz(func(t *testing.T, ct, subject, body string) {
		h := http.Header{}
		h.Set("Content-Type", ct)
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Subject", subject)
		evs, warns, err := Validate(h, []byte(body))
		_ = warns
		for _, e := range evs {
			if e.Err != nil && err == nil {
				t.Fatalf("event error %v without a request error", e.Err)
			}
		}
	})
}

func ExampleValidateRequest() {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`[
		{"specversion":"1.0","id":"1","source":"/dev/1","type":"t","data":{"temp":21}},
		{"specversion":"1.0","id":"2","source":"/dev/1","type":"t","time":"2026-13-01T00:00:00Z"}
	]`))
	r.Header.Set("Content-Type", "application/cloudevents-batch+json")
	events, warnings, err := ValidateRequest(r)
	for _, e := range events {
		fmt.Printf("%s id=%s data=%s valid=%v\n", e.Mode, e.Attrs["id"], e.Data, e.Err == nil)
	}
	fmt.Println(len(warnings), "warnings")
	fmt.Println(err)
	// Output:
	// batch id=1 data={"temp":21} valid=true
	// batch id=2 data= valid=false
	// 0 warnings
	// batch[1]: time: "2026-13-01T00:00:00Z" is not RFC 3339: month 13 out of range
}
