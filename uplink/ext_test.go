package uplink

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMarkFailed(t *testing.T) {
	rec := testRecords(t, 3, 1)[2] // data_base64
	orig := validStructured(t, recordJSON(rec))
	rec.Replayed = true // it was sent as replayed
	err := &Error{Err: errors.New("post https://x: 400 Bad Request: " + strings.Repeat("é", 400) + "\n"), StatusCode: 400}
	markFailed(rec, err, 3, "cloud")
	rec.Replayed = false // the buffer does not store the flag: the extension stays
	v := validStructured(t, recordJSON(rec))
	for k, want := range orig.Attrs {
		if v.Attrs[k] != want {
			t.Errorf("%s changed: %q → %q", k, want, v.Attrs[k])
		}
	}
	if string(v.Data) != string(orig.Data) {
		t.Error("data changed")
	}
	if v.Attrs[ExtErrorCode] != "400" || v.Attrs[ExtAttempts] != "3" || v.Attrs[ExtErrorDest] != "cloud" ||
		v.Attrs[ExtReplayed] != "true" || !strings.HasPrefix(v.Attrs[ExtError], "post https://x: 400") {
		t.Errorf("extensions: %v", v.Attrs)
	}
	if msg := v.Attrs[ExtError]; !utf8.ValidString(msg) || !strings.HasSuffix(msg, "…") || len(msg) > maxErrorExt+len("…") {
		t.Errorf("error text not cut at %d bytes on a rune boundary: %q", maxErrorExt, msg)
	}

	// No HTTP status: no error code.
	rec = testRecords(t, 1, 1)[0]
	markFailed(rec, errors.New("connection refused\x00"), 1, "cloud")
	v = validStructured(t, recordJSON(rec))
	if _, ok := v.Attrs[ExtErrorCode]; ok || v.Attrs[ExtError] != "connection refused\uFFFD" || v.Attrs[ExtReplayed] != "" {
		t.Errorf("extensions: %v", v.Attrs)
	}
}

// ForReplay removes what markFailed added and marks the event replayed; a
// new failure is then recorded as if it were the first.
func TestForReplay(t *testing.T) {
	rec := testRecords(t, 1, 1)[0]
	orig := validStructured(t, recordJSON(rec))
	markFailed(rec, &Error{Err: errors.New("400 Bad Request"), StatusCode: 400}, 5, "cloud")
	ForReplay(rec)
	v := validStructured(t, recordJSON(rec))
	for k, want := range orig.Attrs {
		if v.Attrs[k] != want {
			t.Errorf("%s changed: %q → %q", k, want, v.Attrs[k])
		}
	}
	for _, k := range []string{ExtError, ExtErrorCode, ExtErrorDest, ExtAttempts} {
		if _, ok := v.Attrs[k]; ok {
			t.Errorf("%s kept: %v", k, v.Attrs)
		}
	}
	if v.Attrs[ExtReplayed] != "true" {
		t.Errorf("replayed = %q, want true", v.Attrs[ExtReplayed])
	}
	markFailed(rec, errors.New("connection refused"), 1, "backup")
	v = validStructured(t, recordJSON(rec))
	if v.Attrs[ExtError] != "connection refused" || v.Attrs[ExtAttempts] != "1" || v.Attrs[ExtErrorDest] != "backup" {
		t.Errorf("second failure: %v", v.Attrs)
	}
	if _, ok := v.Attrs[ExtErrorCode]; ok {
		t.Errorf("the first failure's code stayed: %v", v.Attrs)
	}
}
