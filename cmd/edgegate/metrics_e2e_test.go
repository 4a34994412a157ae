package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/edgegate/edgegate/gateway"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// parseMetrics parses an exposition with Prometheus' own text parser
// (prometheus/common/expfmt, a test-only dependency: what Prometheus
// itself runs on a scrape is the judge, not a parser of ours).
func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus' text parser refuses /metrics: %v\n%s", err, text)
	}
	return mfs
}

// histogramQuantile is PromQL's histogram_quantile over one histogram's
// cumulative buckets: it finds the bucket holding rank q*count and
// interpolates linearly inside it (the lowest bucket starts at 0; a rank
// in the +Inf bucket gives the highest finite bound).
func histogramQuantile(q float64, h *dto.Histogram) float64 {
	count := float64(h.GetSampleCount())
	if count == 0 {
		return math.NaN()
	}
	bs := slices.Clone(h.GetBucket())
	sort.Slice(bs, func(i, j int) bool { return bs[i].GetUpperBound() < bs[j].GetUpperBound() })
	rank := q * count
	lower, below := 0.0, 0.0
	for _, b := range bs {
		upper, cum := b.GetUpperBound(), float64(b.GetCumulativeCount())
		if cum >= rank {
			if math.IsInf(upper, 1) {
				return lower
			}
			if cum == below {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/(cum-below)
		}
		lower, below = upper, cum
	}
	return lower // rank in the implicit +Inf bucket
}

func TestHistogramQuantile(t *testing.T) {
	h := &dto.Histogram{SampleCount: new(uint64(100)), Bucket: []*dto.Bucket{
		{UpperBound: new(0.1), CumulativeCount: new(uint64(50))},
		{UpperBound: new(0.5), CumulativeCount: new(uint64(90))},
		{UpperBound: new(1.0), CumulativeCount: new(uint64(100))},
		{UpperBound: new(math.Inf(1)), CumulativeCount: new(uint64(100))},
	}}
	for _, tc := range []struct{ q, want float64 }{{0.25, 0.05}, {0.5, 0.1}, {0.7, 0.3}, {0.95, 0.75}, {1, 1}} {
		if got := histogramQuantile(tc.q, h); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("histogramQuantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

// /metrics through the real binary, after traffic, is what Prometheus can
// use: Prometheus' parser reads it, every family has a HELP text and a
// TYPE, the go_ and process_ collectors are there, latency histograms have
// le buckets, +Inf, _sum and _count, and histogram_quantile over them gives
// plausible values. Every metric the shipped Grafana dashboard queries is
// in it, so the dashboard cannot drift from the names.
func TestMetricsPrometheusE2E(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, `rules:
  rules:
    - name: hot
      when: data.t > 20
      actions:
        - set: {data.hot: "true"}
`...)
	if err := os.WriteFile(e.config, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()

	const n = 200
	c := mqtttest.Connect(t, "tcp://"+e.mqtt, "dev-1")
	defer c.Disconnect(50)
	for i := range n {
		mqtttest.Publish(t, c, "devices/dev-1/telemetry", 1, fmt.Sprintf(`{"t":%d}`, i%40))
	}
	deadline := time.Now().Add(30 * time.Second)
	for d, _ := s.Counts(); d < n; d, _ = s.Counts() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered; log:\n%s", d, n, p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The delivery counters move once the uplink acked; wait for the ack
	// of the last batch to be counted.
	var text string
	var mfs map[string]*dto.MetricFamily
	for {
		text = adminMetrics(t, e.admin)
		mfs = parseMetrics(t, text)
		if h := histogramOf(mfs, "edgegate_event_delivery_latency_seconds", "uplink", "cloud"); h.GetSampleCount() >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	typed := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ := strings.Cut(f, " ")
			if typed[name] {
				t.Errorf("family %s has two TYPE lines", name)
			}
			typed[name] = true
		}
	}
	for name, mf := range mfs {
		if !typed[name] {
			t.Errorf("family %s has no TYPE line", name)
		}
		if strings.TrimSpace(mf.GetHelp()) == "" {
			t.Errorf("family %s has no HELP text", name)
		}
	}
	for _, want := range []string{"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
		"go_goroutines", "go_memstats_heap_inuse_bytes", "edgegate_build_info", "edgegate_mqtt_clients_connected",
		"edgegate_rule_matches_total"} {
		if mfs[want] == nil {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	for _, tc := range []struct {
		family   string
		labels   []string
		min, max float64 // plausible range of p50 and p99
	}{
		{"edgegate_uplink_request_duration_seconds", []string{"uplink", "cloud"}, 0, 5},
		{"edgegate_event_delivery_latency_seconds", []string{"uplink", "cloud"}, 0, 30},
		{"edgegate_buffer_commit_duration_seconds", nil, 0, 5},
	} {
		mf := mfs[tc.family]
		if mf.GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("%s: type %v, want histogram", tc.family, mf.GetType())
			continue
		}
		for _, line := range []string{`_bucket\{(.*,)?le="\+Inf"\}`, `_bucket\{(.*,)?le="0.01"\}`, `_sum(\{.*\})?`, `_count(\{.*\})?`} {
			if !regexp.MustCompile(`(?m)^` + tc.family + line + ` \d`).MatchString(text) {
				t.Errorf("%s: no %s line in /metrics", tc.family, tc.family+line)
			}
		}
		h := histogramOf(mfs, tc.family, tc.labels...)
		if h.GetSampleCount() == 0 {
			t.Errorf("%s: no observations after %d events", tc.family, n)
			continue
		}
		p50, p99 := histogramQuantile(0.5, h), histogramQuantile(0.99, h)
		t.Logf("%s: count %d, p50 %.4fs, p99 %.4fs, mean %.4fs", tc.family, h.GetSampleCount(), p50, p99, h.GetSampleSum()/float64(h.GetSampleCount()))
		if !(p50 > tc.min && p50 <= p99 && p99 < tc.max) {
			t.Errorf("%s: p50 %v, p99 %v: want %v < p50 <= p99 < %v", tc.family, p50, p99, tc.min, tc.max)
		}
	}

	checkDashboard(t, "../../configs/grafana-dashboard.json", mfs)
	checkReadmeMetrics(t, "../../README.md", mfs)
}

// readmeMetric is a row of the README's metrics table.
var readmeMetric = regexp.MustCompile("(?m)^\\| `(edgegate_[a-z0-9_]+)` \\| (counter|gauge|histogram) \\|")

// checkReadmeMetrics checks the README's metrics table: every edgegate
// family of mfs is listed with its type, and the table lists exactly the
// families that have a HELP text (gateway.MetricsHelp), so it names none
// that the code does not create.
func checkReadmeMetrics(t *testing.T, path string, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, m := range readmeMetric.FindAllStringSubmatch(string(b), -1) {
		listed[m[1]] = m[2]
	}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "edgegate_") {
			continue
		}
		typ, ok := listed[name]
		if !ok {
			t.Errorf("%s: %s is not in the metrics table", path, name)
			continue
		}
		if want := strings.ToLower(mf.GetType().String()); typ != want {
			t.Errorf("%s: %s is listed as a %s, /metrics says %s", path, name, typ, want)
		}
	}
	help := gateway.MetricsHelp()
	for name := range listed {
		if _, ok := help[name]; !ok {
			t.Errorf("%s lists %s, which no package creates (no HELP text)", path, name)
		}
	}
	for name := range help {
		if _, ok := listed[name]; !ok {
			t.Errorf("%s: %s is not in the metrics table", path, name)
		}
	}
}

// histogramOf returns the histogram of family whose labels include the
// given name, value pairs; nil if none.
func histogramOf(mfs map[string]*dto.MetricFamily, family string, labels ...string) *dto.Histogram {
next:
	for _, m := range mfs[family].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		return m.GetHistogram()
	}
	return nil
}

// metricRef matches a metric name in PromQL: edgegate_, go_ or process_.
var metricRef = regexp.MustCompile(`\b(?:edgegate|go|process)_[a-zA-Z0-9_]+`)

// checkDashboard checks that every PromQL expression of the dashboard at
// path parses (with VictoriaMetrics/metricsql, a test-only dependency: a
// PromQL parser far lighter than Prometheus' own; MetricsQL is a superset,
// so this catches syntax errors, not every non-PromQL construct) and that
// every metric it queries is a series name of mfs (histograms as _bucket,
// _sum and _count).
func checkDashboard(t *testing.T, path string, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	names := map[string]bool{}
	for name, mf := range mfs {
		names[name] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	exprs := dashboardExprs(t, path)
	if len(exprs) < 10 {
		t.Fatalf("%s: %d PromQL expressions, want a dashboard of at least 10", path, len(exprs))
	}
	for _, ex := range exprs {
		// Grafana's variables, as Grafana would fill them in.
		q := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*").Replace(ex)
		if _, err := metricsql.Parse(q); err != nil {
			t.Errorf("%s: %q does not parse: %v", path, ex, err)
		}
		refs := metricRef.FindAllString(ex, -1)
		if len(refs) == 0 {
			t.Errorf("%s: %q names no metric", path, ex)
		}
		for _, r := range refs {
			if !names[r] {
				t.Errorf("%s: %q queries %s, which /metrics does not have", path, ex, r)
			}
		}
	}
}

// dashboardExprs returns every PromQL expression ("expr") of the Grafana
// dashboard at path.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}
