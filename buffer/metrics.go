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

	appended     *metrics.Counter
	acked        *metrics.Counter
	rejectedFull *metrics.Counter
	rejectedDisk *metrics.Counter

	// Records removed to make room or by age: undelivered ones (lost)
	// and retained ones (delivered: not data loss).
	dropped  byReason
	retained byReason

	bytes    *metrics.Gauge
	records  *metrics.Gauge
	diskFree *metrics.Gauge

	commitRecords *metrics.Histogram
	commitSeconds *metrics.Histogram
}

func newMetrics(s *metrics.Set) *bufMetrics {
	return &bufMetrics{
		set:          s,
		appended:     s.GetOrCreateCounter(`edgegate_buffer_appended_total`),
		acked:        s.GetOrCreateCounter(`edgegate_buffer_acked_total`),
		dropped:      newByReason(s, "edgegate_buffer_dropped_total"),
		retained:     newByReason(s, "edgegate_buffer_retained_removed_total"),
		rejectedFull: s.GetOrCreateCounter(`edgegate_buffer_rejected_total{reason="full"}`),
		rejectedDisk: s.GetOrCreateCounter(`edgegate_buffer_rejected_total{reason="disk_full"}`),

		bytes:         s.GetOrCreateGauge(`edgegate_buffer_bytes`, nil),
		records:       s.GetOrCreateGauge(`edgegate_buffer_records`, nil),
		diskFree:      s.GetOrCreateGauge(`edgegate_buffer_disk_free_bytes`, nil),
		commitRecords: s.GetOrCreateHistogram(`edgegate_buffer_commit_records`),
		commitSeconds: s.GetOrCreateHistogram(`edgegate_buffer_commit_duration_seconds`),
	}
}

// byReason is one counter per reason records are removed.
type byReason struct{ overflow, expired, diskFull *metrics.Counter }

func newByReason(s *metrics.Set, name string) byReason {
	return byReason{
		overflow: s.GetOrCreateCounter(metricname.With(name, "reason", reasonOverflow)),
		expired:  s.GetOrCreateCounter(metricname.With(name, "reason", reasonExpired)),
		diskFull: s.GetOrCreateCounter(metricname.With(name, "reason", reasonDiskFull)),
	}
}

func (c byReason) of(reason string) *metrics.Counter {
	switch reason {
	case reasonExpired:
		return c.expired
	case reasonDiskFull:
		return c.diskFull
	default:
		return c.overflow
	}
}
