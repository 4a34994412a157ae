package metricname

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

func TestWith(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels []string
		want   string
	}{
		{"up", nil, `up`},
		{"up", []string{"uplink", "cloud"}, `up{uplink="cloud"}`},
		{"req_total", []string{"uplink", "m1", "code", "503"}, `req_total{uplink="m1",code="503"}`},
		{"q", []string{"queue", `a\b`}, `q{queue="a\\b"}`},
		{"q", []string{"queue", `say "hi"`}, `q{queue="say \"hi\""}`},
		{"q", []string{"queue", "two\nlines"}, `q{queue="two\nlines"}`},
		{"q", []string{"queue", `\"` + "\n"}, `q{queue="\\\"\n"}`},
		// UTF-8 and other characters are written as they are, not as the
		// Go escapes %q writes (\t, \r, \u00a0, \x00).
		{"q", []string{"queue", "café ☕"}, `q{queue="café ☕"}`},
		{"q", []string{"queue", "a\tb\rc\u00a0\x00"}, "q{queue=\"a\tb\rc\u00a0\x00\"}"},
		{"q", []string{"queue", ""}, `q{queue=""}`},
		// The text format is UTF-8: an invalid byte becomes U+FFFD.
		{"q", []string{"queue", "a\xffb"}, `q{queue="a` + "\uFFFD" + `b"}`},
	} {
		if got := With(tc.name, tc.labels...); got != tc.want {
			t.Errorf("With(%q, %q) = %q, want %q", tc.name, tc.labels, got, tc.want)
		}
	}
}

// What With builds is a name VictoriaMetrics/metrics accepts, and the
// exposition carries the value escaped, one metric per line.
func TestWithRegisters(t *testing.T) {
	set := metrics.NewSet()
	name := With("edgegate_test_total", "queue", "a\\b \"c\"\nd é", "code", "200")
	set.NewCounter(name).Inc()
	var out bytes.Buffer
	set.WritePrometheus(&out)
	want := `edgegate_test_total{queue="a\\b \"c\"\nd é",code="200"} 1` + "\n"
	if out.String() != want {
		t.Errorf("exposition = %q, want %q", out.String(), want)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Errorf("a newline in a label value split the line: %q", out.String())
	}
}

func TestWithOddLabels(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("With with an odd number of label strings did not panic")
		}
	}()
	With("x", "uplink")
}

func ExampleWith() {
	fmt.Println(With("edgegate_uplink_requests_total", "uplink", "cloud", "code", "200"))
	fmt.Println(With("edgegate_buffer_queue_records", "queue", `say "hi"`))
	// Output:
	// edgegate_uplink_requests_total{uplink="cloud",code="200"}
	// edgegate_buffer_queue_records{queue="say \"hi\""}
}
