package uplink

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// Extension attributes Delivery sets on records it replays or
// dead-letters. Names follow the CloudEvents rules (lowercase a-z0-9, at
// most 20 characters).
const (
	// ExtReplayed (true) marks an event sent after an outage; its time
	// attribute keeps the original time.
	ExtReplayed = "replayed"
	// ExtError is the text of the failure that dead-lettered an event.
	ExtError = "edgegateerror"
	// ExtErrorCode is the HTTP status of that failure (absent if none).
	ExtErrorCode = "edgegateerrorcode"
	// ExtErrorDest is the name of the uplink that refused the event.
	ExtErrorDest = "edgegateerrordest"
	// ExtAttempts is the number of delivery attempts made.
	ExtAttempts = "edgegateattempts"
)

// maxErrorExt bounds the error text put into ExtError.
const maxErrorExt = 512

// The two places Delivery changes a record: markReplayed and markFailed.

// markReplayed returns record with replayed=true; ok is false when record
// is not a JSON object (the sender then reports it as poison).
func markReplayed(record []byte) (marked []byte, ok bool) {
	marked, err := SetExtensions(record, map[string]any{ExtReplayed: true})
	return marked, err == nil
}

// markFailed returns record with the failure that dead-letters it as
// extension attributes, or record as it was when it is not a JSON object
// (kept rather than lost).
func markFailed(record []byte, err error, attempts int, uplinkName string) []byte {
	marked, e := SetExtensions(record, failureExtensions(err, attempts, uplinkName))
	if e != nil {
		return record
	}
	return marked
}

// failureExtensions returns the extension attributes a dead-lettered event
// carries: ExtError, ExtErrorCode (when the failure had an HTTP status),
// ExtErrorDest and ExtAttempts.
func failureExtensions(err error, attempts int, uplinkName string) map[string]any {
	ext := map[string]any{ExtErrorDest: uplinkName, ExtAttempts: attempts}
	if err != nil {
		msg := err.Error()
		if len(msg) > maxErrorExt {
			msg = msg[:maxErrorExt]
			for !utf8.ValidString(msg) {
				msg = msg[:len(msg)-1]
			}
			msg += "…"
		}
		ext[ExtError] = msg
		var ue *Error
		if errors.As(err, &ue) && ue.StatusCode != 0 {
			ext[ExtErrorCode] = ue.StatusCode
		}
	}
	return ext
}

// coreAttrs are the JSON members an extension must not replace.
var coreAttrs = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

// SetExtensions returns a copy of record (a CloudEvent in the JSON format)
// with the given extension attributes set, replacing any of the same name.
// Values must be strings, bools or integers in the CloudEvents Integer range
// (32 bit). Every other member, time included, is kept as it was (member
// order may change). It does no I/O and never panics on input.
func SetExtensions(record []byte, ext map[string]any) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(record, &m); err != nil || m == nil {
		return nil, errNotObject
	}
	for name, v := range ext {
		if !validExtName(name) || coreAttrs[name] {
			return nil, fmt.Errorf("extension %q: not a valid extension name", name)
		}
		var raw []byte
		var err error
		switch x := v.(type) {
		case string, bool:
			raw, err = json.Marshal(x)
		case int:
			if x < math.MinInt32 || x > math.MaxInt32 {
				return nil, fmt.Errorf("extension %s: %d out of the 32-bit Integer range", name, x)
			}
			raw, err = json.Marshal(x)
		case int64:
			if x < math.MinInt32 || x > math.MaxInt32 {
				return nil, fmt.Errorf("extension %s: %d out of the 32-bit Integer range", name, x)
			}
			raw, err = json.Marshal(x)
		default:
			return nil, fmt.Errorf("extension %s: unsupported value type %T", name, v)
		}
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", name, err)
		}
		m[name] = raw
	}
	return json.Marshal(m)
}

func validExtName(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
