package cloudevent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
)

// A buffer written by the previous release holds CloudEvents JSON exactly
// as gateway.Handle and the forward loop stored it (testdata/legacy, see
// its README). Decode reads every such record to what sdk-go reads from
// it, and the event written again (AppendJSON, or the buffer form) is
// still the same event.
func TestDecodeLegacyRecords(t *testing.T) {
	files, err := filepath.Glob("testdata/legacy/*.json")
	if err != nil || len(files) < 8 {
		t.Fatalf("legacy records: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			raw = bytes.TrimSpace(raw)
			var e cloudevent.Event
			if err := cloudevent.Decode(raw, &e); err != nil {
				t.Fatal(err)
			}
			if err := e.Validate(); err != nil {
				t.Errorf("invalid after decoding: %v", err)
			}
			se := sdkParse(t, raw)
			checkSameAsSDK(t, "decoded", &e, se)

			out := cloudevent.AppendJSON(nil, &e)
			if _, warns, err := ceconform.ValidateStructured(out); err != nil || len(warns) > 0 {
				t.Errorf("written again: %v %v\n%s", err, warns, out)
			}
			checkSameAsSDK(t, "written again", &e, sdkParse(t, out))

			var back cloudevent.Event
			if err := cloudevent.Decode(cloudevent.Encode(&e), &back); err != nil {
				t.Fatal(err)
			}
			checkSameAsSDK(t, "through the buffer form", &back, se)
		})
	}
}

// What the legacy records hold, spelled out for the kinds that matter.
func TestDecodeLegacyDetails(t *testing.T) {
	read := func(name string) cloudevent.Event {
		t.Helper()
		raw, err := os.ReadFile("testdata/legacy/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var e cloudevent.Event
		if err := cloudevent.Decode(raw, &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := read("binary-props")
	if !e.DataBase64 || !bytes.Equal(e.Data, []byte{0, 0xff, 1, 2}) || e.DataContentType != "image/png" {
		t.Errorf("binary data: %+v", e)
	}
	if v, _ := e.Extension("zone"); v.Str() != "b\"<&>é" {
		t.Errorf("zone = %v", v)
	}
	if v, _ := e.Extension(cloudevent.ExtQoS); v.Kind() != cloudevent.KindInteger || v.Int() != 2 {
		t.Errorf("mqttqos = %#v", v)
	}
	e = read("forward-deadletter")
	if v, _ := e.Extension(cloudevent.ExtReplayed); !v.Bool() {
		t.Errorf("replayed = %#v", v)
	}
	if v, _ := e.Extension(cloudevent.ExtErrorCode); v.Int() != 400 {
		t.Errorf("error code = %#v", v)
	}
	if v, _ := e.Extension(cloudevent.ExtError); !strings.Contains(v.Str(), `"bad" <event>`) {
		t.Errorf("error = %#v", v)
	}
	e = read("text-generic")
	if string(e.Data) != "online" || !e.DataBase64 {
		t.Errorf("text data: %q %v", e.Data, e.DataBase64)
	}
	if e = read("empty"); e.Data != nil || e.DataContentType != "" {
		t.Errorf("empty: %+v", e)
	}
	if e = read("rules-changed"); e.Time != time.Date(2026, 11, 23, 3, 0, 0, 123456789, time.UTC) {
		t.Errorf("time = %v", e.Time)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, in := range []string{
		"", "[]", "null", `"x"`, `{"id":"1"}`, `{"specversion":"0.3","id":"1"}`,
		`{"specversion":"1.0","time":"yesterday"}`, `{"specversion":"1.0","id":1}`,
		`{"specversion":"1.0","data":1,"data_base64":"AA=="}`, `{"specversion":"1.0","data_base64":"!"}`,
		`{"specversion":"1.0","x-y":"1"}`, `{"specversion":"1.0","big":3000000000}`, `{"specversion":"1.0","obj":{}}`,
		`{"specversion":"1.0","datacontenttype":"text/plain","data":{}}`,
		"\xce", "\xce\x02", "\xce\x01\x00", "\xce\x01\x04\x00\x00\x00\x00\x00\x00\x00",
		"\xce\x01\x00\x05\x00\x00\x00\x00\x00\x00", // id longer than the record
	} {
		var e cloudevent.Event
		if err := cloudevent.Decode([]byte(in), &e); !errors.Is(err, cloudevent.ErrCorrupt) {
			t.Errorf("Decode(%q) = %v, want ErrCorrupt", in, err)
		}
	}
}

// fullEvent has every attribute, each kind of extension and binary data.
func fullEvent() cloudevent.Event {
	e := cloudevent.Event{
		ID: "01a2", Source: "/edgegate/gw/devices/t1", Type: "io.edgegate.device.telemetry", Subject: "t1",
		Time: time.Date(2026, 11, 23, 3, 0, 0, 5, time.UTC), DataContentType: "image/png",
		DataSchema: "https://example.com/schema", Data: []byte{0, 1, 0xff}, DataBase64: true,
	}
	e.SetExtension(cloudevent.ExtTopic, cloudevent.String("devices/t1/telemetry"))
	e.SetExtension(cloudevent.ExtQoS, cloudevent.Integer(-7))
	e.SetExtension("flag", cloudevent.Bool(true))
	e.SetExtension("off", cloudevent.Bool(false))
	e.SetExtension("empty", cloudevent.String(""))
	return e
}

func TestEncodeDecode(t *testing.T) {
	for _, e := range []cloudevent.Event{
		fullEvent(),
		{ID: "1", Source: "/s", Type: "t"},
		{ID: "1", Source: "/s", Type: "t", Data: []byte(`{"a":[1,2]}`), Time: time.Unix(-5e10, 0).UTC()},
	} {
		b := cloudevent.Encode(&e)
		var back cloudevent.Event
		back.Replayed = true // Decode resets everything
		if err := cloudevent.Decode(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Errorf("round trip:\n got %+v\nwant %+v", back, e)
		}
		if got := cloudevent.AppendEncode([]byte("x"), &e); !bytes.Equal(got[1:], b) {
			t.Errorf("AppendEncode differs from Encode")
		}
	}
}

func TestAppendJSON(t *testing.T) {
	e := fullEvent()
	e.SetExtension(cloudevent.ExtReplayed, cloudevent.Bool(false))
	e.Replayed = true
	e.Subject = "a \"q\" \\ \n\x01 é \xff"
	got := string(cloudevent.AppendJSON(nil, &e))
	want := `{"specversion":"1.0","id":"01a2","source":"/edgegate/gw/devices/t1","type":"io.edgegate.device.telemetry",` +
		`"subject":"a \"q\" \\ \n\u0001 é \ufffd","datacontenttype":"image/png","dataschema":"https://example.com/schema",` +
		`"time":"2026-11-23T03:00:00.000000005Z","data_base64":"AAH/","mqtttopic":"devices/t1/telemetry","mqttqos":-7,` +
		`"flag":true,"off":false,"empty":"","replayed":true}`
	if got != want {
		t.Errorf("AppendJSON:\n got %s\nwant %s", got, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatal(err)
	}
}

func TestExtensions(t *testing.T) {
	var e cloudevent.Event
	e.SetExtension("a", cloudevent.String("1"))
	e.SetExtension("b", cloudevent.Integer(2))
	e.SetExtension("a", cloudevent.Bool(true))
	e.DeleteExtension("zz")
	if v, ok := e.Extension("a"); !ok || !v.Bool() || len(e.Extensions) != 2 || e.Extensions[0].Name != "a" {
		t.Fatalf("%+v", e.Extensions)
	}
	e.DeleteExtension("a")
	if _, ok := e.Extension("a"); ok || len(e.Extensions) != 1 || e.Extensions[0].Name != "b" {
		t.Fatalf("%+v", e.Extensions)
	}
	for _, v := range []struct {
		v    cloudevent.Value
		s    string
		want any
	}{
		{cloudevent.String("x"), "x", "x"}, {cloudevent.Bool(false), "false", false},
		{cloudevent.Integer(-3), "-3", int32(-3)}, {cloudevent.Value{}, "", nil},
	} {
		if v.v.String() != v.s || v.v.Any() != v.want {
			t.Errorf("%#v: %q %#v", v.v, v.v.String(), v.v.Any())
		}
	}
}

func TestValidate(t *testing.T) {
	ok := fullEvent()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*cloudevent.Event){
		"id":        func(e *cloudevent.Event) { e.ID = " " },
		"source":    func(e *cloudevent.Event) { e.Source = "" },
		"type":      func(e *cloudevent.Event) { e.Type = "" },
		"extension": func(e *cloudevent.Event) { e.SetExtension("Bad", cloudevent.String("x")) },
		"reserved":  func(e *cloudevent.Event) { e.SetExtension("dataschema", cloudevent.String("x")) },
		"no value":  func(e *cloudevent.Event) { e.SetExtension("novalue", cloudevent.Value{}) },
		"twice": func(e *cloudevent.Event) {
			e.Extensions = append(e.Extensions, cloudevent.Extension{Name: "flag", Value: cloudevent.Bool(true)})
		},
		"data": func(e *cloudevent.Event) { e.DataBase64, e.Data, e.DataContentType = false, []byte("1"), "text/plain" },
	} {
		e := fullEvent()
		mod(&e)
		if err := e.Validate(); err == nil || !strings.Contains(err.Error(), strings.Fields(name)[0]) && name != "twice" && name != "reserved" {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNames(t *testing.T) {
	for _, n := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema"} {
		if !cloudevent.IsContextAttribute(n) || !cloudevent.Reserved(n) {
			t.Errorf("%s is a context attribute", n)
		}
	}
	for _, n := range []string{"data", "data_base64", "datacontentencoding", "schemaurl"} {
		if cloudevent.IsContextAttribute(n) || !cloudevent.Reserved(n) {
			t.Errorf("%s is reserved, not a context attribute", n)
		}
	}
	for _, n := range []string{cloudevent.ExtTopic, cloudevent.ExtQoS, cloudevent.ExtReplayed, cloudevent.ExtError,
		cloudevent.ExtErrorCode, cloudevent.ExtErrorDest, cloudevent.ExtAttempts, cloudevent.ExtClientID,
		cloudevent.ExtUser, cloudevent.ExtAuth, cloudevent.ExtContentType, cloudevent.ExtWill} {
		if !cloudevent.ValidExtensionName(n) || cloudevent.Reserved(n) {
			t.Errorf("%s must be a valid extension name", n)
		}
		if !cloudevent.ReservedForGateway(n) {
			t.Errorf("a device may set %s", n)
		}
	}
	for n, want := range map[string]bool{"id": true, "data": true, "data_base64": true, "replayed": true,
		"edgegate": true, "edgegatex": true, "mqtt": true, "mqttx": true, "zone": false, "replayedx": false, "xedgegate": false} {
		if cloudevent.ReservedForGateway(n) != want {
			t.Errorf("ReservedForGateway(%q) = %v", n, !want)
		}
	}
	for in, want := range map[string]string{
		"Firmware-Version": "firmwareversion", "%%": "", "ABCDEFGHIJKLMNOPQRSTUVWXYZ": "abcdefghijklmnopqrst", "ü1": "1",
	} {
		if got := cloudevent.ExtensionName(in); got != want {
			t.Errorf("ExtensionName(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"", "A", "a-b", "abcdefghijklmnopqrstu"} {
		if cloudevent.ValidExtensionName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
	for in, want := range map[string]string{
		"ok é": "ok é", "a\x00b": "a\uFFFDb", "\xff": "\uFFFD", "\u0085\ufdd0\uffff": "\uFFFD\uFFFD\uFFFD", "\t": "\uFFFD",
	} {
		if got := cloudevent.SanitizeString(in); got != want {
			t.Errorf("SanitizeString(%q) = %q, want %q", in, got, want)
		}
	}
	for ct, want := range map[string]bool{
		"": true, "application/json": true, "Application/JSON; charset=utf-8": true, "text/json": true,
		"application/vnd.acme+json": false, "application/octet-stream": false, "application/json; =x": false,
	} {
		if got := cloudevent.JSONContentType(ct); got != want {
			t.Errorf("JSONContentType(%q) = %v", ct, got)
		}
	}
}

// FuzzDecode: Decode never panics on arbitrary bytes, and what it accepts
// survives the buffer form unchanged.
func FuzzDecode(f *testing.F) {
	full := fullEvent()
	f.Add(cloudevent.Encode(&full))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1},"x":true,"n":1.5}`))
	f.Add([]byte("\xce\x01\x01\x01\x01\x01\x00\x00\x00\x00\x00\x01\x01\x01\x01a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var e cloudevent.Event
		if err := cloudevent.Decode(b, &e); err != nil {
			return
		}
		var back cloudevent.Event
		if err := cloudevent.Decode(cloudevent.Encode(&e), &back); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normal(back), normal(e)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", back, e)
		}
	})
}

// normal makes events comparable: no empty slices.
func normal(e cloudevent.Event) cloudevent.Event {
	if len(e.Extensions) == 0 {
		e.Extensions = nil
	}
	if len(e.Data) == 0 {
		e.Data = nil
	}
	return e
}

var contentTypes = []string{"", "application/json", "text/json; charset=utf-8", "application/octet-stream",
	"text/plain", "image/png", "application/vnd.acme+json"}

// FuzzAppendJSON builds events from fuzz input and checks that what
// AppendJSON writes is a valid CloudEvent for the strict validator and
// reads back in sdk-go (and in Decode) as the same attributes, extensions
// and data.
func FuzzAppendJSON(f *testing.F) {
	f.Add("id-1", "devices/t1", "io.edgegate.device.telemetry", "t1", uint8(1), int64(1795000000), uint32(5), "",
		"Zone", "b\"<&>", int32(-1), true, []byte(`{"temperature":21.5}`), false, false)
	f.Add("\x00", "a:b/c d", " ", "\xff", uint8(5), int64(-1), uint32(1e9+1), "s",
		"replayed", "x", int32(1<<31-1), false, []byte{0, 0xff}, true, true)
	f.Add("x", "", "t", "", uint8(0), int64(0), uint32(0), "", "id", "", int32(0), false, []byte(`"str"`), false, false)
	f.Fuzz(func(t *testing.T, id, source, typ, subject string, ct uint8, sec int64, nsec uint32, schema,
		extName, extStr string, extInt int32, extBool bool, data []byte, binary, replayed bool) {
		e := cloudevent.Event{
			ID:              nonEmpty(cloudevent.SanitizeString(id)),
			Source:          "/" + url.PathEscape(cloudevent.SanitizeString(source)),
			Type:            nonEmpty(cloudevent.SanitizeString(typ)),
			Subject:         cloudevent.SanitizeString(subject),
			DataContentType: contentTypes[int(ct)%len(contentTypes)],
			Replayed:        replayed,
		}
		if strings.TrimSpace(e.Subject) == "" {
			e.Subject = "" // a subject given is non-empty
		}
		if sec != 0 || nsec != 0 {
			const maxSec = 253402300799 // 9999-12-31T23:59:59Z
			e.Time = time.Unix(((sec%maxSec)+maxSec)%maxSec, int64(nsec%1e9)).UTC()
		}
		if schema != "" {
			e.DataSchema = "https://example.com/" + url.PathEscape(cloudevent.SanitizeString(schema))
		}
		if name := cloudevent.ExtensionName(extName); name != "" && !cloudevent.Reserved(name) {
			e.SetExtension(name, cloudevent.String(cloudevent.SanitizeString(extStr)))
		}
		e.SetExtension("xint", cloudevent.Integer(extInt))
		e.SetExtension("xbool", cloudevent.Bool(extBool))
		if len(data) > 0 {
			e.Data = data
			e.DataBase64 = binary || !cloudevent.JSONContentType(e.DataContentType) || !json.Valid(data) || !utf8.Valid(data)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("built an invalid event: %v", err)
		}

		out := cloudevent.AppendJSON(nil, &e)
		ce, warns, err := ceconform.ValidateStructured(out)
		if err != nil || len(warns) > 0 {
			t.Fatalf("strict validator: %v %v\n%s", err, warns, out)
		}
		if e.DataBase64 && !bytes.Equal(ce.Data, e.Data) {
			t.Fatalf("validator's data %q, want %q", ce.Data, e.Data)
		}
		checkSameAsSDK(t, "sdk-go", &e, sdkParse(t, out))

		// Decode reads the JSON it writes (the `rules test` path).
		var back cloudevent.Event
		if err := cloudevent.Decode(out, &back); err != nil {
			t.Fatalf("Decode: %v\n%s", err, out)
		}
		want := e
		want.Extensions = slices.Clone(e.Extensions)
		if replayed {
			want.Replayed = false
			want.SetExtension(cloudevent.ExtReplayed, cloudevent.Bool(true))
		}
		slices.SortFunc(want.Extensions, func(a, b cloudevent.Extension) int { return strings.Compare(a.Name, b.Name) })
		if !want.DataBase64 && len(want.Data) > 0 { // the JSON value, without the space around it
			want.Data = bytes.TrimSpace(want.Data)
		}
		if !reflect.DeepEqual(normal(back), normal(want)) {
			t.Fatalf("Decode of the JSON:\n got %+v\nwant %+v", back, want)
		}
	})
}

func nonEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "x" + s
	}
	return s
}

// The strict validator keeps its own table of context attributes (it must
// not share code with what it checks); the two agree: a context attribute
// must be a string there, an extension may be a number.
func TestContextAttributesAgreeWithValidator(t *testing.T) {
	names := []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
		"datacontentencoding", "schemaurl", "mqtttopic", "replayed", "x"}
	for _, n := range names {
		b := []byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`)
		b = append(b[:len(b)-1], `,"`+n+`":7}`...)
		if n == "specversion" || n == "id" || n == "source" || n == "type" {
			b = []byte(strings.Replace(`{"specversion":"1.0","id":"1","source":"/s","type":"t"}`, `"`+n+`":"`, `"`+n+`":7,"was":"`, 1))
		}
		_, _, err := ceconform.ValidateStructured(b)
		if ctx := err != nil && strings.Contains(err.Error(), n+": "); ctx != cloudevent.IsContextAttribute(n) {
			t.Errorf("%s: validator says context attribute %v (%v), IsContextAttribute %v", n, ctx, err, !ctx)
		}
	}
}

// benchEvent is a mapped telemetry event as the buffer holds it.
func benchEvent(b *testing.B) cloudevent.Event {
	m, err := cloudevent.Compile(cloudevent.DefaultConfig(), "edge-01")
	if err != nil {
		b.Fatal(err)
	}
	e, err := m.Map(cloudevent.Message{Topic: "devices/th-01/telemetry", Payload: []byte(`{"temperature":21.5,"humidity":40}`), QoS: 1})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkAppendJSON: one event in the JSON format into a reused buffer,
// as a batch body is written.
func BenchmarkAppendJSON(b *testing.B) {
	e := benchEvent(b)
	e.Replayed = true
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = cloudevent.AppendJSON(buf[:0], &e)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecode: a stored record (buffer form) into a reused Event.
func BenchmarkDecode(b *testing.B) {
	e := benchEvent(b)
	rec := cloudevent.Encode(&e)
	var out cloudevent.Event
	b.ReportAllocs()
	for b.Loop() {
		if err := cloudevent.Decode(rec, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(rec)))
}

// BenchmarkDecodeLegacyJSON: a record the previous release stored (only
// read while such a buffer drains).
func BenchmarkDecodeLegacyJSON(b *testing.B) {
	e := benchEvent(b)
	rec := cloudevent.AppendJSON(nil, &e)
	var out cloudevent.Event
	b.ReportAllocs()
	for b.Loop() {
		if err := cloudevent.Decode(rec, &out); err != nil {
			b.Fatal(err)
		}
	}
}
