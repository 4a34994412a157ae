package main

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// BenchmarkNeighboursUnderFlood measures what a flooding device costs the
// others, through the real binary: 5 devices each publish a QoS 1 message
// every 20 ms (50/s, within any rate limit here; b.N messages in all) while
// nothing else happens ("quiet") or while a sixth device writes QoS 0
// messages as fast as its connection takes them ("flood"), with the
// default publish_rate (1000/s) and with 100/s. Reported: the 5 devices'
// acknowledged messages per second (250 when nothing holds them back) and
// their latency from publish to acknowledgement (p50, p99). Run with a
// fixed count, e.g.
//
//	go test -run '^$' -bench NeighboursUnderFlood -benchtime 1500x ./cmd/edgegate
func BenchmarkNeighboursUnderFlood(b *testing.B) {
	for _, bc := range []struct {
		name  string
		flood bool
		rate  string // mqtt.limits.publish_rate; "" = default
	}{
		{"quiet", false, ""},
		{"flood", true, ""},
		{"flood-rate100", true, "100"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bin, dir := edgegateBinary(b), b.TempDir()
			mqttAddr, admin, uplink := freeAddr(b), freeAddr(b), freeAddr(b)
			limits := ""
			if bc.rate != "" {
				limits = fmt.Sprintf("  limits: {publish_rate: %s, publish_burst: %s}\n", bc.rate, bc.rate)
			}
			config := writeConfigMQTT(b, dir, fmt.Sprintf("mqtt:\n  listeners:\n    - {id: tcp, type: tcp, address: %q}\n%s", mqttAddr, limits), admin, uplink)
			startSink(b, uplink)
			p := startProc(b, bin, config, admin)
			b.Cleanup(p.kill)
			stop := make(chan struct{})
			defer close(stop)
			if bc.flood {
				flooder(b, mqttAddr, "flooder", stop)
				time.Sleep(500 * time.Millisecond) // past the flooder's burst
			}
			const devices, interval = 5, 20 * time.Millisecond
			lat := make([][]time.Duration, devices)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for d := range devices {
				c, err := mqtttest.Dial("tcp://"+mqttAddr, fmt.Sprintf("dev-%d", d))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Disconnect(50)
				n := b.N / devices
				if d < b.N%devices {
					n++
				}
				wg.Go(func() {
					next := time.Now()
					for i := range n {
						time.Sleep(time.Until(next))
						next = next.Add(interval)
						t0 := time.Now()
						if !mqtttest.Acked(c.Publish(fmt.Sprintf("devices/dev-%d/telemetry", d), 1, false, fmt.Sprintf(`{"seq":%d}`, i)), 10*time.Second) {
							fmt.Fprintf(os.Stderr, "dev-%d: publish %d not acknowledged\n", d, i)
							return
						}
						lat[d] = append(lat[d], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) == 0 {
				b.Fatal("no message acknowledged")
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
