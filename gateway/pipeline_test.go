package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// 10 devices publish 1,000 QoS 1 messages each; the receiver must get
// exactly 10,000 valid CloudEvents with the mapped attributes, in publish
// order per device.
func TestPipelineDeliversEveryEventInOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 10,000 messages")
	}
	for _, mode := range []string{"batch", "binary"} {
		t.Run(mode, func(t *testing.T) {
			rcv := newReceiver(t)
			cfg := testConfig(t, rcv.URL())
			cfg.Uplinks[0].HTTP.Mode = mode
			gw := start(t, cfg)
			const devices, perDevice = 10, 1000
			n := perDevice
			if mode == "binary" {
				n = 200 // one request per event: keep the test quick
			}
			var wg sync.WaitGroup
			for d := range devices {
				c := mqtttest.Connect(t, gw.mqtt, fmt.Sprintf("client-%d", d))
				wg.Add(1)
				go func() {
					defer wg.Done()
					publishSeq(t, c, fmt.Sprintf("th-%02d", d), 0, n)
				}()
			}
			wg.Wait()
			events := rcv.WaitFor(devices*n, 60*time.Second)
			if len(events) != devices*n {
				t.Fatalf("got %d events, want %d", len(events), devices*n)
			}
			counts := checkOrder(t, events)
			if len(counts) != devices {
				t.Fatalf("events from %d devices, want %d", len(counts), devices)
			}
			e := events[0]
			dev := e.Subject()
			if e.Source() != "/edgegate/gw-test/devices/"+dev || e.Type() != "io.edgegate.device.telemetry" ||
				e.DataContentType() != "application/json" || e.SpecVersion() != "1.0" {
				t.Errorf("unexpected attributes: %s", e.String())
			}
			if e.Extensions()["mqtttopic"] != "devices/"+dev+"/telemetry" {
				t.Errorf("mqtttopic = %v", e.Extensions()["mqtttopic"])
			}
			if d := rcv.Duplicates(); d != 0 {
				t.Errorf("%d duplicates without any failure", d)
			}
		})
	}
}

// While the uplink answers 503, events accumulate in the buffer; once it
// recovers every event arrives, in order per device.
func TestOutageLosesNothing(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Refuse(http.StatusServiceUnavailable)
	gw := start(t, testConfig(t, rcv.URL()))
	const devices, perDevice = 4, 250
	var wg sync.WaitGroup
	for d := range devices {
		c := mqtttest.Connect(t, gw.mqtt, fmt.Sprintf("c%d", d))
		wg.Add(1)
		go func() { defer wg.Done(); publishSeq(t, c, fmt.Sprintf("d%d", d), 0, perDevice/2) }()
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond) // several failed attempts
	if st := gw.g.buffer().Stats(); st.Records < devices*perDevice/2 {
		t.Fatalf("buffer holds %d records during the outage, want ≥ %d", st.Records, devices*perDevice/2)
	}
	rcv.Refuse(0)
	for d := range devices {
		c := mqtttest.Connect(t, gw.mqtt, fmt.Sprintf("c%d-b", d))
		wg.Add(1)
		go func() { defer wg.Done(); publishSeq(t, c, fmt.Sprintf("d%d", d), perDevice/2, perDevice/2) }()
	}
	wg.Wait()
	events := rcv.WaitFor(devices*perDevice, 30*time.Second)
	counts := checkOrder(t, events)
	for d, n := range counts {
		if n != perDevice {
			t.Errorf("device %s: %d events, want %d", d, n, perDevice)
		}
	}
}

// badInputWait bounds TestBadInput's sends and waits: generous, since
// they only fail a test that would otherwise hang.
const badInputWait = 2 * time.Minute

// Bad input is either an event or a counted rejection, and the gateway
// keeps serving.
func TestBadInput(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t, rcv.URL())
	// Under load (and -race) the strict receiver took 6-10 s to validate
	// the 1 MiB event; past the default 10 s request timeout the uplink
	// sent it again, as slowly, and the events behind it missed the wait.
	// This test is about bad input, not latency.
	cfg.Uplinks[0].HTTP.Timeout = badInputWait
	gw := start(t, cfg)
	c := mqtttest.Connect(t, gw.mqtt, "bad-input")
	cases := []struct {
		topic   string
		payload []byte
	}{
		{"devices/a/empty", nil},
		{"devices/a/utf8", []byte{0xff, 0xfe, 'x'}},
		{"devices/a/big", bytes.Repeat([]byte("x"), 1<<20-64)},
		{"devices/a/text", []byte("not json {")},
		{"devices/we ird%20 ü/…", []byte(`{"ok":true}`)},
		{"devices/a/b/c/d", []byte(`1`)},
		{"x", []byte(`1`)},
	}
	for _, tc := range cases {
		tok := c.Publish(tc.topic, 1, false, tc.payload)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %q: %v", tc.topic, tok.Error())
		}
	}
	events := rcv.WaitFor(len(cases), badInputWait)
	byTopic := map[string]bool{}
	for _, e := range events {
		byTopic[fmt.Sprint(e.Extensions()["mqtttopic"])] = true
		if e.Extensions()["mqtttopic"] == "devices/a/big" && len(e.Data()) != 1<<20-64 {
			t.Errorf("big payload: %d bytes", len(e.Data()))
		}
	}
	for _, tc := range cases {
		if !byTopic[tc.topic] {
			t.Errorf("no event for %q", tc.topic)
		}
	}
	// A payload over the limit is refused by the broker; the gateway lives on.
	over := mqtttest.Connect(t, gw.mqtt, "too-big")
	over.Publish("devices/a/huge", 1, false, bytes.Repeat([]byte("x"), 2<<20)).WaitTimeout(2 * time.Second)
	publishSeq(t, mqtttest.Connect(t, gw.mqtt, "after"), "after", 0, 1)
	rcv.WaitFor(len(cases)+1, badInputWait)
	resp, err := http.Get("http://" + gw.g.AdminAddr().String() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz after bad input: %v %v", resp, err)
	}
	resp.Body.Close()
}
