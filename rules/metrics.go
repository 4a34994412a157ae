package rules

import (
	"io"
	"strconv"

	"github.com/VictoriaMetrics/metrics"
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
		label := `{rule=` + strconv.Quote(st.Name) + `}`
		metrics.WriteCounterUint64(w, "edgegate_rule_evaluations_total"+label, st.Evaluations)
		metrics.WriteCounterUint64(w, "edgegate_rule_matches_total"+label, st.Matches)
		metrics.WriteCounterUint64(w, "edgegate_rule_errors_total"+label, st.Errors)
		metrics.WriteCounterFloat64(w, "edgegate_rule_seconds_total"+label, st.Time.Seconds())
	}
}
