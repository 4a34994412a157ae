package gateway

import (
	"strings"
	"testing"
)

// Every family has one owner of its HELP text, and every text is short
// and a sentence.
func TestMetricsHelpOneOwner(t *testing.T) {
	owner := map[string]int{}
	for i, h := range append(packagesHelp(), gatewayHelp()) {
		for family, text := range h {
			if j, dup := owner[family]; dup {
				t.Errorf("%s has HELP texts in two tables (%d and %d)", family, j, i)
			}
			owner[family] = i
			if !strings.HasPrefix(family, "edgegate_") {
				t.Errorf("%s: not an edgegate_ family", family)
			}
			if text == "" || len(text) > 140 || !strings.HasSuffix(text, ".") {
				t.Errorf("%s: HELP %q: want one short sentence", family, text)
			}
		}
	}
	if len(MetricsHelp()) != len(owner) {
		t.Errorf("MetricsHelp has %d families, the tables %d", len(MetricsHelp()), len(owner))
	}
	for _, f := range []string{"go_goroutines", "process_resident_memory_bytes", "go_memstats_frees_total", "process_io_read_bytes_total"} {
		if helpOf()(f) == "" {
			t.Errorf("%s has no HELP text", f)
		}
	}
}
