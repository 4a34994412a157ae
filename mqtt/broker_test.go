package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

func TestV3HandlerSeesEachMessageOnce(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(), rec)
	c := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "dev-1", func(o *paho.ClientOptions) {
		o.SetUsername("alice").SetPassword("x")
	})
	for qos := byte(0); qos <= 2; qos++ {
		mqtttest.Wait(t, c.Publish(fmt.Sprintf("sensors/q%d", qos), qos, qos == 1, []byte{'p', '0' + qos}), "publish")
	}
	eventually(t, "3 messages", func() bool { return len(rec.all()) == 3 })

	msgs := rec.all()
	for qos := byte(0); qos <= 2; qos++ {
		want := Message{
			Topic: fmt.Sprintf("sensors/q%d", qos), Payload: []byte{'p', '0' + qos}, QoS: qos, Retain: qos == 1,
			// Without an Access nothing checked "alice": the client is anonymous.
			ClientID: "dev-1", AuthMethod: AuthAnonymous, ProtocolVersion: 4,
		}
		got := msgs[qos]
		if (qos == 0) != (got.PacketID == 0) {
			t.Errorf("message %d: packet id %d", qos, got.PacketID)
		}
		got.PacketID = 0 // assigned by paho
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("message %d:\n got %+v\nwant %+v", qos, got, want)
		}
	}
	for qos := range 3 {
		if got := tb.metric(t, fmt.Sprintf(`edgegate_mqtt_messages_received_total{qos="%d"}`, qos)); got != "1" {
			t.Errorf("received qos %d = %s, want 1", qos, got)
		}
	}
	if got := tb.metric(t, "edgegate_mqtt_clients_connected"); got != "1" {
		t.Errorf("clients_connected = %s, want 1", got)
	}
	if tb.Clients() != 1 {
		t.Errorf("Clients() = %d, want 1", tb.Clients())
	}
}

// The PUBACK/PUBREC goes out only after Handle returned.
func TestAckWaitsForHandle(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			rec := &recorder{decide: func(ctx context.Context, m Message) error {
				close(entered)
				<-release
				return nil
			}}
			tb := startBroker(t, testConfig(), rec)
			c := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "dev-1", nil)
			tok := c.Publish("t", qos, false, "x")
			<-entered
			select {
			case <-tok.Done():
				t.Fatal("publish completed while Handle was still running")
			case <-time.After(100 * time.Millisecond):
			}
			close(release)
			mqtttest.Wait(t, tok, "publish")
		})
	}
}

// MQTT 3.1.1 + ErrOverloaded: no PUBACK, connection closed; the reconnecting
// persistent client resends and the message is stored on the second try.
func TestV3OverloadedResendAfterReconnect(t *testing.T) {
	var calls, stored atomic.Int32
	rec := &recorder{decide: func(ctx context.Context, m Message) error {
		if calls.Add(1) == 1 {
			return fmt.Errorf("buffer full: %w", ErrOverloaded)
		}
		stored.Add(1)
		return nil
	}}
	tb := startBroker(t, testConfig(), rec)
	var lost atomic.Int32
	c := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "dev-persistent", func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(time.Second).
			SetConnectionLostHandler(func(paho.Client, error) { lost.Add(1) })
	})
	mqtttest.Wait(t, c.Publish("t", 1, false, "important"), "publish")
	// paho v1.5.1 completes the token when it resends the message after the
	// reconnect (resume re-claims the message id: eclipse/paho.mqtt.golang
	// #563), i.e. possibly before the PUBACK; the handler is what counts.
	eventually(t, "message stored after reconnect", func() bool { return stored.Load() == 1 })
	msgs := rec.all()
	if len(msgs) != 2 || string(msgs[0].Payload) != "important" || string(msgs[1].Payload) != "important" {
		t.Fatalf("handler saw %+v, want the message twice", msgs)
	}
	if lost.Load() != 1 {
		t.Errorf("connection lost %d times, want 1", lost.Load())
	}
	if got := tb.metric(t, `edgegate_mqtt_overload_disconnects_total`); got != "1" {
		t.Errorf("overload_disconnects = %s", got)
	}
	if got := tb.metric(t, `edgegate_mqtt_handler_errors_total{kind="overloaded"}`); got != "1" {
		t.Errorf("handler_errors overloaded = %s", got)
	}
}

// On the wire: MQTT 3.1.1 QoS 1/2 overloaded gets no acknowledgement before
// the connection is closed; unexpected errors are treated the same.
func TestV3OverloadedNoAckBeforeClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		qos  byte
		err  error
		kind string
	}{
		{"qos1", 1, ErrOverloaded, "overloaded"},
		{"qos2", 2, ErrOverloaded, "overloaded"},
		{"unexpected error", 1, errors.New("disk on fire"), "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := startBroker(t, testConfig(), &recorder{decide: func(context.Context, Message) error { return tc.err }})
			rc, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "raw-1", false)
			rc.Publish("t", []byte("x"), tc.qos, 7, packets.Properties{})
			pk, err := rc.Read()
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				t.Fatalf("got packet %+v err %v, want the connection closed without an ack", pk.FixedHeader, err)
			}
			if got := tb.metric(t, fmt.Sprintf(`edgegate_mqtt_handler_errors_total{kind=%q}`, tc.kind)); got != "1" {
				t.Errorf("handler_errors %s = %s", tc.kind, got)
			}
		})
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// MQTT 3.1.1 + ErrRejected: acknowledged (no endless resend), not delivered.
// QoS 0 with ErrOverloaded: dropped and counted.
func TestV3RejectedAckedNotDelivered(t *testing.T) {
	rec := &recorder{decide: byPayload(map[string]error{
		"bad":  fmt.Errorf("not json: %w", ErrRejected),
		"busy": ErrOverloaded,
	})}
	tb := startBroker(t, testConfig(), rec)
	got := make(chan string, 10)
	sub := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "sub", nil)
	mqtttest.Wait(t, sub.Subscribe("t", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }), "subscribe")

	dev := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "dev", nil)
	mqtttest.Wait(t, dev.Publish("t", 1, false, "bad"), "publish rejected qos1")
	mqtttest.Wait(t, dev.Publish("t", 2, false, "bad"), "publish rejected qos2")
	mqtttest.Wait(t, dev.Publish("t", 0, false, "busy"), "publish overloaded qos0")
	mqtttest.Wait(t, dev.Publish("t", 1, false, "good"), "publish good")
	select {
	case p := <-got:
		if p != "good" {
			t.Fatalf("subscriber received %q first, want only %q", p, "good")
		}
	case <-time.After(waitLong):
		t.Fatal("subscriber received nothing")
	}
	if n := tb.metric(t, `edgegate_mqtt_handler_errors_total{kind="rejected"}`); n != "2" {
		t.Errorf("handler_errors rejected = %s, want 2", n)
	}
	if n := tb.metric(t, `edgegate_mqtt_messages_dropped_total{reason="overloaded"}`); n != "1" {
		t.Errorf("dropped overloaded = %s, want 1", n)
	}
	if !dev.IsConnectionOpen() {
		t.Error("device was disconnected")
	}
}

// Broker.Publish reaches local subscribers but never the Handler; $SYS
// flows to subscribers but never to the Handler; device publishes to '$'
// topics are refused without reaching the Handler.
func TestInlineAndReservedTopicsBypassHandler(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(), rec)
	sub := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "sub", nil)
	got := mqtttest.Subscribe(t, sub, "cmd/#", 1)
	sys := make(chan string, 100)
	mqtttest.Wait(t, sub.Subscribe("$SYS/#", 0, func(_ paho.Client, m paho.Message) { sys <- m.Topic() }), "subscribe $SYS")

	if err := tb.Publish("cmd/dev-1/led", []byte("on"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Topic() != "cmd/dev-1/led" || string(m.Payload()) != "on" || m.Qos() != 1 {
			t.Errorf("subscriber got %s %q qos %d", m.Topic(), m.Payload(), m.Qos())
		}
	case <-time.After(waitLong):
		t.Fatal("subscriber did not receive the published message")
	}
	select {
	case <-sys:
	case <-time.After(waitLong):
		t.Fatal("no $SYS message")
	}

	dev := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "dev", nil)
	mqtttest.Wait(t, dev.Publish("$edge/x", 1, false, "spoof"), "publish $edge")
	rc, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev5", true)
	rc.Publish("$edge/y", []byte("spoof"), 1, 1, packets.Properties{})
	if ack, err := rc.Read(); err != nil || ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != packets.ErrTopicNameInvalid.Code {
		t.Errorf("v5 publish to $edge: got %+v (reason %#x) %v, want PUBACK 0x90", ack.FixedHeader, ack.ReasonCode, err)
	}
	mqtttest.Wait(t, dev.Publish("data/end", 1, false, "end"), "publish end")
	if msgs := rec.all(); len(msgs) != 1 || msgs[0].Topic != "data/end" {
		t.Errorf("handler saw %+v, want only data/end", msgs)
	}
	if n := tb.metric(t, `edgegate_mqtt_messages_dropped_total{reason="reserved_topic"}`); n != "2" {
		t.Errorf("dropped reserved_topic = %s, want 2", n)
	}

	for _, bad := range []string{"", "a/+", "a/#", "$SYS/x", "a\x00b", "\xff"} {
		if err := tb.Publish(bad, nil, false, 0); err == nil {
			t.Errorf("Publish(%q) succeeded", bad)
		}
	}
	if err := tb.Publish("a", nil, false, 3); err == nil {
		t.Error("Publish with qos 3 succeeded")
	}
}

func TestOversizedPacketRefused(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(), rec) // 1 MiB
	big := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "big", nil)
	big.Publish("t", 1, false, bytes.Repeat([]byte{'x'}, 2<<20)).WaitTimeout(waitLong)
	eventually(t, "too large counted", func() bool { return tb.metric(t, "edgegate_mqtt_messages_too_large_total") == "1" })

	other := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "other", nil)
	mqtttest.Wait(t, other.Publish("t", 1, false, "small"), "publish after oversized")
	if msgs := rec.all(); len(msgs) != 1 || string(msgs[0].Payload) != "small" {
		t.Errorf("handler saw %d messages, want only the small one", len(msgs))
	}
}

func TestRunBindErrorNamesListener(t *testing.T) {
	occupied, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer occupied.Close()
	cfg := testConfig(
		ListenerConfig{ID: "ok", Type: TypeTCP, Address: "127.0.0.1:0"},
		ListenerConfig{ID: "devices-ws", Type: TypeWebsocket, Address: occupied.Addr().String()},
	)
	b, err := New(cfg, &recorder{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "devices-ws") {
		t.Fatalf("Run = %v, want an error naming devices-ws", err)
	}
	select {
	case <-b.Ready():
		t.Error("Ready closed after a failed bind")
	default:
	}
	if err := b.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestWebsocketListener(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(ListenerConfig{ID: "ws", Type: TypeWebsocket, Address: "127.0.0.1:0"}), rec)
	c := mqtttest.Connect(t, "ws://"+tb.addr("ws")+"/mqtt", "ws-dev", nil)
	mqtttest.Wait(t, c.Publish("ws/t", 1, false, bytes.Repeat([]byte("ws"), 5000)), "publish over websocket")
	if msgs := rec.all(); len(msgs) != 1 || msgs[0].Topic != "ws/t" || len(msgs[0].Payload) != 10000 {
		t.Fatalf("handler saw %+v", msgs)
	}
}

// Run returns after cancel, with a Handle call blocked until its ctx is
// cancelled, a client that never sent CONNECT, MQTT 3.1.1, MQTT 5 and
// websocket clients connected, and leaves no goroutine behind.
func TestRunStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	entered := make(chan struct{})
	rec := &recorder{decide: func(ctx context.Context, m Message) error {
		if m.Topic == "block" {
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}}
	cfg := testConfig(
		ListenerConfig{ID: "tcp", Type: TypeTCP, Address: "127.0.0.1:0"},
		ListenerConfig{ID: "ws", Type: TypeWebsocket, Address: "127.0.0.1:0"},
	)
	b, err := New(cfg, rec, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- b.Run(ctx) }()
	<-b.Ready()

	silent, err := net.Dial("tcp", b.Addr("tcp").String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	v3 := mqtttest.Connect(t, "tcp://"+b.Addr("tcp").String(), "v3", nil)
	ws := mqtttest.Connect(t, "ws://"+b.Addr("ws").String(), "ws", nil)
	mqtttest.Wait(t, ws.Publish("x", 1, false, "x"), "ws publish")
	v5, _ := mqtttest.DialRaw(t, b.Addr("tcp").String(), 5, "v5", true)
	v3.Publish("block", 1, false, "x")
	<-entered
	eventually(t, "3 clients", func() bool { return b.Clients() == 3 })

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Run did not return")
	}
	if pk, err := v5.Read(); err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrServerShuttingDown.Code {
		t.Errorf("v5 client got %+v %v, want DISCONNECT 0x8B", pk.FixedHeader, err)
	}
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Error("connection without CONNECT still open")
	}
	v3.Disconnect(0)
	ws.Disconnect(0)
	v5.Conn.Close()
	silent.Close()
	eventually(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before+1 })
}

func TestNewRejectsBadInput(t *testing.T) {
	if _, err := New(Config{}, &recorder{}, nil, nil); err == nil {
		t.Error("New accepted an empty config")
	}
	if _, err := New(DefaultConfig(), nil, nil, nil); err == nil {
		t.Error("New accepted a nil handler")
	}
}

func TestInlineClientIDRefused(t *testing.T) {
	tb := startBroker(t, testConfig(), &recorder{})
	if c, err := mqtttest.Dial("tcp://"+tb.addr("tcp"), "inline"); err == nil {
		c.Disconnect(0)
		t.Fatal("client id \"inline\" was accepted")
	}
	if err := tb.Publish("still/works", nil, false, 0); err != nil {
		t.Fatal(err)
	}
}
