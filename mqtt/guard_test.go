package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// readAck reads the next packet and checks it is an ack of type typ for id
// with reason.
func readAck(t *testing.T, rc *mqtttest.Raw, what string, typ byte, id uint16, reason byte) {
	t.Helper()
	pk, err := rc.Read()
	if err != nil || pk.FixedHeader.Type != typ || pk.PacketID != id || pk.ReasonCode != reason {
		t.Errorf("%s: got type %d id %d reason %#x (%v), want type %d id %d reason %#x",
			what, pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode, err, typ, id, reason)
	}
}

func pubrel(rc *mqtttest.Raw, id uint16) {
	rc.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: id})
}

// A device publish to a '$' topic is answered, never left hanging: MQTT 5
// QoS 1/2 gets 0x90 (topic name invalid), MQTT 3.1.1 QoS 1/2 a normal ack
// (and PUBCOMP after PUBREL), QoS 0 nothing; none reaches the Handler or a
// subscriber, every one is counted.
func TestReservedTopicPublishIsAnswered(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(), rec)
	sub, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "sub", true)
	sub.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "$SYS/#", Qos: 2}, {Filter: "$edgegate/#", Qos: 2}}})
	if pk, err := sub.Read(); err != nil || pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("suback: %+v %v", pk, err)
	}

	evil := []byte("from a device")
	v5, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "v5", true)
	v5.Publish("$SYS/broker/uptime", evil, 1, 1, packets.Properties{})
	readAck(t, v5, "v5 qos 1 $SYS", packets.Puback, 1, 0x90)
	v5.Publish("$SYS/broker/uptime", evil, 2, 2, packets.Properties{})
	readAck(t, v5, "v5 qos 2 $SYS", packets.Pubrec, 2, 0x90)
	v5.Publish("$edgegate/x", evil, 1, 3, packets.Properties{})
	readAck(t, v5, "v5 qos 1 $edgegate", packets.Puback, 3, 0x90)
	v5.Publish("$SYS/x", evil, 0, 0, packets.Properties{})
	v5.Ping() // no answer to QoS 0, still connected

	v3, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "v3", true)
	v3.Publish("$SYS/broker/uptime", evil, 1, 1, packets.Properties{})
	readAck(t, v3, "v3 qos 1", packets.Puback, 1, 0)
	v3.Publish("$SYS/broker/uptime", evil, 2, 2, packets.Properties{})
	readAck(t, v3, "v3 qos 2", packets.Pubrec, 2, 0)
	pubrel(v3, 2)
	readAck(t, v3, "v3 qos 2 pubrel", packets.Pubcomp, 2, 0)
	v3.Publish("$SYS/x", evil, 0, 0, packets.Properties{})
	v3.Ping()

	if n := len(rec.all()); n != 0 {
		t.Errorf("handler saw %d messages", n)
	}
	tb.wantMetric(t, `edgegate_mqtt_messages_dropped_total{reason="reserved_topic"}`, "7")
	// The subscriber got nothing but mochi's own $SYS topics before the
	// answer to its ping.
	sub.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	for {
		pk, err := sub.Read()
		if err != nil {
			t.Fatal(err)
		}
		if pk.FixedHeader.Type == packets.Pingresp {
			break
		}
		if bytes.Equal(pk.Payload, evil) {
			t.Errorf("subscriber got a device's %s", pk.TopicName)
		}
	}
}

// A QoS 2 resend whose PUBREL is awaited gets a success PUBREC (mochi
// answers 0x91) and is stored once.
func TestQoS2ResendAwaitingPubrel(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			rec := &recorder{}
			tb := startBroker(t, testConfig(), rec)
			dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), v, "dev", false)
			dev.Publish("sensors/a", []byte("once"), 2, 7, packets.Properties{})
			readAck(t, dev, "first", packets.Pubrec, 7, 0)
			dev.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2, Dup: true},
				TopicName: "sensors/a", Payload: []byte("once"), PacketID: 7})
			readAck(t, dev, "resend", packets.Pubrec, 7, 0)
			pubrel(dev, 7)
			readAck(t, dev, "pubrel", packets.Pubcomp, 7, 0)
			dev.Ping()
			if n := len(rec.all()); n != 1 {
				t.Errorf("handler saw %d messages, want 1", n)
			}
			tb.wantMetric(t, "edgegate_mqtt_qos2_resends_total", "1")
		})
	}
}

// Topics and filters over the limits are refused like reserved topics
// (publish) and with a failure SUBACK (subscribe).
func TestTopicLimits(t *testing.T) {
	rec := &recorder{}
	cfg := testConfig()
	cfg.Limits.MaxTopicLength = 20
	cfg.Limits.MaxTopicLevels = 3
	tb := startBroker(t, cfg, rec)
	long, deep := strings.Repeat("x", 21), "a/b/c/d"
	for _, v := range []byte{4, 5} {
		dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), v, fmt.Sprintf("dev%d", v), true)
		want := byte(0x90)
		if v == 4 {
			want = 0
		}
		dev.Publish(long, []byte("x"), 1, 1, packets.Properties{})
		readAck(t, dev, "long topic", packets.Puback, 1, want)
		dev.Publish(deep, []byte("x"), 1, 2, packets.Properties{})
		readAck(t, dev, "deep topic", packets.Puback, 2, want)
		dev.Publish("a/b/"+strings.Repeat("y", 16), []byte("ok"), 1, 3, packets.Properties{})
		readAck(t, dev, "topic at the limits", packets.Puback, 3, 0)

		dev.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 4,
			Filters: packets.Subscriptions{{Filter: long, Qos: 1}, {Filter: "a/+/#", Qos: 1}, {Filter: "a/b/c/#", Qos: 1}}})
		pk, err := dev.Read()
		fail := byte(0x8F)
		if v == 4 {
			fail = 0x80
		}
		if err != nil || pk.FixedHeader.Type != packets.Suback || !bytes.Equal(pk.ReasonCodes, []byte{fail, 1, fail}) {
			t.Errorf("v%d suback: %+v %x %v, want codes %x", v, pk.FixedHeader, pk.ReasonCodes, err, []byte{fail, 1, fail})
		}
	}
	if n := len(rec.all()); n != 2 {
		t.Errorf("handler saw %d messages, want 2", n)
	}
	tb.wantMetric(t, `edgegate_mqtt_messages_dropped_total{reason="topic_limit"}`, "4")
	tb.wantMetric(t, `edgegate_mqtt_subscriptions_refused_total{reason="topic_limit"}`, "4")
}

// Over the publish rate, a client's messages (any QoS) are read only as
// fast as the rate allows, and counted; a client over the rate for
// excessLimit is disconnected: MQTT 5 with DISCONNECT 0x96, MQTT 3.1.1 by
// closing.
func TestPublishRateLimit(t *testing.T) {
	rec := &recorder{}
	cfg := testConfig()
	cfg.Limits.PublishRate = 50
	cfg.Limits.PublishBurst = 10
	tb := startBroker(t, cfg, rec, func(b *Broker) { b.excessLimit = 2 * time.Second })

	for _, qos := range []byte{0, 1} {
		dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, fmt.Sprintf("qos%d", qos), true)
		before := len(rec.all())
		start := time.Now()
		for i := range 30 {
			id := uint16(0)
			if qos > 0 {
				id = uint16(i + 1)
			}
			dev.Publish("t", []byte("x"), qos, id, packets.Properties{})
		}
		for i := range 30 {
			if qos > 0 {
				readAck(t, dev, "qos 1", packets.Puback, uint16(i+1), 0)
			}
		}
		dev.Ping()
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("qos %d: 30 messages at 50/s with a burst of 10 took %v, want >= 400ms", qos, d)
		}
		if n := len(rec.all()) - before; n != 30 {
			t.Errorf("qos %d: handler saw %d of 30 messages", qos, n)
		}
		time.Sleep(300 * time.Millisecond) // the bucket refills: no sustained excess
	}
	// Up to 40 (20 past each burst): fewer when the broker reads slower
	// than the rate anyway.
	if got := tb.metric(t, "edgegate_mqtt_publish_delayed_total"); got == "0" {
		t.Error("no publish was delayed")
	}

	for _, v := range []byte{4, 5} {
		flood, _ := mqtttest.DialRaw(t, tb.addr("tcp"), v, fmt.Sprintf("flood%d", v), true)
		deadline := time.Now().Add(tb.excessLimit + 5*time.Second)
		go func() {
			msg := rawPublish("t", []byte("f"), 0, v)
			for time.Now().Before(deadline) {
				if _, err := flood.Conn.Write(msg); err != nil {
					return
				}
			}
		}()
		var last packets.Packet
		var err error
		for {
			last, err = flood.Read()
			if err != nil || last.FixedHeader.Type == packets.Disconnect {
				break
			}
		}
		switch {
		case time.Now().After(deadline):
			t.Errorf("v%d flooder not disconnected", v)
		case v == 5 && (last.FixedHeader.Type != packets.Disconnect || last.ReasonCode != 0x96):
			t.Errorf("v5 flooder: got %+v reason %#x (%v), want DISCONNECT 0x96", last.FixedHeader, last.ReasonCode, err)
		case v == 4 && !isClosed(err):
			t.Errorf("v3 flooder: got %+v (%v), want the connection closed", last.FixedHeader, err)
		}
	}
	tb.wantMetric(t, "edgegate_mqtt_rate_limit_disconnects_total", "2")
}

// isClosed reports whether a read error means the peer closed (not a
// timeout).
func isClosed(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// Retained messages stop being retained (but are delivered and handled)
// at max_retained_messages or max_retained_bytes; replacing and clearing
// one frees its place.
func TestRetainedLimits(t *testing.T) {
	rec := &recorder{}
	cfg := testConfig()
	cfg.Limits.MaxRetainedMessages = 2
	cfg.Limits.MaxRetainedBytes = 100
	tb := startBroker(t, cfg, rec)
	dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev", true)
	id := uint16(0)
	retain := func(topic string, payload []byte) {
		t.Helper()
		id++
		dev.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
			TopicName: topic, Payload: payload, PacketID: id})
		readAck(t, dev, "retain "+topic, packets.Puback, id, 0)
	}
	retained := func() []string { // the topics mochi retains a device message for
		var got []string
		for topic := range tb.srv.Topics.Retained.GetAll() {
			if strings.HasPrefix(topic, "r/") {
				got = append(got, topic)
			}
		}
		slices.Sort(got)
		return got
	}
	retain("r/a", []byte("1"))
	retain("r/b", []byte("2"))
	retain("r/c", []byte("3")) // over the count
	retain("r/a", []byte("4")) // replaces: fine
	retain("r/b", bytes.Repeat([]byte("x"), 95))
	if got := fmt.Sprint(retained()); got != "[r/a r/b]" {
		t.Errorf("retained %s", got)
	}
	retain("r/a", nil) // clears r/a
	retain("r/c", []byte("5"))
	if n := len(rec.all()); n != 7 {
		t.Errorf("handler saw %d messages, want 7 (limits do not drop messages)", n)
	}
	if c, b := tb.metric(t, `edgegate_mqtt_retained_refused_total{reason="count"}`), tb.metric(t, `edgegate_mqtt_retained_refused_total{reason="bytes"}`); c != "1" || b != "1" {
		t.Errorf("retained refusals: count %s bytes %s, want 1 and 1", c, b)
	}
	tb.wantMetric(t, "edgegate_mqtt_retained_messages", "2")
}

// server_keep_alive caps the keep-alive of MQTT 5 clients (announced in
// CONNACK, enforced); MQTT 3.1.1 clients keep their own.
func TestServerKeepAlive(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.ServerKeepAlive = 20 * time.Second
	tb := startBroker(t, cfg, &recorder{})
	for _, tc := range []struct {
		v         byte
		asks, got uint16
		announced bool
	}{{5, 30, 20, true}, {5, 0, 20, true}, {5, 10, 10, false}, {4, 30, 30, false}} {
		id := fmt.Sprintf("v%d-%d", tc.v, tc.asks)
		_, ack, err := mqtttest.DialRawConnect(t, tb.addr("tcp"), tc.v, packets.ConnectParams{ClientIdentifier: id, Keepalive: tc.asks, Clean: true})
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("%s: connect: %+v %v", id, ack, err)
		}
		if ack.Properties.ServerKeepAliveFlag != tc.announced || (tc.announced && ack.Properties.ServerKeepAlive != tc.got) {
			t.Errorf("%s: CONNACK server keep alive %v %d, want %v %d", id, ack.Properties.ServerKeepAliveFlag, ack.Properties.ServerKeepAlive, tc.announced, tc.got)
		}
		cl, _ := tb.srv.Clients.Get(id)
		if cl.State.Keepalive != tc.got {
			t.Errorf("%s: keepalive %d, want %d", id, cl.State.Keepalive, tc.got)
		}
	}
}

// A flooder stays over its rate while the broker is now and then slow (a
// slow handler here; a starved CPU under load): the time the broker spends
// elsewhere refills the bucket but is no pause of the client's, so the
// flooder is still disconnected after excessLimit. (It was taken for
// recovered at every slow message and flooded on.)
func TestFlooderDisconnectedWhileBrokerSlow(t *testing.T) {
	var n atomic.Int64
	rec := &recorder{decide: func(context.Context, Message) error {
		if n.Add(1)%10 == 0 {
			time.Sleep(150 * time.Millisecond) // past refilling half the bucket (100 ms)
		}
		return nil
	}}
	cfg := testConfig()
	cfg.Limits.PublishRate = 50
	cfg.Limits.PublishBurst = 10
	tb := startBroker(t, cfg, rec, func(b *Broker) { b.excessLimit = time.Second })
	flood, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "flood", true)
	stop := make(chan struct{})
	defer close(stop)
	go floodQoS0(flood, "t", stop)
	start := time.Now()
	for {
		pk, err := flood.Read()
		if err != nil {
			t.Fatalf("flooder: %v after %v, want DISCONNECT 0x96", err, time.Since(start))
		}
		if pk.FixedHeader.Type == packets.Disconnect {
			if pk.ReasonCode != 0x96 {
				t.Fatalf("flooder: DISCONNECT %#x, want 0x96", pk.ReasonCode)
			}
			break
		}
	}
	if n.Load() < 50 {
		t.Fatalf("disconnected after %d messages: want a run over the rate first", n.Load())
	}
	tb.wantMetric(t, "edgegate_mqtt_rate_limit_disconnects_total", "1")
}
