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

	bytes     *metrics.Gauge
	records   *metrics.Gauge
	diskFree  *metrics.Gauge
	diskFloor *metrics.Gauge

	reserveReleases *metrics.Counter

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
		bytes:           s.GetOrCreateGauge(`edgegate_buffer_bytes`, nil),
		records:         s.GetOrCreateGauge(`edgegate_buffer_records`, nil),
		diskFree:        s.GetOrCreateGauge(`edgegate_buffer_disk_free_bytes`, nil),
		diskFloor:       s.GetOrCreateGauge(`edgegate_buffer_disk_floor_bytes`, nil),
		reserveReleases: s.GetOrCreateCounter(`edgegate_buffer_disk_reserve_released_total`),
		commitRecords:   s.GetOrCreateHistogram(`edgegate_buffer_commit_records`),
		commitSeconds:   s.GetOrCreateHistogram(`edgegate_buffer_commit_duration_seconds`),
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
