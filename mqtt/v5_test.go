package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// MQTT 5 reason codes on the wire, from a raw client (there is no MQTT 5
// client in go.mod).
func TestV5AckReasonCodes(t *testing.T) {
	rec := &recorder{decide: byPayload(map[string]error{
		"busy":  fmt.Errorf("disk low: %w", ErrOverloaded),
		"bad":   fmt.Errorf("schema: %w", ErrRejected),
		"weird": errors.New("unexpected"),
	})}
	cfg := testConfig()
	cfg.MaxPayloadBytes = 1000
	tb := startBroker(t, cfg, rec)

	sub, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "sub", true)
	sub.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: "t", Qos: 1}},
	})
	if pk, err := sub.Read(); err != nil || pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("suback: %+v %v", pk.FixedHeader, err)
	}

	dev, connack := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev", true)
	if got := connack.Properties.MaximumPacketSize; got != 1000+packetSlack {
		t.Errorf("CONNACK maximum packet size = %d, want %d", got, 1000+packetSlack)
	}
	for i, tc := range []struct {
		payload string
		qos     byte
		ack     byte // packet type
		reason  byte
	}{
		{"good", 1, packets.Puback, 0x00},
		{"good", 2, packets.Pubrec, 0x00},
		{"busy", 1, packets.Puback, 0x97},
		{"busy", 2, packets.Pubrec, 0x97},
		{"weird", 1, packets.Puback, 0x97},
		{"bad", 1, packets.Puback, 0x99},
		{"bad", 2, packets.Pubrec, 0x99},
		{string(bytes.Repeat([]byte{'x'}, 1001)), 1, packets.Puback, 0x95},
	} {
		id := uint16(i + 1)
		dev.Publish("t", []byte(tc.payload), tc.qos, id, packets.Properties{})
		ack, err := dev.Read()
		if err != nil || ack.FixedHeader.Type != tc.ack || ack.PacketID != id || ack.ReasonCode != tc.reason {
			t.Errorf("%.10s qos %d: got type %d id %d reason %#x (%v), want type %d id %d reason %#x",
				tc.payload, tc.qos, ack.FixedHeader.Type, ack.PacketID, ack.ReasonCode, err, tc.ack, id, tc.reason)
		}
		if ack.FixedHeader.Type == packets.Pubrec && ack.ReasonCode == 0 {
			dev.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: id})
			if pk, err := dev.Read(); err != nil || pk.FixedHeader.Type != packets.Pubcomp {
				t.Fatalf("pubcomp: %+v %v", pk.FixedHeader, err)
			}
		}
	}
	dev.Ping() // still connected after negative acks

	// Only the two accepted messages reached the subscriber.
	for range 2 {
		pk, err := sub.Read()
		if err != nil || pk.FixedHeader.Type != packets.Publish || string(pk.Payload) != "good" {
			t.Fatalf("subscriber got %+v %q %v", pk.FixedHeader, pk.Payload, err)
		}
	}
	sub.Ping() // the next packet is PINGRESP, not a refused message

	for kind, want := range map[string]string{"overloaded": "2", "rejected": "2", "other": "1"} {
		if got := tb.metric(t, fmt.Sprintf(`edgegate_mqtt_handler_errors_total{kind=%q}`, kind)); got != want {
			t.Errorf("handler_errors %s = %s, want %s", kind, got, want)
		}
	}
	if got := tb.metric(t, "edgegate_mqtt_messages_too_large_total"); got != "1" {
		t.Errorf("too_large = %s, want 1", got)
	}
	if n := len(rec.all()); n != 7 {
		t.Errorf("handler called %d times, want 7 (not for the oversized payload)", n)
	}
}

func TestV5PropertiesReachHandler(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(), rec)
	dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev5", true)
	dev.Publish("sensors/a", []byte(`{"t":21}`), 1, 1, packets.Properties{
		ContentType:       "application/json",
		PayloadFormat:     1,
		PayloadFormatFlag: true,
		User:              []packets.UserProperty{{Key: "unit", Val: "C"}, {Key: "unit", Val: "K"}},
	})
	ack, err := dev.Read()
	if err != nil || ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0 {
		t.Fatalf("ack: %+v %v", ack, err)
	}
	if ack.FixedHeader.Remaining != 2 {
		t.Errorf("PUBACK has %d bytes after the header, want 2 (no inherited properties)", ack.FixedHeader.Remaining)
	}
	msgs := rec.all()
	if len(msgs) != 1 {
		t.Fatalf("handler saw %d messages", len(msgs))
	}
	m := msgs[0]
	want := Message{
		Topic: "sensors/a", Payload: []byte(`{"t":21}`), QoS: 1, PacketID: m.PacketID, ClientID: "dev5", AuthMethod: AuthAnonymous, ProtocolVersion: 5,
		ContentType: "application/json", PayloadFormat: 1,
		UserProperties: []Property{{"unit", "C"}, {"unit", "K"}},
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", m, want)
	}
}

// A v5 topic alias is resolved before the Handler sees the message.
func TestV5TopicAlias(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(), rec)
	dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev5", true)
	dev.Publish("long/topic/name", []byte("1"), 1, 1, packets.Properties{TopicAlias: 3, TopicAliasFlag: true})
	dev.Read()
	dev.Publish("", []byte("2"), 1, 2, packets.Properties{TopicAlias: 3, TopicAliasFlag: true})
	dev.Read()
	msgs := rec.all()
	if len(msgs) != 2 || msgs[1].Topic != "long/topic/name" {
		t.Errorf("handler saw %+v", msgs)
	}
}

// A panicking Handler does not take the broker down; the message is not
// acknowledged as stored.
func TestHandlerPanicIsNotAck(t *testing.T) {
	rec := &recorder{decide: func(ctx context.Context, m Message) error {
		if string(m.Payload) == "boom" {
			panic("bug in mapping")
		}
		return nil
	}}
	tb := startBroker(t, testConfig(), rec)
	dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev5", true)
	dev.Publish("t", []byte("boom"), 1, 1, packets.Properties{})
	if ack, err := dev.Read(); err != nil || ack.ReasonCode != packets.ErrQuotaExceeded.Code {
		t.Fatalf("got %+v reason %#x %v, want PUBACK 0x97", ack.FixedHeader, ack.ReasonCode, err)
	}
	dev.Publish("t", []byte("fine"), 1, 2, packets.Properties{})
	if ack, err := dev.Read(); err != nil || ack.ReasonCode != 0 {
		t.Fatalf("got %+v reason %#x %v, want PUBACK 0", ack.FixedHeader, ack.ReasonCode, err)
	}
	if got := tb.metric(t, `edgegate_mqtt_handler_errors_total{kind="other"}`); got != "1" {
		t.Errorf("handler_errors other = %s", got)
	}
}
