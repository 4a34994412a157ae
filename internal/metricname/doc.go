// Package metricname owns how edgegate writes a metric name with labels:
// With returns name{label="value",...} in the Prometheus text exposition
// format, the form VictoriaMetrics/metrics takes as a metric's name.
//
// A label value escapes exactly what the text format escapes: backslash as
// \\, double quote as \" and newline as \n. Everything else, UTF-8
// included, is written as it is (Go's %q and strconv.Quote write escapes
// such as \t, \u00e9 or \x00 that the format does not have); invalid UTF-8
// becomes U+FFFD, since the format is UTF-8.
//
// Every metric name built with a label value from a variable (an uplink,
// queue or rule name, a QoS, a status code, a version) is built with With. A
// name whose labels are literals in the source, such as
// `edgegate_events_dropped_total{reason="rule"}`, is already in its final
// form and stays a literal, greppable as dashboards spell it.
//
// FillHelp gives the bare "# HELP family" lines VictoriaMetrics/metrics
// writes (with metrics.ExposeMetadata on) their text, escaped as the format
// wants. The texts are not kept here: each package that creates metrics
// owns its families' texts (its MetricsHelp), and the gateway passes them
// in when it serves /metrics.
//
// metricname imports only the standard library: it must not import any
// edgegate package, so every package that names metrics may import it. It is a tiny package of
// its own, and not a helper beside its caller, because its callers are
// buffer, mqtt, rules, uplink, gateway and cmd/edgegate, leaf packages that
// must not import each other. It holds no state: With and FillHelp are
// safe for concurrent use.
package metricname
