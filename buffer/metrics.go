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

// MetricsHelp returns the HELP text of every metric family buffer creates,
// by family name. The gateway writes them into /metrics.
func MetricsHelp() map[string]string {
	return map[string]string{
		"edgegate_buffer_appended_total":              "Records appended to the buffer (fsynced before the device's ack).",
		"edgegate_buffer_acked_total":                 "Records removed from the buffer because their uplink acknowledged them.",
		"edgegate_buffer_dropped_total":               "Undelivered records removed by reason: overflow (drop_oldest), expired (max_age), disk_full.",
		"edgegate_buffer_retained_removed_total":      "Delivered records of buffer.retain removed by reason (not data loss).",
		"edgegate_buffer_rejected_total":              "Records refused by reason: full (max_bytes, policy reject) or disk_full (min_free_bytes).",
		"edgegate_buffer_bytes":                       "Bytes of records the buffer holds, counted against max_bytes.",
		"edgegate_buffer_records":                     "Records the buffer holds.",
		"edgegate_buffer_disk_free_bytes":             "Free bytes on the buffer's file system at the last check.",
		"edgegate_buffer_disk_floor_bytes":            "Free bytes below which the buffer stops accepting (min_free_bytes).",
		"edgegate_buffer_disk_reserve_released_total": "Times the disk reserve file was released because free space fell below the floor.",
		"edgegate_buffer_damaged":                     "1 once the running buffer met a damaged table (new events are refused until `edgegate buffer repair`), else 0.",
		"edgegate_buffer_commit_records":              "Records per group commit (one fsync).",
		"edgegate_buffer_commit_duration_seconds":     "Time of one group commit, fsync included.",
		"edgegate_buffer_queue_records":               "Records waiting in a queue (an uplink's backlog, dead letters, retained history).",
		"edgegate_buffer_queue_bytes":                 "Bytes of the records waiting in a queue.",
		"edgegate_clock_jumps_total":                  "Steps of the wall clock beyond 2s (against the monotonic clock), by direction.",
	}
}

// commitRecordsBuckets are the upper bounds of
// edgegate_buffer_commit_records: one record to a full round
// (maxRoundRecords).
func commitRecordsBuckets() []float64 {
	return []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, maxRoundRecords}
}

// commitSecondsBuckets are the upper bounds, in seconds, of
// edgegate_buffer_commit_duration_seconds: an SSD's fsync (0.1 ms) to an
// SD card's worst (seconds).
func commitSecondsBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
}

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

	bytes     *metrics.Gauge
	records   *metrics.Gauge
	diskFree  *metrics.Gauge
	diskFloor *metrics.Gauge

	reserveReleases *metrics.Counter
	damaged         *metrics.Gauge

	clockForward, clockBack *metrics.Counter

	commitRecords *metrics.PrometheusHistogram
	commitSeconds *metrics.PrometheusHistogram
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

		bytes:           s.GetOrCreateGauge(`edgegate_buffer_bytes`, nil),
		records:         s.GetOrCreateGauge(`edgegate_buffer_records`, nil),
		diskFree:        s.GetOrCreateGauge(`edgegate_buffer_disk_free_bytes`, nil),
		diskFloor:       s.GetOrCreateGauge(`edgegate_buffer_disk_floor_bytes`, nil),
		reserveReleases: s.GetOrCreateCounter(`edgegate_buffer_disk_reserve_released_total`),
		damaged:         s.GetOrCreateGauge(`edgegate_buffer_damaged`, nil),
		clockForward:    s.GetOrCreateCounter(`edgegate_clock_jumps_total{direction="forward"}`),
		clockBack:       s.GetOrCreateCounter(`edgegate_clock_jumps_total{direction="backward"}`),
		commitRecords:   s.GetOrCreatePrometheusHistogramExt(`edgegate_buffer_commit_records`, commitRecordsBuckets()),
		commitSeconds:   s.GetOrCreatePrometheusHistogramExt(`edgegate_buffer_commit_duration_seconds`, commitSecondsBuckets()),
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
