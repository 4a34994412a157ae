package uplink

import (
	"errors"
	"strings"
	"testing"
)

func TestSetExtensions(t *testing.T) {
	rec := testRecords(t, 3, 1)[2] // data_base64
	err := &Error{Err: errors.New("post https://x: 400 Bad Request: " + strings.Repeat("é", 400)), StatusCode: 400}
	ext := failureExtensions(err, 3, "cloud")
	ext[ExtReplayed] = true
	out, e := SetExtensions(rec, ext)
	if e != nil {
		t.Fatal(e)
	}
	v := validStructured(t, out)
	orig := validStructured(t, rec)
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
	for _, bad := range []map[string]any{
		{"Bad": "x"}, {"id": "x"}, {"toolongextensionname1": "x"}, {"n": 1 << 40}, {"f": 1.5}, {"m": map[string]int{}},
	} {
		if _, err := SetExtensions(rec, bad); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
	for _, bad := range []string{``, `null`, `[1]`, `{"a":`} {
		if _, err := SetExtensions([]byte(bad), ext); err == nil {
			t.Errorf("accepted record %q", bad)
		}
	}
}
