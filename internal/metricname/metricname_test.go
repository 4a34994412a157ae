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

func TestFillHelp(t *testing.T) {
	help := map[string]string{
		"a_total": "Things counted.",
		"b":       `Back\slash and` + "\nnewline.",
	}
	src := "# HELP a_total\n# TYPE a_total counter\na_total 1\n" +
		"# HELP b\n# TYPE b gauge\nb 2\n" +
		"# HELP c\n# TYPE c gauge\nc 3\n" +
		"# HELP d Has its own text.\nd 4"
	want := "# HELP a_total Things counted.\n# TYPE a_total counter\na_total 1\n" +
		"# HELP b Back\\\\slash and\\nnewline.\n# TYPE b gauge\nb 2\n" +
		"# HELP c\n# TYPE c gauge\nc 3\n" +
		"# HELP d Has its own text.\nd 4"
	var out bytes.Buffer
	if err := FillHelp(&out, []byte(src), func(f string) string { return help[f] }); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Errorf("FillHelp:\n%s\nwant:\n%s", out.String(), want)
	}
}

// With metadata exposed, VictoriaMetrics/metrics writes a bare HELP line
// per family, and FillHelp gives it its text.
func TestFillHelpVictoriaMetrics(t *testing.T) {
	metrics.ExposeMetadata(true)
	defer metrics.ExposeMetadata(false)
	set := metrics.NewSet()
	set.NewCounter(With("edgegate_x_total", "uplink", "a")).Inc()
	set.NewCounter(With("edgegate_x_total", "uplink", "b"))
	set.NewPrometheusHistogramExt("edgegate_y_seconds", []float64{1})
	var raw, out bytes.Buffer
	set.WritePrometheus(&raw)
	FillHelp(&out, raw.Bytes(), func(f string) string { return "Help of " + f + "." })
	for _, want := range []string{
		"# HELP edgegate_x_total Help of edgegate_x_total.\n# TYPE edgegate_x_total counter\n",
		"# HELP edgegate_y_seconds Help of edgegate_y_seconds.\n# TYPE edgegate_y_seconds histogram\n",
		`edgegate_y_seconds_bucket{le="+Inf"} 0` + "\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("exposition lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(out.String(), "# HELP edgegate_x_total"); n != 1 {
		t.Errorf("%d HELP lines for edgegate_x_total, want 1:\n%s", n, out.String())
	}
}
