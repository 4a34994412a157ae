package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/cloudevent"
)

// typicalRules returns n rules of the usual shapes (type test, threshold,
// subject/topic test) that do not match the benchmark's event.
func typicalRules(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  - name: r%d\n    when: type == 'io.acme.kind%d' && data.temperature > 30\n    actions: [{route: [cloud]}]\n", i, i)
		case 1:
			fmt.Fprintf(&b, "  - name: r%d\n    when: data.temperature > %d\n    actions: [{drop: true}]\n", i, 100+i)
		case 2:
			fmt.Fprintf(&b, "  - name: r%d\n    when: subject == 'dev-%d' || topic startsWith 'alarms/'\n    actions: [{set: {data.x: '1'}}]\n", i, i)
		case 3:
			fmt.Fprintf(&b, "  - name: r%d\n    when: ext.mqttqos == 2 && data.humidity < %d\n    actions: [{dead_letter: \"'x'\"}]\n", i, i)
		}
	}
	return b.String()
}

func BenchmarkEvaluate(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			s := mustCompile(b, typicalRules(n))
			in := reading("t1", map[string]any{"temperature": 21.5, "humidity": 40.0})
			in.Event.Extensions = map[string]any{"mqttqos": int32(1)}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				d := s.Evaluate(in, t0)
				if d.Drop || d.Routes != nil || len(d.Errors) > 0 {
					b.Fatalf("unexpected match: %+v", d)
				}
			}
		})
	}
}

// BenchmarkEvaluateParallel runs 10 rules from concurrent publishers.
func BenchmarkEvaluateParallel(b *testing.B) {
	s := mustCompile(b, typicalRules(10))
	in := reading("t1", map[string]any{"temperature": 21.5, "humidity": 40.0})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Evaluate(in, t0)
		}
	})
}

// BenchmarkEvaluateStateful: a deadband rule and a 1-minute average.
func BenchmarkEvaluateStateful(b *testing.B) {
	s := mustCompile(b, deadbandAvg("temperature", "0.5", "1m", "io.acme.avg"))
	in := reading("t1", map[string]any{"temperature": 21.5})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		in.Event.Data = map[string]any{"temperature": float64(i % 7)}
		s.Evaluate(in, t0)
	}
}

// BenchmarkPipeline10 is what the gateway adds per event with 10 rules that
// match nothing: decoding the CloudEvent's JSON data plus Evaluate.
func BenchmarkPipeline10(b *testing.B) {
	s := mustCompile(b, typicalRules(10))
	e := cloudevent.Event{ID: "01a2", Source: "/edgegate/gw/devices/t1", Type: "io.edgegate.device.telemetry", Subject: "t1",
		DataContentType: "application/json", Data: []byte(`{"humidity":40,"temperature":21.5}`)}
	e.SetExtension("mqttqos", cloudevent.Integer(1))
	b.ReportAllocs()
	for b.Loop() {
		d := s.Evaluate(Input{Event: FromRecord(&e), Topic: "devices/t1/telemetry"}, t0)
		if d.Drop || d.Routes != nil || len(d.Errors) > 0 {
			b.Fatalf("unexpected match: %+v", d)
		}
	}
}
