package rules

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/edgegate/edgegate/cloudevent"
)

// FromRecord converts an event record for Evaluate: JSON data is decoded,
// numbers as float64 (integers beyond 2^53 lose precision: keep them as
// strings); other data stays bytes (a copy). Extension values become
// string, bool or int32.
func FromRecord(e *cloudevent.Event) Event {
	out := Event{
		ID:              e.ID,
		Source:          e.Source,
		Type:            e.Type,
		Subject:         e.Subject,
		Time:            e.Time,
		DataContentType: e.DataContentType,
	}
	if len(e.Extensions) > 0 {
		out.Extensions = make(map[string]any, len(e.Extensions))
		for _, x := range e.Extensions {
			out.Extensions[x.Name] = x.Value.Any()
		}
	}
	if len(e.Data) == 0 {
		return out
	}
	if !e.DataBase64 && isJSON(out.DataContentType) {
		if v, err := decodeJSON(e.Data); err == nil {
			out.Data = v
			return out
		}
	}
	out.Data = bytes.Clone(e.Data)
	return out
}

func isJSON(ct string) bool { return cloudevent.JSONContentType(ct) }

// Record converts e back to an event record: []byte data travels as
// data_base64, anything else as JSON. Id, type, subject and content type
// are trimmed of white space; the source must parse as a URI reference and
// is kept as net/url writes it. Extension values that CloudEvents cannot
// carry become strings: fractional numbers, objects, arrays and null as
// their JSON text, times in RFC 3339, bytes in base64. Integers outside
// the 32-bit range and other values are an error, as are a missing id,
// source or type. Extensions are in name order.
func (e Event) Record() (cloudevent.Event, error) {
	out := cloudevent.Event{
		ID:              strings.TrimSpace(e.ID),
		Type:            strings.TrimSpace(e.Type),
		Subject:         strings.TrimSpace(e.Subject),
		Time:            e.Time,
		DataContentType: strings.TrimSpace(e.DataContentType),
	}
	src, err := url.Parse(e.Source)
	if err != nil {
		return out, fmt.Errorf("source: %w", err)
	}
	out.Source = src.String()
	names := make([]string, 0, len(e.Extensions))
	for k := range e.Extensions {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		v, err := extValue(e.Extensions[k])
		if err != nil {
			return out, fmt.Errorf("extension %s: %w", k, err)
		}
		out.SetExtension(k, v)
	}
	switch d := e.Data.(type) {
	case nil:
	case []byte:
		if out.DataContentType == "" {
			out.DataContentType = "application/octet-stream"
		}
		if len(d) > 0 {
			out.Data, out.DataBase64 = d, true
		}
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return out, fmt.Errorf("data: %w", err)
		}
		if !isJSON(out.DataContentType) || out.DataContentType == "" {
			out.DataContentType = "application/json"
		}
		out.Data = b
	}
	if err := out.Validate(); err != nil {
		return out, err
	}
	return out, nil
}

// extValue converts an extension value as the rules left it to a
// CloudEvents value.
func extValue(v any) (cloudevent.Value, error) {
	switch x := v.(type) {
	case string:
		return cloudevent.String(x), nil
	case bool:
		return cloudevent.Bool(x), nil
	case int32:
		return cloudevent.Integer(x), nil
	case int, int8, int16, int64:
		n := reflect.ValueOf(x).Int()
		if n < math.MinInt32 || n > math.MaxInt32 {
			return cloudevent.Value{}, fmt.Errorf("%d out of the 32-bit Integer range", n)
		}
		return cloudevent.Integer(int32(n)), nil
	case uint, uint8, uint16, uint32, uint64, uintptr:
		u := reflect.ValueOf(x).Uint()
		if u > math.MaxInt32 {
			return cloudevent.Value{}, fmt.Errorf("%d out of the 32-bit Integer range", u)
		}
		return cloudevent.Integer(int32(u)), nil
	case float32:
		if x < math.MinInt32 || x > math.MaxInt32 {
			return cloudevent.Value{}, fmt.Errorf("%v out of the 32-bit Integer range", x)
		}
		return cloudevent.Integer(int32(x)), nil
	case float64:
		if x == math.Trunc(x) && x >= math.MinInt32 && x <= math.MaxInt32 {
			return cloudevent.Integer(int32(x)), nil
		}
		return cloudevent.String(fmt.Sprint(x)), nil
	case map[string]any, []any, nil:
		b, _ := json.Marshal(x)
		return cloudevent.String(string(b)), nil
	case time.Time:
		return cloudevent.String(x.UTC().Format(time.RFC3339Nano)), nil
	case []byte:
		return cloudevent.String(base64.StdEncoding.EncodeToString(x)), nil
	}
	return cloudevent.Value{}, fmt.Errorf("%T is not a CloudEvents value", v)
}
