package ceconform

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
)

// Content modes of the HTTP binding, as found in Event.Mode.
const (
	ModeBinary     = "binary"
	ModeStructured = "structured"
	ModeBatch      = "batch"
)

// Media types of the JSON event format and JSON batch format.
const (
	MediaTypeJSON      = "application/cloudevents+json"
	MediaTypeBatchJSON = "application/cloudevents-batch+json"
)

// Event is one CloudEvent as received.
type Event struct {
	// Mode is ModeBinary, ModeStructured or ModeBatch.
	Mode string
	// Attrs holds every context attribute present (specversion, id, source,
	// type, subject, time, datacontenttype, dataschema and extensions) in
	// its canonical string representation (spec.md "Type System"): binary
	// headers percent-decoded, JSON integers as their digits, booleans as
	// "true"/"false". That form is the same in every mode, so events that
	// crossed different modes compare equal. Unset (null) attributes are
	// absent. In binary mode datacontenttype is the Content-Type header.
	Attrs map[string]string
	// Data is the event data: the body in binary mode; in the JSON format
	// the compacted JSON value when the data is JSON (datacontenttype
	// absent, */json or */*+json), the string's contents otherwise, or the
	// decoded data_base64.
	Data []byte
	// HasData is false when the event carries no data (empty binary body,
	// no data or data_base64 member).
	HasData bool
	// DataBase64 reports that the data came as data_base64 (JSON format).
	DataBase64 bool
	// Err holds this event's MUST violations (a *Violations, lines without
	// the "batch[i]: " prefix), or nil when the event is valid. It lets a
	// caller count invalid events in a batch.
	Err error
}

// Violations lists MUST violations, one line each as "where: what".
type Violations struct {
	Problems []string
}

// Error returns the problems, one per line.
func (v *Violations) Error() string { return strings.Join(v.Problems, "\n") }

// checker collects findings.
type checker struct {
	errs, warns []string
}

func (c *checker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

func (c *checker) warnf(format string, args ...any) {
	c.warns = append(c.warns, fmt.Sprintf(format, args...))
}

// merge adds another checker's findings with a location prefix.
func (c *checker) merge(prefix string, o *checker) {
	for _, e := range o.errs {
		c.errs = append(c.errs, prefix+e)
	}
	for _, w := range o.warns {
		c.warns = append(c.warns, prefix+w)
	}
}

func (c *checker) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &Violations{Problems: slices.Clone(c.errs)}
}

// ValidateRequest reads r's body, undoing Content-Encoding gzip, and
// validates the request with Validate. It puts the decoded body back into
// r.Body (and drops the Content-Encoding header), so the request can be
// decoded again afterwards, by sdk-go for instance.
//
// It returns the events found (even invalid ones, as far as they could be
// read), the SHOULD violations, and a *Violations holding every MUST
// violation, or nil. A body that cannot be read or decompressed is reported
// as another error.
func ValidateRequest(r *http.Request) ([]Event, []string, error) {
	if r.Body == nil {
		r.Body = http.NoBody
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("read body: %w", err)
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("gzip body: %w", err)
		}
		r.Header.Del("Content-Encoding")
	default:
		return nil, nil, fmt.Errorf("Content-Encoding %q: unsupported (want gzip or none)", enc)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return Validate(r.Header, body)
}

// ModeOf returns the content mode a message's Content-Type selects
// (binding section 3): ModeBatch for application/cloudevents-batch…,
// ModeStructured for application/cloudevents…, ModeBinary otherwise.
func ModeOf(h http.Header) string {
	mt := strings.ToLower(strings.TrimSpace(strings.SplitN(h.Get("Content-Type"), ";", 2)[0]))
	switch {
	case strings.HasPrefix(mt, "application/cloudevents-batch"):
		return ModeBatch
	case strings.HasPrefix(mt, "application/cloudevents"):
		return ModeStructured
	}
	return ModeBinary
}

// Validate checks one HTTP message of the CloudEvents HTTP binding given
// its header and its (already decoded) body. The content mode follows the
// Content-Type as the binding says: a value starting with
// application/cloudevents-batch is batched mode, application/cloudevents
// structured mode, anything else binary mode. Only the JSON formats are
// supported. Content-Encoding is ignored.
//
// Results are as for ValidateRequest. A binary-mode message without any
// ce- header is not a CloudEvent: no event, and an error.
func Validate(h http.Header, body []byte) ([]Event, []string, error) {
	var c checker
	var events []Event
	cts := h.Values("Content-Type")
	if len(cts) > 1 {
		c.errorf("Content-Type: sent %d times", len(cts))
	}
	ct := h.Get("Content-Type")
	switch ModeOf(h) {
	case ModeBatch:
		if checkFormatContentType(&c, ct, MediaTypeBatchJSON) {
			ceHeadersInBatch(&c, h)
			events = validateBatch(&c, body)
		}
	case ModeStructured:
		if checkFormatContentType(&c, ct, MediaTypeJSON) {
			var ec checker
			e := validateJSON(&ec, body, ModeStructured)
			ceHeadersInStructured(&ec, h, e)
			e.Err = ec.err()
			c.merge("", &ec)
			events = []Event{e}
		}
	default:
		if e, ok := validateBinary(&c, h, body); ok {
			events = []Event{e}
		}
	}
	return events, c.warns, c.err()
}

// ValidateStructured checks one event in the JSON event format (a
// structured-mode body, a record, an MQTT payload) and returns it with its
// SHOULD violations and a *Violations, or nil.
func ValidateStructured(b []byte) (Event, []string, error) {
	var c checker
	e := validateJSON(&c, b, ModeStructured)
	e.Err = c.err()
	return e, c.warns, e.Err
}

// checkFormatContentType checks the Content-Type of a structured or batched
// message; want is the only format media type supported. It reports whether
// the body is worth reading.
func checkFormatContentType(c *checker, ct, want string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil {
		err = checkMediaType(ct)
	}
	if err != nil {
		c.errorf("Content-Type: %q is not a media type: %v", ct, err)
		return false
	}
	if mt != want {
		c.errorf("Content-Type: event format %q is not supported (want %s)", mt, want)
		return false
	}
	for k, v := range params {
		if k == "charset" {
			if !strings.EqualFold(v, "utf-8") {
				c.errorf("Content-Type: charset %q, JSON must be UTF-8", v)
			}
			continue
		}
		c.warnf("Content-Type: unknown parameter %q", k)
	}
	return true
}

// validateBatch checks a JSON batch body: an array, possibly empty, of
// events in the JSON format.
func validateBatch(c *checker, body []byte) []Event {
	if !utf8Valid(c, "body", body) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		c.errorf("body: not JSON: %v", err)
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		c.errorf("body: a batch must be a JSON array, got %s", describeToken(tok))
		return nil
	}
	var events []Event
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			c.errorf("body: batch[%d]: bad JSON: %v", i, err)
			return events
		}
		var ec checker
		e := validateJSON(&ec, raw, ModeBatch)
		e.Err = ec.err()
		c.merge(fmt.Sprintf("batch[%d]: ", i), &ec)
		events = append(events, e)
	}
	if _, err := dec.Token(); err != nil {
		c.errorf("body: bad JSON after batch[%d]: %v", len(events)-1, err)
		return events
	}
	if _, err := dec.Token(); err != io.EOF {
		c.errorf("body: trailing data after the batch array")
	}
	return events
}

// ceHeadersInBatch warns about ce- headers on a batch: the binding gives
// them no meaning there.
func ceHeadersInBatch(c *checker, h http.Header) {
	for _, k := range sortedKeys(h) {
		if isCEHeader(k) {
			c.warnf("header %s: binary-mode header on a batch, where it belongs to no event", strings.ToLower(k))
		}
	}
}

// ceHeadersInStructured checks ce- headers on a structured message. They
// MAY be present (binding 3.2.3), but every attribute MUST be in the
// payload too, so each must match an attribute of e.
func ceHeadersInStructured(c *checker, h http.Header, e Event) {
	for _, k := range sortedKeys(h) {
		if !isCEHeader(k) {
			continue
		}
		hn := strings.ToLower(k)
		name := hn[3:]
		v, ok := headerValue(c, hn, h[k])
		if !ok {
			continue
		}
		got, present := e.Attrs[name]
		switch {
		case !present:
			c.errorf("header %s: attribute %s is not in the payload (all attributes MUST be)", hn, name)
		case got != v && !(name == "time" && sameInstant(got, v)):
			c.errorf("header %s: %q, but the payload has %q", hn, v, got)
		}
	}
}

// sortedKeys returns h's keys in order, for stable reports.
func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func isCEHeader(k string) bool {
	return len(k) >= 3 && strings.EqualFold(k[:3], "ce-")
}

// headerValue checks that a ce- header was sent once and decodes it.
func headerValue(c *checker, hn string, vals []string) (string, bool) {
	if len(vals) != 1 {
		c.errorf("header %s: sent %d times, an attribute has one value", hn, len(vals))
		return "", false
	}
	v, errs, warns := decodeHeaderValue(vals[0])
	for _, w := range warns {
		c.warnf("header %s: %s", hn, w)
	}
	if len(errs) > 0 {
		c.errorf("header %s: %s", hn, strings.Join(errs, "; "))
		return "", false
	}
	return v, true
}

// validateBinary checks a binary-mode message. ok is false when it is not
// a CloudEvent at all (no ce- header).
func validateBinary(c *checker, h http.Header, body []byte) (e Event, ok bool) {
	e = Event{Mode: ModeBinary, Attrs: map[string]string{}}
	var ec checker
	seen := false
	for _, k := range sortedKeys(h) {
		if !isCEHeader(k) {
			continue
		}
		seen = true
		hn := strings.ToLower(k)
		name := hn[3:]
		if !validName(name) {
			ec.errorf("header %s: %q is not a valid attribute name (MUST be lower-case a-z and 0-9)", hn, name)
			continue
		}
		if len(name) > 20 {
			ec.warnf("header %s: attribute name longer than 20 characters (SHOULD NOT)", hn)
		}
		if name == "datacontenttype" {
			ec.errorf("header %s: MUST NOT be present; datacontenttype travels as Content-Type", hn)
			continue
		}
		v, ok := headerValue(&ec, hn, h[k])
		if !ok {
			e.Attrs[name] = "" // present, undecodable: do not also report it missing
			continue
		}
		e.Attrs[name] = v
		checkAttr(&ec, "header "+hn, name, v)
	}
	if !seen {
		c.errorf("not a CloudEvent: no ce- headers (binary mode), and Content-Type %q is not %s or %s",
			h.Get("Content-Type"), MediaTypeJSON, MediaTypeBatchJSON)
		return e, false
	}
	for _, req := range []string{"specversion", "id", "source", "type"} {
		if _, ok := e.Attrs[req]; !ok {
			ec.errorf("header ce-%s: required", req)
		}
	}
	ct := h.Get("Content-Type")
	if ct != "" {
		e.Attrs["datacontenttype"] = ct
		checkAttr(&ec, "Content-Type", "datacontenttype", ct)
	}
	if len(body) > 0 {
		e.HasData, e.Data = true, body
		if ct == "" {
			ec.warnf("body: no Content-Type (HTTP: a message with content SHOULD have one; it is the datacontenttype)")
		} else if isJSONType(ct) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, body); err != nil {
				ec.errorf("body: not JSON although Content-Type %q says so: %v", ct, err)
			} else {
				e.Data = buf.Bytes()
			}
		}
	}
	e.Err = ec.err()
	c.merge("", &ec)
	return e, true
}

// knownAttrs are the context attributes spec.md defines, all strings.
var knownAttrs = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true,
	"subject": true, "time": true, "datacontenttype": true, "dataschema": true,
}

// validateJSON checks one event in the JSON format.
func validateJSON(c *checker, b []byte, mode string) Event {
	e := Event{Mode: mode, Attrs: map[string]string{}}
	if !utf8Valid(c, "event", b) {
		return e
	}
	members, order, err := jsonObjectMembers(c, b)
	if err != nil {
		c.errorf("%v", err)
		return e
	}
	for _, k := range order {
		if k != "data" && k != "data_base64" {
			jsonAttr(c, &e, k, members[k])
		}
	}
	for _, req := range []string{"specversion", "id", "source", "type"} {
		if _, ok := members[req]; !ok {
			c.errorf("%s: required", req)
		}
	}
	jsonData(c, &e, members)
	return e
}

// jsonAttr checks one context attribute or extension member of a JSON
// event and records its value.
func jsonAttr(c *checker, e *Event, k string, raw json.RawMessage) {
	if knownAttrs[k] {
		s, err := jsonString(raw)
		if err != nil {
			c.errorf("%s: %v", k, err)
			return
		}
		e.Attrs[k] = s
		checkAttr(c, k, k, s)
		return
	}
	if !validName(k) {
		c.errorf("member %q: not a valid attribute name (MUST be lower-case a-z and 0-9)", k)
		return
	}
	if len(k) > 20 {
		c.warnf("%s: attribute name longer than 20 characters (SHOULD NOT)", k)
	}
	s, err := extensionValue(raw)
	if err != nil {
		c.errorf("%s: %v", k, err)
		return
	}
	e.Attrs[k] = s
	if raw[0] == '"' {
		checkString(c, k, s)
	}
}

// jsonData checks data and data_base64 of a JSON event against each other
// and datacontenttype, and records the data.
func jsonData(c *checker, e *Event, members map[string]json.RawMessage) {
	ct, hasCT := e.Attrs["datacontenttype"]
	data, hasData := members["data"]
	data64, hasData64 := members["data_base64"]
	switch {
	case hasData && hasData64:
		c.errorf("data, data_base64: mutually exclusive, both present")
	case hasData64:
		s, err := jsonString(data64)
		if err != nil {
			c.errorf("data_base64: %v", err)
			break
		}
		d, err := decodeBase64(s)
		if err != nil {
			c.errorf("data_base64: not base64 (RFC 4648): %v", err)
			break
		}
		e.HasData, e.Data, e.DataBase64 = true, d, true
	case hasData:
		e.HasData = true
		if !hasCT || isJSONType(ct) {
			var buf bytes.Buffer
			_ = json.Compact(&buf, data) // valid: the decoder accepted it
			e.Data = buf.Bytes()
			// A JSON string is a JSON value too: whether it holds an encoded
			// document (json-format 3.1.1 forbids that) cannot be told.
			break
		}
		s, err := jsonString(data)
		if err != nil {
			c.errorf("data: datacontenttype %q is not JSON, so data MUST be a string: %v", ct, err)
			break
		}
		e.Data = []byte(s)
	}
}

// describeToken names a JSON token for an error message.
func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			return "an object"
		}
		return string(t)
	case string:
		return "a string"
	case nil:
		return "null"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

// jsonObjectMembers splits a JSON object into its non-null members (null
// means unset, json-format 2.2), rejecting anything else, duplicate names
// and trailing data. order lists the names sorted.
func jsonObjectMembers(c *checker, b []byte) (map[string]json.RawMessage, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("event: not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("event: not a JSON object, got %s", describeToken(tok))
	}
	members := map[string]json.RawMessage{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("event: bad JSON: %v", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("member %q: bad JSON: %v", key, err)
		}
		if seen[key] {
			// RFC 8259 says names SHOULD be unique, but a CloudEvent with two
			// values for one attribute means different things to different
			// receivers: treat it as invalid.
			return nil, nil, fmt.Errorf("member %q: duplicate", key)
		}
		seen[key] = true
		if string(raw) == "null" && key != "data" {
			continue
		}
		members[key] = raw
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("event: bad JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("event: trailing data after the object")
	}
	order := make([]string, 0, len(members))
	for k := range members {
		order = append(order, k)
	}
	slices.Sort(order)
	return members, order, nil
}

// validName reports whether s is a valid attribute name (spec.md "Attribute
// Naming Convention": MUST be lower-case ASCII letters or digits).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// isJSONType reports whether a datacontenttype declares JSON data: its
// media type is */json or */*+json (json-format 3.1.1).
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	_, sub, ok := strings.Cut(mt, "/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}
