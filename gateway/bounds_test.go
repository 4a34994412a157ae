package gateway

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// metricValue reads one sample from the gateway's /metrics.
func metricValue(t *testing.T, gw *running, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + gw.g.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// startFullSoon starts a gateway whose buffer holds 16 KiB and overflows by
// policy, with its uplink down (503) until rcv.Refuse(0).
func startFullSoon(t *testing.T, overflow buffer.Policy) (rcv *cetest.Server, gw *running) {
	rcv = newReceiver(t)
	rcv.Refuse(http.StatusServiceUnavailable)
	cfg := testConfig(t, rcv.URL())
	cfg.Buffer.MaxBytes = 16 << 10
	cfg.Buffer.Overflow = overflow
	return rcv, start(t, cfg)
}

// With a tiny max_bytes and the uplink down, drop_oldest keeps accepting,
// drops the oldest events and counts every drop; the newest survive.
func TestBoundsDropOldest(t *testing.T) {
	rcv, gw := startFullSoon(t, buffer.DropOldest)
	c := mqtttest.Connect(t, gw.mqtt, "dropper")
	const n = 300 // ~400 B per event: far more than 16 KiB
	publishSeq(t, c, "d1", 0, n)

	dropped := metricValue(t, gw, `edgegate_buffer_dropped_total{reason="overflow"}`)
	if dropped == 0 {
		t.Fatal("no drops counted")
	}
	kept := gw.g.buffer().Stats().Queues[queueName("cloud")].Records
	rcv.Refuse(0)
	events := rcv.WaitFor(int(kept), 20*time.Second)
	time.Sleep(200 * time.Millisecond)
	if got := len(rcv.WaitFor(0, time.Second)); int64(got)+int64(dropped) < n {
		t.Errorf("delivered %d + dropped %v < published %d: events vanished uncounted", got, dropped, n)
	}
	// The survivors are the newest events, in order.
	var last int
	for i, e := range events {
		var seq int
		fmt.Sscanf(string(e.Data()), `{"seq":%d}`, &seq)
		if i > 0 && seq <= last {
			t.Fatalf("order broken: %d after %d", seq, last)
		}
		last = seq
	}
	if last != n-1 {
		t.Errorf("newest event seq %d was not kept (want %d)", last, n-1)
	}
	t.Logf("published %d, dropped %v, delivered %d", n, dropped, len(events))
}

// With overflow: reject the gateway stops acknowledging when full: an MQTT
// 3.1.1 device is disconnected without PUBACK, reconnects and resends. Once
// the uplink drains the buffer every published message arrives.
func TestBoundsRejectLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for reconnect cycles")
	}
	rcv, gw := startFullSoon(t, buffer.Reject)

	var lost atomic.Int32
	c := mqtttest.Connect(t, gw.mqtt, "rejected", mqtttest.Persistent, func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { lost.Add(1) })
	})

	const n = 100
	for i := range n {
		c.Publish("devices/r1/telemetry", 1, false, fmt.Sprintf(`{"seq":%d}`, i))
	}
	// Wait until the buffer refused something (client disconnected).
	deadline := time.Now().Add(10 * time.Second)
	for lost.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if lost.Load() == 0 {
		t.Fatal("client never disconnected although the buffer was full")
	}
	if refused := metricValue(t, gw, `edgegate_events_refused_total{reason="buffer_full"}`); refused == 0 {
		t.Error("refusals not counted")
	}
	rcv.Refuse(0) // space returns as the uplink drains
	events := rcv.WaitFor(n, 60*time.Second)
	// Every seq must arrive. Order is not checked: the device decides the
	// order of its resends, and paho.mqtt.golang resends its in-flight
	// messages in map order after a reconnect.
	seen := map[string]bool{}
	for _, e := range events {
		seen[string(e.Data())] = true
	}
	for i := range n {
		if !seen[fmt.Sprintf(`{"seq":%d}`, i)] {
			t.Errorf("seq %d lost", i)
		}
	}
	t.Logf("disconnects while full: %d; delivered %d of %d; duplicates %d", lost.Load(), len(events), n, rcv.Duplicates())
}
