package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// publishQoS1 sends a QoS 1 PUBLISH with a chosen packet id and DUP flag,
// which paho does not allow, and waits for its PUBACK.
func publishQoS1(t *testing.T, c *mqtttest.Raw, topic string, id uint16, dup bool, payload string) {
	t.Helper()
	c.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: dup},
		TopicName:   topic,
		PacketID:    id,
		Payload:     []byte(payload),
	})
	ack, err := c.Read()
	if err != nil || ack.FixedHeader.Type != packets.Puback || ack.PacketID != id {
		t.Fatalf("PUBACK for %d: %+v %v", id, ack.FixedHeader, err)
	}
}

// A device that resends (DUP) a message whose PUBACK it never got, for
// example because the gateway crashed between storing and acking, gets its
// ack without a second event under a new id; even after a restart, as the
// index lives in the buffer. A resend with another payload, or a new message
// reusing the packet id, is a new event.
func TestResendIsRecognised(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t, rcv.URL())
	gw := start(t, cfg)
	addr := strings.TrimPrefix(gw.mqtt, "tcp://")
	c, _ := mqtttest.DialRaw(t, addr, 4, "dev-dup", false)
	publishQoS1(t, c, "devices/dup/telemetry", 7, false, `{"seq":0}`)
	publishQoS1(t, c, "devices/dup/telemetry", 7, true, `{"seq":0}`) // lost ack: resend
	rcv.WaitFor(1, 10*time.Second)

	gw.stop(t)
	gw = start(t, cfg)
	addr = strings.TrimPrefix(gw.mqtt, "tcp://")
	c, _ = mqtttest.DialRaw(t, addr, 4, "dev-dup", false)
	publishQoS1(t, c, "devices/dup/telemetry", 7, true, `{"seq":0}`)  // resend after a restart
	publishQoS1(t, c, "devices/dup/telemetry", 7, true, `{"seq":1}`)  // same id, other payload
	publishQoS1(t, c, "devices/dup/telemetry", 7, false, `{"seq":2}`) // packet id reused
	events := rcv.WaitFor(3, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	if got := len(rcv.Events()); got != 3 {
		t.Fatalf("receiver got %d events, want 3 (seq 0, 1, 2)", got)
	}
	checkOrder(t, events)
	if n := metricValue(t, gw, "edgegate_mqtt_resends_recognised_total"); n != 1 {
		t.Errorf("recognised resends after restart: %v, want 1", n)
	}
}
