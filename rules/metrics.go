package rules

import (
	"io"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/internal/metricname"
)

// WritePrometheus writes each rule's counters in the Prometheus text format:
//
//	edgegate_rule_evaluations_total{rule="overheat"}
//	edgegate_rule_matches_total{rule="overheat"}
//	edgegate_rule_errors_total{rule="overheat"}
//	edgegate_rule_seconds_total{rule="overheat"}   (sampled, see RuleStats)
//
// The gateway registers it once with metrics.Set.RegisterMetricsWriter,
// writing the current Set's stats, so reloads need no unregistering.
func (s *Set) WritePrometheus(w io.Writer) {
	for _, st := range s.Stats() {
		metrics.WriteCounterUint64(w, metricname.With("edgegate_rule_evaluations_total", "rule", st.Name), st.Evaluations)
		metrics.WriteCounterUint64(w, metricname.With("edgegate_rule_matches_total", "rule", st.Name), st.Matches)
		metrics.WriteCounterUint64(w, metricname.With("edgegate_rule_errors_total", "rule", st.Name), st.Errors)
		metrics.WriteCounterFloat64(w, metricname.With("edgegate_rule_seconds_total", "rule", st.Name), st.Time.Seconds())
	}
}
