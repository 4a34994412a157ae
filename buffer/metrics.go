package buffer

import (
	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/internal/metricname"
)

const (
	reasonOverflow = "overflow"  // drop_oldest made room for new records
	reasonExpired  = "expired"   // older than max_age
	reasonDiskFull = "disk_full" // dropped by the disk guard
)

type bufMetrics struct {
	set *metrics.Set

	appended        *metrics.Counter
	acked           *metrics.Counter
	droppedOverflow *metrics.Counter
	droppedExpired  *metrics.Counter
	droppedDiskFull *metrics.Counter
	rejectedFull    *metrics.Counter
	rejectedDisk    *metrics.Counter

	// Retained (delivered) records removed: by age, or to make room.
	retainedExpired  *metrics.Counter
	retainedOverflow *metrics.Counter
	retainedDiskFull *metrics.Counter

	bytes    *metrics.Gauge
	records  *metrics.Gauge
	diskFree *metrics.Gauge

	commitRecords *metrics.Histogram
	commitSeconds *metrics.Histogram
}

func newMetrics(s *metrics.Set) *bufMetrics {
	return &bufMetrics{
		set:             s,
		appended:        s.GetOrCreateCounter(`edgegate_buffer_appended_total`),
		acked:           s.GetOrCreateCounter(`edgegate_buffer_acked_total`),
		droppedOverflow: s.GetOrCreateCounter(metricname.With("edgegate_buffer_dropped_total", "reason", reasonOverflow)),
		droppedExpired:  s.GetOrCreateCounter(metricname.With("edgegate_buffer_dropped_total", "reason", reasonExpired)),
		droppedDiskFull: s.GetOrCreateCounter(metricname.With("edgegate_buffer_dropped_total", "reason", reasonDiskFull)),
		rejectedFull:    s.GetOrCreateCounter(`edgegate_buffer_rejected_total{reason="full"}`),
		rejectedDisk:    s.GetOrCreateCounter(`edgegate_buffer_rejected_total{reason="disk_full"}`),

		retainedExpired:  s.GetOrCreateCounter(metricname.With("edgegate_buffer_retained_removed_total", "reason", reasonExpired)),
		retainedOverflow: s.GetOrCreateCounter(metricname.With("edgegate_buffer_retained_removed_total", "reason", reasonOverflow)),
		retainedDiskFull: s.GetOrCreateCounter(metricname.With("edgegate_buffer_retained_removed_total", "reason", reasonDiskFull)),
		bytes:            s.GetOrCreateGauge(`edgegate_buffer_bytes`, nil),
		records:          s.GetOrCreateGauge(`edgegate_buffer_records`, nil),
		diskFree:         s.GetOrCreateGauge(`edgegate_buffer_disk_free_bytes`, nil),
		commitRecords:    s.GetOrCreateHistogram(`edgegate_buffer_commit_records`),
		commitSeconds:    s.GetOrCreateHistogram(`edgegate_buffer_commit_duration_seconds`),
	}
}

func (m *bufMetrics) dropped(reason string) *metrics.Counter {
	switch reason {
	case reasonExpired:
		return m.droppedExpired
	case reasonDiskFull:
		return m.droppedDiskFull
	default:
		return m.droppedOverflow
	}
}

// retainedRemoved is the counter of retained records removed for reason
// (delivered records: not data loss, unlike dropped).
func (m *bufMetrics) retainedRemoved(reason string) *metrics.Counter {
	switch reason {
	case reasonExpired:
		return m.retainedExpired
	case reasonDiskFull:
		return m.retainedDiskFull
	default:
		return m.retainedOverflow
	}
}
