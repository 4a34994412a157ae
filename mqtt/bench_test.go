package mqtt

import (
	"context"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// BenchmarkPublishQoS1 measures device → Handler → PUBACK throughput with a
// Handler that returns nil at once, from one paho client over loopback:
// "sequential" waits for each PUBACK, "window" keeps 64 messages in flight;
// "access" adds an Access that authenticates the client and checks every
// publish (access.BenchmarkCanPublish measures the real ACL's check).
func BenchmarkPublishQoS1(b *testing.B) {
	payload := make([]byte, 200)
	for _, withAccess := range []bool{false, true} {
		for _, window := range []int{1, 64} {
			name := "sequential"
			if window > 1 {
				name = "window64"
			}
			if withAccess {
				name += "/access"
			}
			b.Run(name, func(b *testing.B) {
				tb := startBroker(b, testConfig(), HandlerFunc(func(context.Context, Message) error { return nil }))
				topic, login := "bench/t", func(*paho.ClientOptions) {}
				if withAccess {
					tb.SetAccess(&fakeAccess{users: map[string]string{"bench": "pw"}})
					topic, login = "bench/t", func(o *paho.ClientOptions) { o.SetUsername("bench").SetPassword("pw") }
				}
				c := mqtttest.Connect(b, "tcp://"+tb.addr("tcp"), "bench", login)
				toks := make([]paho.Token, 0, window)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					toks = append(toks, c.Publish(topic, 1, false, payload))
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
				if withAccess && tb.metric(b, `edgegate_mqtt_acl_denied_total{action="publish"}`) != "0" {
					b.Fatal("publishes were denied")
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
