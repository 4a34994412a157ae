package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"mime"

	"github.com/cloudevents/sdk-go/v2/event"
)

// FromCloudEvent converts an sdk-go event for Evaluate: JSON data (not
// data_base64, JSON content type or none) is decoded, numbers as float64
// (integers beyond 2^53 lose precision: keep them as strings); other data
// stays bytes. The extension map is shared, not copied (rules never modify
// it in place).
func FromCloudEvent(e event.Event) Event {
	out := Event{
		ID:              e.ID(),
		Source:          e.Source(),
		Type:            e.Type(),
		Subject:         e.Subject(),
		Time:            e.Time(),
		DataContentType: e.DataContentType(),
		Extensions:      e.Extensions(),
	}
	if len(e.DataEncoded) == 0 {
		return out
	}
	if !e.DataBase64 && isJSON(out.DataContentType) {
		var v any
		if err := json.Unmarshal(e.DataEncoded, &v); err == nil {
			out.Data = v
			return out
		}
	}
	out.Data = bytes.Clone(e.DataEncoded)
	return out
}

func isJSON(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || mt == "text/json")
}

// CloudEvent converts e back to an sdk-go event: []byte data travels as
// data_base64, anything else as JSON. Extension values that CloudEvents
// cannot carry (fractional numbers, objects) become strings.
func (e Event) CloudEvent() (event.Event, error) {
	ce := event.New()
	ce.SetID(e.ID)
	ce.SetSource(e.Source)
	ce.SetType(e.Type)
	if e.Subject != "" {
		ce.SetSubject(e.Subject)
	}
	if !e.Time.IsZero() {
		ce.SetTime(e.Time)
	}
	for k, v := range e.Extensions {
		ce.SetExtension(k, extValue(v))
	}
	switch d := e.Data.(type) {
	case nil:
		if e.DataContentType != "" {
			ce.SetDataContentType(e.DataContentType)
		}
	case []byte:
		ct := e.DataContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		if err := ce.SetData(ct, d); err != nil {
			return ce, fmt.Errorf("data: %w", err)
		}
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return ce, fmt.Errorf("data: %w", err)
		}
		ct := e.DataContentType
		if !isJSON(ct) || ct == "" {
			ct = event.ApplicationJSON
		}
		ce.SetDataContentType(ct)
		ce.DataEncoded = b
		ce.DataBase64 = false
	}
	if err := ce.Validate(); err != nil {
		return ce, err
	}
	return ce, nil
}

func extValue(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && x >= math.MinInt32 && x <= math.MaxInt32 {
			return int32(x)
		}
		return fmt.Sprint(x)
	case map[string]any, []any, nil:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return v
}
