package gateway

import (
	"bytes"
	"net/http"
	"runtime"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/configchannel"
	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/rules"
	"github.com/edgegate/edgegate/uplink"
)

// MetricsHelp returns the HELP text of every edgegate metric family, by
// family name: the gateway's own (here) and those of the packages that
// create the rest (buffer, configchannel, mqtt, rules and uplink, each its
// MetricsHelp).
func MetricsHelp() map[string]string {
	help := gatewayHelp()
	for _, h := range packagesHelp() {
		for k, v := range h {
			help[k] = v
		}
	}
	return help
}

// packagesHelp returns the HELP texts of the packages the gateway wires.
func packagesHelp() []map[string]string {
	return []map[string]string{buffer.MetricsHelp(), configchannel.MetricsHelp(), mqtt.MetricsHelp(), rules.MetricsHelp(), uplink.MetricsHelp()}
}

// gatewayHelp returns the HELP text of every family the gateway itself
// creates.
func gatewayHelp() map[string]string {
	return map[string]string{
		"edgegate_build_info":                         "Always 1; labels name the gateway's version and the Go version that built it.",
		"edgegate_admin_auth_failures_total":          "Admin API requests refused for their bearer token, by reason.",
		"edgegate_admin_auth_throttled_total":         "Admin API requests refused because their client failed authentication too often.",
		"edgegate_config_applies_total":               "Configuration applies by source (file, sighup, admin, pull, mqtt, rollback) and result.",
		"edgegate_config_reload_failures_total":       "Configuration reloads that failed (the running configuration was kept).",
		"edgegate_config_last_reload_successful":      "1 if the last configuration reload succeeded (or none was tried), else 0.",
		"edgegate_ready":                              "1 while device intake is open (/readyz answers 200), else 0.",
		"edgegate_events_ingested_total":              "Device messages turned into events and stored.",
		"edgegate_overload_intake_limit_per_second":   "Device publishes per second the gateway reads while an uplink delivers less than devices publish (fair share, see overload); 0: no limit.",
		"edgegate_events_dropped_total":               "Events dropped on purpose, by reason: unmatched_topic, invalid, rule.",
		"edgegate_events_refused_total":               "Device messages refused (not acknowledged) by reason: buffer_full, buffer_unavailable.",
		"edgegate_events_properties_dropped_total":    "MQTT 5 user properties not copied into events, by reason.",
		"edgegate_events_dead_lettered_total":         "Events a rule sent to the dead-letter queue.",
		"edgegate_mqtt_resends_recognised_total":      "Device resends (DUP) of messages already stored, acknowledged without storing them again.",
		"edgegate_buffer_available":                   "1 while the buffer is open, 0 while it cannot be opened.",
		"edgegate_rules_events_emitted_total":         "Events emitted by rules (windows, stale devices, emit actions).",
		"edgegate_rules_publishes_total":              "MQTT messages rules published to local subscribers, by result.",
		"edgegate_rules_emitted_lost_total":           "Events emitted by rule timers that could not be stored.",
		"edgegate_forward_events_dead_lettered_total": "Events the uplink refused for good, moved to its dead-letter queue.",
		"edgegate_forward_ack_failures_total":         "Delivered batches the buffer failed to remove (they are sent again).",
		"edgegate_uplink_handoffs_abandoned_total":    "Batches in flight abandoned when their uplink changed (nacked, sent again by the new configuration).",
		"edgegate_uplink_oldest_age_seconds":          "How long the oldest event the uplink has not delivered has waited (0: none in hand).",
	}
}

// helpOf returns the HELP text of a family in /metrics: MetricsHelp's, or,
// for the Go runtime and process families that VictoriaMetrics/metrics
// writes, runtimeHelp's.
func helpOf() func(family string) string {
	help := MetricsHelp()
	return func(family string) string {
		if h, ok := help[family]; ok {
			return h
		}
		return runtimeHelp(family)
	}
}

// runtimeHelp returns the HELP text of a go_ or process_ family written by
// metrics.WriteGoMetrics, WriteProcMetrics and WriteFDMetrics: its own
// for the common ones, else a generic one that says where it comes from.
func runtimeHelp(family string) string {
	switch family {
	case "process_resident_memory_bytes":
		return "Resident memory size in bytes."
	case "process_cpu_seconds_total":
		return "User and system CPU time spent, in seconds."
	case "process_open_fds":
		return "Open file descriptors."
	case "process_max_fds":
		return "Maximum number of open file descriptors."
	case "process_start_time_seconds":
		return "Start time of the process, in Unix seconds."
	case "process_virtual_memory_bytes":
		return "Virtual memory size in bytes."
	case "go_goroutines":
		return "Goroutines that currently exist."
	case "go_threads":
		return "OS threads created."
	case "go_gomaxprocs":
		return "GOMAXPROCS: CPUs Go code may run on at once."
	case "go_memlimit_bytes":
		return "The Go runtime's soft memory limit (GOMEMLIMIT or memory_limit)."
	case "go_memstats_heap_inuse_bytes":
		return "Heap bytes in in-use spans."
	case "go_memstats_sys_bytes":
		return "Bytes of memory obtained from the OS by the Go runtime."
	case "go_gc_duration_seconds":
		return "Quantiles of recent GC pause durations, in seconds."
	case "go_info":
		return "Always 1; the label names the Go version."
	}
	switch {
	case strings.HasPrefix(family, "go_"):
		return "Go runtime statistic (runtime.MemStats or runtime/metrics), as VictoriaMetrics/metrics names it."
	case strings.HasPrefix(family, "process_"):
		return "Process statistic read from /proc, as VictoriaMetrics/metrics names it."
	}
	return ""
}

// registerBuildInfo exports edgegate_build_info{version,goversion} 1.
func (g *Gateway) registerBuildInfo() {
	g.metrics.NewGauge(metricname.With("edgegate_build_info", "version", g.version, "goversion", runtime.Version()),
		func() float64 { return 1 })
}

// serveMetrics writes /metrics: the gateway's set, then the Go runtime and
// process metrics, with a HELP text for every family. HELP and TYPE lines
// are written when metadata exposition is on (metrics.ExposeMetadata, a
// process-wide switch main turns on).
func (g *Gateway) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var b bytes.Buffer
	g.metrics.WritePrometheus(&b)
	metrics.WriteGoMetrics(&b)   // go_goroutines, go_memstats_…, go_gc_…
	metrics.WriteProcMetrics(&b) // process_resident_memory_bytes, process_cpu_seconds_total, …
	metrics.WriteFDMetrics(&b)   // process_open_fds, process_max_fds
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	metricname.FillHelp(w, b.Bytes(), g.help)
}
