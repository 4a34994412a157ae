package rules

import (
	"fmt"
	"io"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/internal/metricname"
)

// MetricsHelp returns the HELP text of every metric family rules writes,
// by family name. The gateway writes them into /metrics.
func MetricsHelp() map[string]string {
	return map[string]string{
		"edgegate_rule_evaluations_total": "Events the rule looked at.",
		"edgegate_rule_matches_total":     "Events for which the rule's condition held.",
		"edgegate_rule_errors_total":      "Runtime errors of the rule's condition or actions.",
		"edgegate_rule_seconds_total":     "Time spent in the rule, estimated from 1 evaluation in 16.",
	}
}

// WritePrometheus writes each rule's counters in the Prometheus text format,
// one family after the other (the format wants a family's samples
// together, under one HELP and TYPE when metadata is exposed):
//
//	edgegate_rule_evaluations_total{rule="overheat"}
//	edgegate_rule_matches_total{rule="overheat"}
//	edgegate_rule_errors_total{rule="overheat"}
//	edgegate_rule_seconds_total{rule="overheat"}   (sampled, see RuleStats)
//
// The gateway registers it once with metrics.Set.RegisterMetricsWriter,
// writing the current Set's stats, so reloads need no unregistering.
func (s *Set) WritePrometheus(w io.Writer) {
	stats := s.Stats()
	if len(stats) == 0 {
		return
	}
	for _, f := range []struct {
		family string
		value  func(RuleStats) any
	}{
		{"edgegate_rule_evaluations_total", func(st RuleStats) any { return st.Evaluations }},
		{"edgegate_rule_matches_total", func(st RuleStats) any { return st.Matches }},
		{"edgegate_rule_errors_total", func(st RuleStats) any { return st.Errors }},
		{"edgegate_rule_seconds_total", func(st RuleStats) any { return st.Time.Seconds() }},
	} {
		metrics.WriteMetadataIfNeeded(w, f.family, "counter")
		for _, st := range stats {
			fmt.Fprintf(w, "%s %v\n", metricname.With(f.family, "rule", st.Name), f.value(st))
		}
	}
}
