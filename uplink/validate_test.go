package uplink

// A strict CloudEvents 1.0 validator for test receivers. It checks requests
// in the HTTP binary binding, the structured JSON format and the JSON batch
// format, and returns each event as a ceView so tests can compare what
// arrived with what was sent.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ceView is one event as received, normalised for comparison.
type ceView struct {
	Mode        string            // binary, structured or batch
	Attrs       map[string]string // every context attribute except datacontenttype, as a string
	ContentType string            // datacontenttype ("" when absent)
	Data        []byte            // the data bytes (JSON data compacted)
	HasData     bool
}

var extNameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// knownJSONKeys are the attributes and members the JSON format defines.
var knownJSONKeys = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true,
	"subject": true, "time": true, "datacontenttype": true, "dataschema": true,
	"data": true, "data_base64": true,
}

// validateRequest checks one HTTP request body in whichever mode its
// Content-Type says and returns the events it carries.
func validateRequest(r *http.Request, body []byte) ([]ceView, error) {
	if r.Method != http.MethodPost {
		return nil, fmt.Errorf("method %s, want POST", r.Method)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/cloudevents-batch+json":
		if err := noCEHeaders(r.Header); err != nil {
			return nil, err
		}
		return validateBatchJSON(body)
	case "application/cloudevents+json":
		if err := noCEHeaders(r.Header); err != nil {
			return nil, err
		}
		v, err := validateStructuredJSON(body)
		if err != nil {
			return nil, err
		}
		v.Mode = "structured"
		return []ceView{v}, nil
	default:
		v, err := validateBinary(r.Header, body)
		if err != nil {
			return nil, err
		}
		return []ceView{v}, nil
	}
}

func noCEHeaders(h http.Header) error {
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "ce-") {
			return fmt.Errorf("structured/batch request carries binary header %s", k)
		}
	}
	return nil
}

// validateBinary checks a request in the HTTP binary binding.
func validateBinary(h http.Header, body []byte) (ceView, error) {
	v := ceView{Mode: "binary", Attrs: map[string]string{}}
	var errs []error
	for k, vals := range h {
		lk := strings.ToLower(k)
		if !strings.HasPrefix(lk, "ce-") {
			continue
		}
		name := lk[3:]
		if !extNameRE.MatchString(name) {
			errs = append(errs, fmt.Errorf("header %s: attribute name must be lowercase alphanumeric, 1-20 chars", k))
			continue
		}
		if len(vals) != 1 {
			errs = append(errs, fmt.Errorf("header %s: %d values, want 1", k, len(vals)))
			continue
		}
		if name == "datacontenttype" {
			errs = append(errs, errors.New("ce-datacontenttype must travel as Content-Type"))
			continue
		}
		for _, c := range []byte(vals[0]) {
			if c < 0x20 || c == 0x7f {
				errs = append(errs, fmt.Errorf("header %s: control character in value", k))
				break
			}
		}
		v.Attrs[name] = vals[0]
	}
	if sv := h.Get("Ce-Specversion"); sv != "1.0" {
		errs = append(errs, fmt.Errorf("ce-specversion %q, want \"1.0\"", sv))
	}
	for _, req := range []string{"id", "source", "type"} {
		if v.Attrs[req] == "" {
			errs = append(errs, fmt.Errorf("ce-%s missing or empty", req))
		}
	}
	if src, ok := v.Attrs["source"]; ok {
		if _, err := url.Parse(src); err != nil {
			errs = append(errs, fmt.Errorf("ce-source not a URI-reference: %v", err))
		}
	}
	if ts, ok := v.Attrs["time"]; ok {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			errs = append(errs, fmt.Errorf("ce-time not RFC 3339: %v", err))
		} else {
			v.Attrs["time"] = t.UTC().Format(time.RFC3339Nano)
		}
	}
	if ds, ok := v.Attrs["dataschema"]; ok {
		if u, err := url.Parse(ds); err != nil || !u.IsAbs() {
			errs = append(errs, fmt.Errorf("ce-dataschema %q not an absolute URI", ds))
		}
	}
	if ct := h.Values("Content-Type"); len(ct) > 1 {
		errs = append(errs, errors.New("several Content-Type headers"))
	}
	v.ContentType = h.Get("Content-Type")
	if strings.HasPrefix(v.ContentType, "application/cloudevents") {
		errs = append(errs, fmt.Errorf("binary request with format content type %q", v.ContentType))
	}
	if len(body) > 0 {
		if v.ContentType == "" {
			errs = append(errs, errors.New("body without Content-Type (datacontenttype)"))
		}
		v.HasData = true
		v.Data = body
		if isJSONType(v.ContentType) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, body); err != nil {
				errs = append(errs, fmt.Errorf("body is not JSON as Content-Type %q says: %v", v.ContentType, err))
			} else {
				v.Data = buf.Bytes()
			}
		}
	}
	return v, errors.Join(errs...)
}

// validateBatchJSON checks a JSON batch: an array of valid events.
func validateBatchJSON(body []byte) ([]ceView, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("batch body is not a JSON array: %w", err)
	}
	out := make([]ceView, 0, len(raw))
	var errs []error
	for i, r := range raw {
		v, err := validateStructuredJSON(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("batch[%d]: %w", i, err))
			continue
		}
		v.Mode = "batch"
		out = append(out, v)
	}
	return out, errors.Join(errs...)
}

// validateStructuredJSON checks one event in the CloudEvents JSON format.
func validateStructuredJSON(b []byte) (ceView, error) {
	v := ceView{Mode: "structured", Attrs: map[string]string{}}
	members, err := jsonObjectMembers(b)
	if err != nil {
		return v, err
	}
	var errs []error
	str := func(k string, required bool) (string, bool) {
		raw, ok := members[k]
		if !ok {
			if required {
				errs = append(errs, fmt.Errorf("%s: required", k))
			}
			return "", false
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			errs = append(errs, fmt.Errorf("%s: must be a string, got %s", k, raw))
			return "", false
		}
		if s == "" {
			errs = append(errs, fmt.Errorf("%s: must not be empty", k))
		}
		return s, true
	}
	if sv, ok := str("specversion", true); ok && sv != "1.0" {
		errs = append(errs, fmt.Errorf("specversion: %q, want \"1.0\"", sv))
	}
	for _, k := range []string{"specversion", "id", "source", "type"} {
		if s, ok := str(k, true); ok {
			v.Attrs[k] = s
		}
	}
	if s, ok := v.Attrs["source"]; ok {
		if _, err := url.Parse(s); err != nil {
			errs = append(errs, fmt.Errorf("source: not a URI-reference: %v", err))
		}
	}
	if s, ok := str("subject", false); ok {
		v.Attrs["subject"] = s
	}
	if s, ok := str("time", false); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("time: not RFC 3339: %v", err))
		} else {
			v.Attrs["time"] = t.UTC().Format(time.RFC3339Nano)
		}
	}
	if s, ok := str("dataschema", false); ok {
		if u, err := url.Parse(s); err != nil || !u.IsAbs() {
			errs = append(errs, fmt.Errorf("dataschema: %q not an absolute URI", s))
		}
		v.Attrs["dataschema"] = s
	}
	if s, ok := str("datacontenttype", false); ok {
		if _, _, err := mime.ParseMediaType(s); err != nil {
			errs = append(errs, fmt.Errorf("datacontenttype: %v", err))
		}
		v.ContentType = s
	}
	for k, raw := range members {
		if knownJSONKeys[k] {
			continue
		}
		if !extNameRE.MatchString(k) {
			errs = append(errs, fmt.Errorf("unknown member %q (not a valid extension name)", k))
			continue
		}
		var val any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&val); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", k, err))
			continue
		}
		switch x := val.(type) {
		case string:
			v.Attrs[k] = x
		case bool:
			v.Attrs[k] = fmt.Sprint(x)
		case json.Number:
			if _, err := x.Int64(); err != nil {
				errs = append(errs, fmt.Errorf("%s: extension numbers must be integers, got %s", k, x))
			}
			v.Attrs[k] = x.String()
		default:
			errs = append(errs, fmt.Errorf("%s: extension value must be a string, integer or boolean, got %s", k, raw))
		}
	}

	data, hasData := members["data"]
	data64, hasData64 := members["data_base64"]
	switch {
	case hasData && hasData64:
		errs = append(errs, errors.New("data and data_base64 are mutually exclusive"))
	case hasData64:
		var s string
		if err := json.Unmarshal(data64, &s); err != nil {
			errs = append(errs, fmt.Errorf("data_base64: must be a string: %v", err))
			break
		}
		dec, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("data_base64: invalid base64: %v", err))
			break
		}
		v.HasData, v.Data = true, dec
	case hasData:
		v.HasData = true
		if isJSONType(v.ContentType) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, data); err != nil {
				errs = append(errs, fmt.Errorf("data: %v", err))
			}
			v.Data = buf.Bytes()
		} else {
			var s string
			if err := json.Unmarshal(data, &s); err != nil {
				errs = append(errs, fmt.Errorf("data: non-JSON datacontenttype %q needs a string, got %s", v.ContentType, data))
			}
			v.Data = []byte(s)
		}
	}
	return v, errors.Join(errs...)
}

// jsonObjectMembers splits a JSON object into its members, rejecting
// anything else, duplicate keys and trailing data.
func jsonObjectMembers(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not a JSON object (starts with %v)", tok)
	}
	members := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("bad JSON: %w", err)
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("member %q: %w", key, err)
		}
		if _, dup := members[key]; dup {
			return nil, fmt.Errorf("duplicate member %q", key)
		}
		if string(raw) == "null" {
			return nil, fmt.Errorf("member %q is null", key)
		}
		members[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after the object")
	}
	return members, nil
}

// isJSONType reports whether a datacontenttype carries JSON data; an absent
// one means JSON in the JSON format.
func isJSONType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// sameEvent compares a received view with the view of the record that was
// sent (which must itself be valid) and describes the first difference.
func sameEvent(got ceView, record []byte) error {
	want, err := validateStructuredJSON(record)
	if err != nil {
		return fmt.Errorf("sent record is invalid: %w", err)
	}
	if got.Mode == "binary" && want.ContentType == "" && want.HasData && isJSONType("") {
		want.ContentType = "application/json" // implied by the JSON format
	}
	if got.ContentType != want.ContentType {
		return fmt.Errorf("datacontenttype %q, want %q", got.ContentType, want.ContentType)
	}
	keys := map[string]bool{}
	for k := range got.Attrs {
		keys[k] = true
	}
	for k := range want.Attrs {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if got.Attrs[k] != want.Attrs[k] {
			return fmt.Errorf("attribute %s = %q, want %q", k, got.Attrs[k], want.Attrs[k])
		}
	}
	if got.HasData != want.HasData || !bytes.Equal(got.Data, want.Data) {
		return fmt.Errorf("data %q, want %q", got.Data, want.Data)
	}
	return nil
}
