package mqtt

import (
	"context"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// BenchmarkPublishQoS1 measures device → Handler → PUBACK throughput with a
// Handler that returns nil at once, from one paho client over loopback:
// "sequential" waits for each PUBACK, "window" keeps 64 messages in flight;
// "access" adds an Access that authenticates the client and checks every
// publish (access.BenchmarkCanPublish measures the real ACL's check);
// "async" makes the Handler an AsyncHandler whose messages are stored at
// once: the cost of the pipeline (queue, worker, InjectPacket).
func BenchmarkPublishQoS1(b *testing.B) {
	payload := make([]byte, 200)
	for _, async := range []bool{false, true} {
		for _, withAccess := range []bool{false, true} {
			for _, window := range []int{1, 64} {
				name := "sequential"
				if window > 1 {
					name = "window64"
				}
				if withAccess {
					name += "/access"
				}
				if async {
					name += "/async"
				}
				var h Handler = HandlerFunc(func(context.Context, Message) error { return nil })
				if async {
					h = storedAtOnce{}
				}
				benchPublishQoS1(b, name, h, payload, withAccess, window)
			}
		}
	}
}

// processCPU is the CPU time (user and system) the process used so far:
// client and broker together, steadier than wall time on a shared machine.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// storedAtOnce is an AsyncHandler whose every message is stored at once.
type storedAtOnce struct{}

func (storedAtOnce) Handle(context.Context, Message) error { return nil }
func (storedAtOnce) Begin(context.Context, Message) (Pending, error) {
	return storedAtOnce{}, nil
}
func (storedAtOnce) Wait(context.Context) error { return nil }
func (storedAtOnce) Ready() bool                { return true }

func benchPublishQoS1(b *testing.B, name string, h Handler, payload []byte, withAccess bool, window int) {
	b.Run(name, func(b *testing.B) {
		tb := startBroker(b, testConfig(), h)
		topic, login := "bench/t", func(*paho.ClientOptions) {}
		if withAccess {
			tb.SetAccess(&fakeAccess{users: map[string]string{"bench": "pw"}})
			topic, login = "bench/t", func(o *paho.ClientOptions) { o.SetUsername("bench").SetPassword("pw") }
		}
		c := mqtttest.Connect(b, "tcp://"+tb.addr("tcp"), "bench", login)
		toks := make([]paho.Token, 0, window)
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := processCPU()
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
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	})
}
