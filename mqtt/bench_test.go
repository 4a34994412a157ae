package mqtt

import (
	"context"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// BenchmarkPublishQoS1 measures device → Handler → PUBACK throughput with a
// Handler that returns nil at once, from one paho client over loopback:
// "sequential" waits for each PUBACK, "window" keeps 64 messages in flight.
func BenchmarkPublishQoS1(b *testing.B) {
	payload := make([]byte, 200)
	for _, window := range []int{1, 64} {
		name := "sequential"
		if window > 1 {
			name = "window64"
		}
		b.Run(name, func(b *testing.B) {
			tb := startBroker(b, testConfig(), HandlerFunc(func(context.Context, Message) error { return nil }))
			c := mqtttest.Connect(b, "tcp://"+tb.addr("tcp"), "bench", nil)
			toks := make([]paho.Token, 0, window)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				toks = append(toks, c.Publish("bench/t", 1, false, payload))
				if len(toks) == window {
					for _, t := range toks {
						mqtttest.Wait(b, t, "publish")
					}
					toks = toks[:0]
				}
			}
			for _, t := range toks {
				mqtttest.Wait(b, t, "publish")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
