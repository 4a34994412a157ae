package metricname

import "strings"

// With returns the metric name followed by its labels, given as label,
// value pairs: With("edgegate_uplink_up", "uplink", "cloud") is
// `edgegate_uplink_up{uplink="cloud"}`. Labels keep their order. Label
// names are written as given and must be valid Prometheus label names.
// With panics on an odd number of label strings, a programming error like
// an invalid name passed to metrics.NewCounter.
func With(name string, labels ...string) string {
	if len(labels)%2 != 0 {
		panic("metricname.With: odd number of label strings for " + name)
	}
	if len(labels) == 0 {
		return name
	}
	var b strings.Builder
	n := len(name) + 2
	for _, l := range labels {
		n += len(l) + 3
	}
	b.Grow(n)
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		writeValue(&b, labels[i+1])
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// writeValue writes v escaped as a label value of the text format.
func writeValue(b *strings.Builder, v string) {
	v = strings.ToValidUTF8(v, "\uFFFD")
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
}
