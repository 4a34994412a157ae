package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/uplink"
)

// One uplink's outage never slows another: with "slow" down, "fast" gets
// every event promptly, while "slow"'s queue holds them until it recovers.
func TestUplinkOutageIsIsolated(t *testing.T) {
	fast, slow := newReceiver(t), newReceiver(t)
	slow.Refuse(http.StatusServiceUnavailable)
	cfg := testConfig(t, fast.URL())
	s := httpUplink("slow", slow.URL())
	s.Retry.Initial, s.Retry.Max = 20*time.Millisecond, 100*time.Millisecond
	cfg.Uplinks = append(cfg.Uplinks, s)
	gw := start(t, cfg)
	publishSeq(t, mqtttest.Connect(t, gw.mqtt, "iso"), "iso", 0, 300)
	checkOrder(t, fast.WaitFor(300, 10*time.Second))
	if q := gw.g.buffer().Stats().Queues[queueName("slow")]; q.Records != 300 {
		t.Fatalf("slow uplink's queue holds %d, want 300", q.Records)
	}
	slow.Refuse(0)
	checkOrder(t, slow.WaitFor(300, 10*time.Second))
}

// The MQTT uplink through the gateway: events reach a second (cloud) MQTT
// broker as structured CloudEvents on the templated topic.
func TestMQTTUplink(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{} // topic → count
	var ids []string
	cloud := startCloudBroker(t, func(m mqtt.Message, id string) {
		mu.Lock()
		got[m.Topic]++
		ids = append(ids, id)
		mu.Unlock()
	})
	cfg := testConfig(t, "http://unused")
	cfg.Uplinks = []uplink.Config{mqttUplink("iot", cloud)}
	gw := start(t, cfg)
	publishSeq(t, mqtttest.Connect(t, gw.mqtt, "m1"), "m1", 0, 50)

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(ids)
		mu.Unlock()
		if n >= 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := got["gateways/gw-test/events/io.edgegate.device.telemetry"]; n < 50 {
		t.Fatalf("cloud broker topics: %v", got)
	}
}

// startCloudBroker runs a second broker, the cloud end of an MQTT uplink,
// until the test ends: each message must be a structured CloudEvent and
// is handed to got with its id.
func startCloudBroker(t *testing.T, got func(m mqtt.Message, id string)) *mqtt.Broker {
	t.Helper()
	cloudCfg := mqtt.DefaultConfig()
	cloudCfg.Listeners = []mqtt.ListenerConfig{{ID: "cloud", Type: mqtt.TypeTCP, Address: "127.0.0.1:0"}}
	cloudCfg.MaxInflight = 100
	cloud, err := mqtt.New(cloudCfg, mqtt.HandlerFunc(func(_ context.Context, m mqtt.Message) error {
		var ev struct {
			SpecVersion string `json:"specversion"`
			ID          string `json:"id"`
		}
		if err := json.Unmarshal(m.Payload, &ev); err != nil || ev.SpecVersion != "1.0" || ev.ID == "" {
			t.Errorf("cloud broker got a non-CloudEvent on %s: %s", m.Topic, m.Payload)
		}
		got(m, ev.ID)
		return nil
	}), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cloud.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-cloud.Ready()
	return cloud
}

// mqttUplink returns an MQTT uplink with the defaults to the cloud broker.
func mqttUplink(name string, cloud *mqtt.Broker) uplink.Config {
	u := uplink.DefaultConfig()
	m := uplink.DefaultMQTTConfig()
	u.Name, m.URL, u.MQTT = name, "tcp://"+cloud.Addr("cloud").String(), &m
	return u
}
