package rules

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var jsonSeeds = []string{
	`{"dev":"d-042","seq":1234,"sent_ns":1764640000000000000,"temperature":21.5}`,
	` [1, -0, 0.5e-3, 1E+2, true, false, null, "", {}, []] `,
	`{"a":{"b":[{"c":"\u00e9\ud83d\ude00\n\t\"\\\/"}]},"a":2}`,
	`"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, `"\ud83d\ude00x"`, `"\ud800\u00"`, `"\ud800\uZZZZ"`,
	"\"\xff\xfe ok \xc3\xa9\"", "\"\xed\xa0\x80\"",
	`1e400`, `-1e400`, `1e-400`, `01`, `1.`, `.5`, `-`, `+1`, `1e`, `tru`, `nul`, `[1,]`, `{"a":1,}`, `{"a" 1}`, `{1:2}`,
	`"a` + "\x01" + `"`, `"\x"`, `"\u12"`, `[1] x`, ``, `   `, `{"a":[`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

// decodeJSON gives what json.Unmarshal into an `any` gives, and fails
// where it fails.
func TestDecodeJSONLikeEncodingJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkDecodeJSON(t, []byte(s))
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkDecodeJSON)
}

func checkDecodeJSON(t *testing.T, b []byte) {
	var want any
	wantErr := json.Unmarshal(b, &want)
	got, err := decodeJSON(b)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%.200q: error %v, encoding/json: %v", b, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%.200q: %#v, encoding/json: %#v", b, got, want)
	}
}

// BenchmarkDecodeJSON: a telemetry event's JSON data decoded for the rules.
func BenchmarkDecodeJSON(b *testing.B) {
	data := []byte(jsonSeeds[0])
	b.Run("decodeJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v any
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
