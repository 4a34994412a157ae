package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/uplink"
)

// Uplinks change while the gateway runs: a changed URL takes over the
// queue, an added uplink gets events from then on, a removed uplink's
// backlog stays (reported as removed) until it is added again, or is
// dropped when asked; a removed uplink's metrics go.
func TestApplyUplinksLive(t *testing.T) {
	a, b, c := newReceiver(t), newReceiver(t), newReceiver(t)
	cfg := testConfig(t, a.URL())
	gw := start(t, cfg)
	dev := mqtttest.Connect(t, gw.mqtt, "live")
	apply := func(opts uplinkChange, ups ...uplink.Config) {
		t.Helper()
		next := cfg
		next.Uplinks = ups
		compiled, err := Compile(next)
		if err != nil {
			t.Fatal(err)
		}
		gw.g.reloadMu.Lock()
		defer gw.g.reloadMu.Unlock()
		if err := gw.g.applyConfig(context.Background(), compiled, opts); err != nil {
			t.Fatal(err)
		}
	}
	cloud := func(url string) uplink.Config {
		u := httpUplink("cloud", url)
		u.Retry.Initial, u.Retry.Max = 20*time.Millisecond, 200*time.Millisecond
		return u
	}
	other := cloud(c.URL())
	other.Name = "other"

	publishSeq(t, dev, "live", 0, 50)
	checkOrder(t, a.WaitFor(50, 10*time.Second))

	// cloud moves to b; other is added.
	apply(uplinkChange{}, cloud(b.URL()), other)
	publishSeq(t, dev, "live", 50, 50)
	checkSeqsFrom(t, b.WaitFor(50, 10*time.Second), 50)
	checkSeqsFrom(t, c.WaitFor(50, 10*time.Second), 50)
	if n := len(a.Events()); n != 50 {
		t.Errorf("the old endpoint got %d events, want the 50 sent before the change", n)
	}

	// other goes while its endpoint is down: its backlog stays.
	c.Refuse(http.StatusServiceUnavailable)
	publishSeq(t, dev, "live", 100, 20)
	running := gw.g.uplinks.Load().find("cloud")
	apply(uplinkChange{}, cloud(b.URL()))
	if gw.g.uplinks.Load().find("cloud") != running {
		t.Error("an unchanged uplink was restarted by a change of another")
	}
	st := uplinkByName(gw.g, "other")
	if !st.Removed || st.State != stateRemoved || st.Backlog != 20 {
		t.Errorf("removed uplink's status: %+v, want removed with a backlog of 20", st)
	}
	for _, m := range gw.g.metrics.ListMetricNames() {
		if strings.Contains(m, `uplink="other"`) {
			t.Errorf("metric of a removed uplink still reported: %s", m)
		}
	}
	publishSeq(t, dev, "live", 120, 10) // to cloud only now
	checkSeqsFrom(t, b.WaitFor(80, 10*time.Second), 50)

	// Added again, it delivers its backlog.
	c.Refuse(0)
	apply(uplinkChange{}, cloud(b.URL()), other)
	checkSeqsFrom(t, c.WaitFor(70, 10*time.Second), 50)

	// Removed again with the backlog dropped.
	c.Refuse(http.StatusServiceUnavailable)
	publishSeq(t, dev, "live", 130, 10)
	apply(uplinkChange{DropRemovedBacklog: true}, cloud(b.URL()))
	if st := uplinkByName(gw.g, "other"); st.Name != "" {
		t.Errorf("dropped uplink still reported: %+v", st)
	}
	if q := gw.g.buffer().Stats().Queues[queueName("other")]; q.Records != 0 {
		t.Errorf("dropped backlog: %d events left", q.Records)
	}
	if n := gw.g.removedDropped.Get(); n != 10 {
		t.Errorf(`edgegate_events_dropped_total{reason="uplink_removed"} = %d, want 10`, n)
	}
	checkSeqsFrom(t, b.WaitFor(90, 10*time.Second), 50)
}

// checkSeqsFrom asserts that the events are seq from, from+1, … of one
// device, in order, once each.
func checkSeqsFrom(t testing.TB, events []event.Event, from int) {
	t.Helper()
	for i, e := range events {
		var d struct {
			Seq int `json:"seq"`
		}
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			t.Fatalf("event %s data %q: %v", e.ID(), e.Data(), err)
		}
		if d.Seq != from+i {
			t.Fatalf("event %d: seq %d, want %d (lost, duplicated or out of order)", i, d.Seq, from+i)
		}
	}
}

// uplinkByName returns the uplink's entry of /v1/uplinks, zero if none.
func uplinkByName(g *Gateway, name string) uplinkStatus {
	for _, u := range g.uplinkStatuses(g.bufferStats(), time.Now()) {
		if u.Name == name {
			return u
		}
	}
	return uplinkStatus{}
}

// An MQTT uplink changed live (its topic) keeps one client id connected at
// a time: the old client disconnects before the new one connects, so the
// cloud broker never takes a session over (which the old client would see
// as a lost connection), and every event arrives, on the new topic after
// the change.
func TestApplyUplinksMQTTClientID(t *testing.T) {
	var mu sync.Mutex
	topics := map[string]int{}
	cloud := startCloudBroker(t, func(m mqtt.Message, _ string) {
		mu.Lock()
		topics[m.Topic]++
		mu.Unlock()
	})
	cfg := testConfig(t, "http://unused")
	cfg.Uplinks = []uplink.Config{mqttUplink("iot", cloud)}
	gw := start(t, cfg)
	dev := mqtttest.Connect(t, gw.mqtt, "m1")
	count := func(topic string) int {
		mu.Lock()
		defer mu.Unlock()
		return topics[topic]
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %v", what, topics)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	const before = "gateways/gw-test/events/io.edgegate.device.telemetry"
	// Events flow while the uplink changes, so both generations have
	// something to send.
	var acked atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		mqtttest.Steady(dev, "devices/m1/telemetry", time.Millisecond, stop, func(int) { acked.Add(1) })
	})
	waitUntil("events on the first topic", func() bool { return count(before) >= 30 })

	next := cfg
	u := mqttUplink("iot", cloud)
	m := *u.MQTT
	m.Topic = "changed/{gateway_id}"
	u.MQTT = &m
	next.Uplinks = []uplink.Config{u}
	compiled, err := Compile(next)
	if err != nil {
		t.Fatal(err)
	}
	gw.g.reloadMu.Lock()
	err = gw.g.applyConfig(context.Background(), compiled, uplinkChange{})
	gw.g.reloadMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitUntil("events on the new topic", func() bool { return count("changed/gw-test") >= 30 })
	close(stop)
	wg.Wait()
	waitUntil("every acknowledged event", func() bool { return count(before)+count("changed/gw-test") >= int(acked.Load()) })
	lost := gw.g.metrics.GetOrCreateCounter(`edgegate_uplink_mqtt_connection_lost_total{uplink="iot"}`).Get()
	if lost != 0 {
		t.Errorf("the MQTT uplink lost its connection %d times: two clients with one id were connected", lost)
	}
}
