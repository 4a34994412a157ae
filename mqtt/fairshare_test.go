package mqtt

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

func TestWaterFill(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name   string
		demand []float64
		limit  float64
		want   float64
	}{
		{"all fit", []float64{10, 20, 30}, 100, inf},
		{"exactly", []float64{10, 20, 30}, 60, 30},
		{"the big one is cut", []float64{10, 10, 500}, 100, 80},
		{"small ones untouched", []float64{5, 5, 5, 5, inf, inf}, 100, 40},
		{"everyone over", []float64{inf, inf, inf, inf}, 100, 25},
		{"none", nil, 100, inf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := waterFill(append([]float64(nil), tc.demand...), tc.limit); got != tc.want {
				t.Errorf("waterFill(%v, %v) = %v, want %v", tc.demand, tc.limit, got, tc.want)
			}
		})
	}
}

// perClient counts the messages handed to the Handler by client id.
type perClient struct{ m sync.Map } // client id -> *atomic.Int64

func (p *perClient) Handle(_ context.Context, m Message) error {
	n, _ := p.m.LoadOrStore(m.ClientID, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	return nil
}

func (p *perClient) count(id string) int64 {
	if n, ok := p.m.Load(id); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

// A flooder and a device within its share, with the intake limited: the
// flooder is read at about its share (counted, and listed as slowed), the
// other device is never slowed and every message of it is acknowledged.
func TestLimitIntakeSlowsOnlyTheFlooder(t *testing.T) {
	h := &perClient{}
	cfg := testConfig()
	cfg.Limits.PublishRate = 0
	tb := startBroker(t, cfg, h)

	flood, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "flooder", true)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); floodQoS0(flood, "t/flood", stop) }()
	ctx, cancel := context.WithCancel(context.Background())
	steady := &mqtttest.Publisher{
		Addr: tb.addr("tcp"), ClientID: "steady", Topic: "t/steady", Interval: 50 * time.Millisecond,
		Payload: func(int64) []byte { return []byte("s") },
	}
	wg.Add(1)
	go func() { defer wg.Done(); steady.Run(ctx) }()
	defer func() { cancel(); close(stop); _ = flood.Conn.Close(); wg.Wait() }()

	eventually(t, "both devices publishing", func() bool { return h.count("flooder") > 0 && h.count("steady") > 0 })
	const limit = 200.0
	tb.LimitIntake(limit) // measures from here
	time.Sleep(250 * time.Millisecond)
	var from int64
	var start time.Time
	var share float64
	for i := range 12 {
		share = tb.LimitIntake(limit)
		if i == 1 { // the flooder has been held to its share since the last call
			from, start = h.count("flooder"), time.Now()
		}
		time.Sleep(250 * time.Millisecond)
	}
	got, took := h.count("flooder")-from, time.Since(start).Seconds()
	if share <= 0 || share > limit {
		t.Errorf("share %v with a flooder, want in (0, %v]", share, limit)
	}
	// At most the whole limit, plus a second's burst: a loaded machine
	// reads slower, never faster.
	if max := limit*took + limit + 50; float64(got) > max {
		t.Errorf("flooder had %d messages read in %.1fs with an intake limit of %v/s, want at most %.0f", got, took, limit, max)
	}
	var flooderSlowed, steadySlowed int64 = -1, -1
	for _, c := range tb.ClientList() {
		switch c.ClientID {
		case "flooder":
			flooderSlowed = c.FairShareDelayed
		case "steady":
			steadySlowed = c.FairShareDelayed
		}
	}
	if flooderSlowed <= 0 {
		t.Errorf("flooder listed with FairShareDelayed %d, want > 0", flooderSlowed)
	}
	if steadySlowed != 0 {
		t.Errorf("steady device (20/s, within its share) listed with FairShareDelayed %d, want 0", steadySlowed)
	}
	if tb.metric(t, "edgegate_mqtt_fair_share_delayed_total") == "0" {
		t.Error("edgegate_mqtt_fair_share_delayed_total is 0")
	}
	if st := steady.Stats(); st.Refused != 0 || st.Acked == 0 {
		t.Errorf("steady device: %+v, want acknowledged and none refused", st)
	}

	if s := tb.LimitIntake(0); s != 0 {
		t.Errorf("LimitIntake(0) = %v, want 0", s)
	}
	tb.wantMetric(t, "edgegate_mqtt_fair_share_per_second", "0")
}

// An identity listed in publish_rate_exempt (another gateway's MQTT
// uplink) is not held to the publish rate; other devices still are, and
// anonymous clients never match.
func TestPublishRateExempt(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.PublishRate, cfg.Limits.PublishBurst = 20, 5
	cfg.Limits.PublishRateExempt = []string{"bridge"}
	tb := startBroker(t, cfg, &recorder{})
	tb.SetAccess(&fakeAccess{users: map[string]string{"bridge": "pw", "dev": "pw"}})
	send := func(user string) {
		rc, ack, err := mqtttest.DialRawConnect(t, tb.addr("tcp"), 5, connectParams(user, user, "pw"))
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("%s: CONNACK %+v %v", user, ack, err)
		}
		for i := range 30 {
			rc.Publish(user+"/t", []byte("x"), 1, uint16(i+1), packets.Properties{})
		}
		for i := range 30 {
			readAck(t, rc, user, packets.Puback, uint16(i+1), 0)
		}
	}
	send("bridge")
	tb.wantMetric(t, "edgegate_mqtt_publish_delayed_total", "0")
	send("dev")
	if tb.metric(t, "edgegate_mqtt_publish_delayed_total") == "0" {
		t.Error("30 messages at once from a device not exempt: none delayed by a rate of 20/s")
	}
}
