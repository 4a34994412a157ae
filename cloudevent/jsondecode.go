package cloudevent

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// decodeJSON reads a CloudEvent in the JSON format (specversion 1.0) the
// way the senders read stored records before the buffer form existed
// (sdk-go's reader): extension names are lower-cased, a number becomes an
// Integer (truncated; out of the 32-bit range is an error), null leaves an
// attribute out, and data under a content type that is not JSON is a
// string. It is off the hot path: records in this form exist only in
// buffers written by earlier releases.
func decodeJSON(b []byte, e *Event) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return fmt.Errorf("%w: neither a buffer record nor a JSON object", ErrCorrupt)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: cloudevent: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	sv, ok, err := jsonString(m["specversion"])
	switch {
	case err != nil:
		return fail("specversion: %v", err)
	case !ok:
		return fail("specversion: required")
	case sv != SpecVersion:
		return fail("specversion %q, want %q", sv, SpecVersion)
	}
	*e = Event{Extensions: e.Extensions[:0]}
	for _, a := range [...]struct {
		name string
		dst  *string
	}{
		{"id", &e.ID}, {"source", &e.Source}, {"type", &e.Type}, {"subject", &e.Subject},
		{"datacontenttype", &e.DataContentType}, {"dataschema", &e.DataSchema},
	} {
		if *a.dst, _, err = jsonString(m[a.name]); err != nil {
			return fail("%s: %v", a.name, err)
		}
	}
	if s, ok, err := jsonString(m["time"]); err != nil {
		return fail("time: %v", err)
	} else if ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fail("time: %v", err)
		}
		e.Time = t.UTC()
	}
	if err := decodeJSONData(m, e); err != nil {
		return fail("%v", err)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		switch k {
		case "specversion", "id", "source", "type", "subject", "datacontenttype", "dataschema", "time", "data", "data_base64":
			continue
		}
		names = append(names, k)
	}
	slices.Sort(names) // the order sdk-go wrote them in
	for _, k := range names {
		name := strings.ToLower(k)
		if !lowerAlnum(name) { // sdk-go sets no length limit
			return fail("member %q: not an attribute name", k)
		}
		v, ok, err := jsonExtValue(m[k])
		if err != nil {
			return fail("extension %s: %v", name, err)
		}
		if ok {
			e.SetExtension(name, v)
		}
	}
	return nil
}

// decodeJSONData reads the data or data_base64 member.
func decodeJSONData(m map[string]json.RawMessage, e *Event) error {
	data, hasData := m["data"]
	d64, hasD64 := m["data_base64"]
	if hasData && string(data) == "null" {
		hasData = false
	}
	if hasD64 && string(d64) == "null" {
		hasD64 = false
	}
	switch {
	case hasData && hasD64:
		return fmt.Errorf("data and data_base64 both present")
	case hasD64:
		s, _, err := jsonString(d64)
		if err != nil {
			return fmt.Errorf("data_base64: %v", err)
		}
		if e.Data, err = base64.StdEncoding.DecodeString(s); err != nil {
			return fmt.Errorf("data_base64: %v", err)
		}
		e.DataBase64 = true
	case hasData:
		if !JSONContentType(e.DataContentType) {
			// Not JSON: the data is the text of a string.
			s, _, err := jsonString(data)
			if err != nil {
				return fmt.Errorf("data: datacontenttype %q is not JSON, so data must be a string: %v", e.DataContentType, err)
			}
			e.Data, e.DataBase64 = []byte(s), true
			break
		}
		e.Data = data
	}
	if len(e.Data) == 0 {
		e.Data = nil
	}
	return nil
}

// jsonString reads a JSON string; null or absent is ok=false.
func jsonString(raw json.RawMessage) (s string, ok bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	if raw[0] != '"' {
		return "", false, fmt.Errorf("not a string")
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, err
	}
	return s, true, nil
}

// jsonExtValue reads an extension value; null is ok=false.
func jsonExtValue(raw json.RawMessage) (Value, bool, error) {
	switch {
	case string(raw) == "null":
		return Value{}, false, nil
	case string(raw) == "true":
		return Bool(true), true, nil
	case string(raw) == "false":
		return Bool(false), true, nil
	case raw[0] == '"':
		s, _, err := jsonString(raw)
		return String(s), err == nil, err
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f < math.MinInt32 || f > math.MaxInt32 {
			return Value{}, false, fmt.Errorf("%s is not a 32-bit Integer", raw)
		}
		return Integer(int32(f)), true, nil
	}
	return Value{}, false, fmt.Errorf("an object or array is not a CloudEvents value")
}
