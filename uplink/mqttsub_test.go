package uplink

import (
	"context"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// The MQTT uplink's own connection carries subscriptions (the config
// channel): it connects for Subscribe without any Send, receives a
// retained message, publishes on another topic, and subscribes again on
// the connection to a restarted broker that lost every session.
func TestMQTTSubscribe(t *testing.T) {
	b1 := startBroker(t, "127.0.0.1:0", nil, nil)
	addr := b1.addr
	s := newMQTTTestSender(t, "tcp://"+addr, func(c *Config) {
		c.MQTT.Timeout = 2 * time.Second
		c.Retry.Max = 200 * time.Millisecond // paho's reconnect interval cap
	})
	sub := s.(Subscriber)
	const topic = "gateways/gw-1/config"

	type msg struct {
		payload  string
		retained bool
	}
	got := make(chan msg, 10)
	handler := func(p []byte, retained bool) { got <- msg{string(p), retained} }
	next := func(what string) msg {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("no message: %s", what)
			return msg{}
		}
	}

	cloud := mqtttest.Connect(t, "tcp://"+addr, "cloud")
	mqtttest.Wait(t, cloud.Publish(topic, 1, true, "v1"), "retained publish")
	// mochi sends the PUBACK before it hands a message to subscribers: a
	// SUBSCRIBE in between gets v1 twice, retained and then live. It
	// reads one connection's packets in order, so the PUBACK of a second
	// publish means v1's fan-out is over.
	mqtttest.Wait(t, cloud.Publish("gateways/gw-1/other", 1, false, "x"), "publish after the retained one")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sub.Subscribe(ctx, topic, handler); err != nil {
		t.Fatal(err)
	}
	if m := next("retained"); m.payload != "v1" || !m.retained {
		t.Fatalf("got %+v, want the retained v1", m)
	}
	mqtttest.Wait(t, cloud.Publish(topic, 1, false, "v2"), "publish")
	if m := next("live"); m.payload != "v2" || m.retained {
		t.Fatalf("got %+v, want v2 not retained", m)
	}
	select {
	case m := <-got:
		t.Fatalf("extra message %+v: subscribed twice?", m)
	case <-time.After(300 * time.Millisecond):
	}
	if err := sub.Publish(ctx, topic+"/status", []byte(`{"result":"applied"}`)); err != nil {
		t.Fatal(err)
	}
	var status []brokerMsg
	for _, m := range b1.messages() {
		if m.Topic == topic+"/status" {
			status = append(status, m)
		}
	}
	if len(status) != 1 || string(status[0].Payload) != `{"result":"applied"}` || status[0].QoS != 1 {
		t.Fatalf("status messages on the broker: %+v", status)
	}

	// A new broker on the same port knows no session: the uplink must
	// subscribe again when paho reconnects.
	cloud.Disconnect(0)
	b1.stop()
	b2 := startBroker(t, addr, nil, nil)
	cloud = mqtttest.Connect(t, "tcp://"+b2.addr, "cloud")
	defer cloud.Disconnect(0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mqtttest.Wait(t, cloud.Publish(topic, 1, false, "v3"), "publish to the new broker")
		select {
		case m := <-got:
			if m.payload != "v3" {
				t.Fatalf("got %+v, want v3", m)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message after the broker restart: not subscribed again")
		}
	}
}
