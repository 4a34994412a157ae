package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// overloadRun is four flooders and three devices within their rate (2
// messages/s each) against the real broker, buffer and an uplink (batches
// of 5 events, one request at a time, each answered after 30 ms: at most
// about 160 events/s) much slower than the flooders. It runs them for d and reports
// what it saw.
type overloadRun struct {
	gw               *running
	flooder, inRate  []mqtttest.PublisherStats
	flooderAcked     int64
	flooderSlowed    int64
	inRateSlowed     int64
	midBacklog       int64 // half way through
	backlog          int64 // at the end
	limit, delivered float64
}

// floods is the number of flooders: a QoS 1 device waits for the disk
// before its next message is read, so one alone may not outpace the uplink.
const floods = 4

func runOverload(t *testing.T, fairShare bool, receiverDown bool, d time.Duration) overloadRun {
	t.Helper()
	rcv := newReceiver(t)
	rcv.Respond(func(http.ResponseWriter, *cetest.Request) int {
		time.Sleep(30 * time.Millisecond)
		return http.StatusOK
	})
	if receiverDown {
		rcv.Refuse(http.StatusServiceUnavailable)
	}
	cfg := testConfig(t, rcv.URL())
	cfg.Uplinks[0].Batch.MaxEvents = 5
	cfg.MQTT.Limits.PublishRate = 0 // the flooder is held back by the fair share only
	cfg.Overload.FairShare = fairShare
	cfg.Overload.TargetDelay = 500 * time.Millisecond
	gw := start(t, cfg, func(g *Gateway) { g.overloadEvery = 250 * time.Millisecond })
	addr := gw.g.Broker().Addr("mqtt").String()

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	payload := func(seq int64) []byte { return fmt.Appendf(nil, `{"seq":%d}`, seq) }
	var devices []*mqtttest.Publisher
	for i := range floods {
		id := fmt.Sprintf("flooder-%d", i)
		devices = append(devices, &mqtttest.Publisher{Addr: addr, ClientID: id, Topic: "devices/" + id + "/telemetry",
			Inflight: 64, Payload: payload})
	}
	for i := range 3 {
		id := fmt.Sprintf("in-rate-%d", i)
		devices = append(devices, &mqtttest.Publisher{Addr: addr, ClientID: id, Topic: "devices/" + id + "/telemetry",
			Interval: 500 * time.Millisecond, Inflight: 4, Payload: payload})
	}
	var wg sync.WaitGroup
	for _, p := range devices {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(ctx) }()
	}
	backlog := func() int64 { return gw.g.buffer().Stats().Queues[queueName("cloud")].Records }
	var mid int64
	select {
	case <-time.After(d / 2):
		mid = backlog()
	case <-ctx.Done():
	}
	<-ctx.Done()
	// Read while the devices are still connected and the overload lasts.
	r := overloadRun{gw: gw, midBacklog: mid, limit: metricValue(t, gw, "edgegate_overload_intake_limit_per_second")}
	for _, c := range gw.g.Broker().ClientList() {
		if strings.HasPrefix(c.ClientID, "flooder-") {
			r.flooderSlowed += c.FairShareDelayed
		} else {
			r.inRateSlowed += c.FairShareDelayed
		}
	}
	r.backlog = backlog()
	r.delivered = metricValue(t, gw, `edgegate_forward_events_delivered_total{uplink="cloud"}`)
	wg.Wait()
	for i, p := range devices {
		if i < floods {
			r.flooder = append(r.flooder, p.Stats())
		} else {
			r.inRate = append(r.inRate, p.Stats())
		}
	}
	for _, s := range r.flooder {
		r.flooderAcked += s.Acked
	}
	return r
}

// Issue 11: while a working uplink delivers less than devices publish, the
// flooder is slowed to its fair share (counted, listed) and the backlog
// stops growing; the devices within their rate are never slowed and every
// message of theirs is acknowledged. Without fair share the backlog takes
// nearly all the flooders send. During an outage nobody is slowed: the
// buffer takes everything.
func TestOverloadSlowsOnlyTheFlooder(t *testing.T) {
	if testing.Short() {
		t.Skip("runs devices for 20 s")
	}
	t.Run("fair share", func(t *testing.T) {
		r := runOverload(t, true, false, 8*time.Second)
		accepted := r.flooderAcked
		t.Logf("flooders: %d accepted, slowed %d times; backlog %d half way, %d at the end, delivered %.0f, intake limit %.0f/s", accepted, r.flooderSlowed, r.midBacklog, r.backlog, r.delivered, r.limit)
		if r.flooderSlowed == 0 || metricValue(t, r.gw, "edgegate_mqtt_fair_share_delayed_total") == 0 {
			t.Error("the flooder was never slowed (FairShareDelayed, edgegate_mqtt_fair_share_delayed_total)")
		}
		if r.limit == 0 {
			t.Error("no intake limit while the flooder outpaces the uplink")
		}
		// The backlog stopped growing: the flooders get a burst in before
		// the first limit (a few steps; how much depends on the machine),
		// and from then on the limit lets in less than the uplink
		// delivers, so the backlog shrinks in the second half (see the
		// run without, where it keeps growing).
		if r.backlog >= r.midBacklog {
			t.Errorf("backlog %d half way, %d at the end: it kept growing", r.midBacklog, r.backlog)
		}
		checkInRate(t, r)
	})
	t.Run("no fair share", func(t *testing.T) {
		r := runOverload(t, false, false, 4*time.Second)
		t.Logf("flooders: %d accepted; backlog %d half way, %d at the end, delivered %.0f", r.flooderAcked, r.midBacklog, r.backlog, r.delivered)
		if r.flooderSlowed != 0 || r.limit != 0 {
			t.Errorf("fair_share off: flooder slowed %d times, intake limit %v", r.flooderSlowed, r.limit)
		}
		if r.backlog <= r.midBacklog {
			t.Errorf("backlog %d half way, %d at the end: the test's uplink is not slower than the flooder", r.midBacklog, r.backlog)
		}
	})
	t.Run("outage", func(t *testing.T) {
		r := runOverload(t, true, true, 4*time.Second)
		if r.flooderSlowed != 0 || r.limit != 0 {
			t.Errorf("uplink down: flooder slowed %d times, intake limit %v; want the buffer to take everything", r.flooderSlowed, r.limit)
		}
		checkInRate(t, r)
	})
}

// checkInRate: the devices within their rate were never slowed or refused,
// and all but their last window of messages was acknowledged.
func checkInRate(t *testing.T, r overloadRun) {
	t.Helper()
	if r.inRateSlowed != 0 {
		t.Errorf("devices within their rate were slowed %d times", r.inRateSlowed)
	}
	for i, s := range r.inRate {
		if s.Refused != 0 || s.Acked < s.Sent-4 || s.Acked == 0 {
			t.Errorf("in-rate device %d: %+v, want every message but the last window acknowledged, none refused", i, s)
		}
	}
}
