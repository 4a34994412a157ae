package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// seen is one call a presenceRecorder got: a message, a will or a
// presence change, in the order they came.
type seen struct {
	kind     string // "message", "will", "connected", "disconnected"
	m        Message
	p        Presence
	ctxAlive bool // the call's ctx was not done
}

// presenceRecorder is a Handler and a PresenceHandler that records every
// call in order.
type presenceRecorder struct {
	mu    sync.Mutex
	calls []seen
	fail  error // returned by Presence and Will
}

func (r *presenceRecorder) add(s seen) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
	return r.fail
}

func (r *presenceRecorder) Handle(ctx context.Context, m Message) error {
	m.Payload = append([]byte(nil), m.Payload...)
	r.add(seen{kind: "message", m: m, ctxAlive: ctx.Err() == nil})
	return nil
}

func (r *presenceRecorder) Will(ctx context.Context, m Message) error {
	m.Payload = append([]byte(nil), m.Payload...)
	return r.add(seen{kind: "will", m: m, ctxAlive: ctx.Err() == nil})
}

func (r *presenceRecorder) Presence(ctx context.Context, p Presence) error {
	kind := "disconnected"
	if p.Connected {
		kind = "connected"
	}
	return r.add(seen{kind: kind, p: p, ctxAlive: ctx.Err() == nil})
}

// of returns the calls for client id, in order.
func (r *presenceRecorder) of(id string) []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []seen
	for _, s := range r.calls {
		if s.m.ClientID == id || s.p.ClientID == id {
			out = append(out, s)
		}
	}
	return out
}

func kinds(calls []seen) string {
	var s string
	for i, c := range calls {
		if i > 0 {
			s += " "
		}
		s += c.kind
	}
	return s
}

// waitFor waits until client id's calls are want (kinds, space separated).
func (r *presenceRecorder) waitFor(t *testing.T, id, want string) []seen {
	t.Helper()
	eventually(t, id+": "+want, func() bool { return kinds(r.of(id)) == want })
	return r.of(id)
}

// droppingDial connects a paho client with a will and returns it with a
// function that drops its connection without DISCONNECT.
func droppingDial(t *testing.T, addr, id, willTopic, willPayload string) (paho.Client, func()) {
	t.Helper()
	c, drop, err := mqtttest.DialDroppable("tcp://"+addr, id, func(o *paho.ClientOptions) {
		o.SetWill(willTopic, willPayload, 1, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, drop
}

// A device's session: connected before its first message, disconnected
// after, with its identity, listener and remote address; a normal
// DISCONNECT sends no will.
func TestPresenceConnectDisconnect(t *testing.T) {
	rec := &presenceRecorder{}
	tb := startBroker(t, testConfig(), rec)
	c, _ := droppingDial(t, tb.addr("tcp"), "dev-1", "devices/dev-1/status", "offline")
	mqtttest.Publish(t, c, "devices/dev-1/telemetry", 1, "21.5")
	c.Disconnect(100)
	calls := rec.waitFor(t, "dev-1", "connected message disconnected")
	con, dis := calls[0].p, calls[2].p
	if con.ClientID != "dev-1" || con.AuthMethod != AuthAnonymous || con.Listener != "tcp" || con.ProtocolVersion != 4 ||
		con.RemoteAddr == "" || con.Time.IsZero() || con.Reason != "" {
		t.Errorf("connected: %+v", con)
	}
	if dis.Reason != ReasonDisconnect || dis.Detail != "" || dis.RemoteAddr != con.RemoteAddr {
		t.Errorf("disconnected: %+v", dis)
	}
	if tb.metric(t, `edgegate_mqtt_presence_not_stored_total{event="connected"}`) != "0" {
		t.Error("presence counted as not stored")
	}
}

// A connection lost without DISCONNECT: the broker publishes the will to
// subscribers, hands it to Will as the device's message, then reports the
// disconnect.
func TestPresenceWillOnLostConnection(t *testing.T) {
	rec := &presenceRecorder{}
	tb := startBroker(t, testConfig(), rec)
	sub := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "watcher")
	wills := mqtttest.Subscribe(t, sub, "devices/+/status", 1)

	_, drop := droppingDial(t, tb.addr("tcp"), "door-1", "devices/door-1/status", `{"online":false}`)
	rec.waitFor(t, "door-1", "connected")
	drop()
	calls := rec.waitFor(t, "door-1", "connected will disconnected")
	w := calls[1].m
	if w.Topic != "devices/door-1/status" || string(w.Payload) != `{"online":false}` || w.QoS != 1 ||
		w.ClientID != "door-1" || w.AuthMethod != AuthAnonymous || !calls[1].ctxAlive {
		t.Errorf("will: %+v", w)
	}
	if r := calls[2].p.Reason; r != ReasonConnectionLost {
		t.Errorf("disconnect reason %q (%s), want %s", r, calls[2].p.Detail, ReasonConnectionLost)
	}
	select {
	case m := <-wills:
		if string(m.Payload()) != `{"online":false}` {
			t.Errorf("subscriber got %q", m.Payload())
		}
	case <-time.After(waitLong):
		t.Error("subscriber got no will")
	}
}

// A will the device may not publish is removed at connect: never sent to
// subscribers, never handed to Will, counted.
func TestWillRemoved(t *testing.T) {
	rec := &presenceRecorder{}
	cfg := testConfig()
	cfg.MaxPayloadBytes = 16
	cfg.Limits.MaxTopicLevels = 3
	tb := startBroker(t, cfg, rec)
	sub := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "watcher")
	sys := mqtttest.Subscribe(t, sub, "$SYS/forged", 0)

	for _, tc := range []struct{ id, topic, payload, metric string }{
		{"sys", "$SYS/forged", "x", `edgegate_mqtt_wills_dropped_total{reason="reserved_topic"}`},
		{"big", "devices/big/status", "0123456789abcdefg", `edgegate_mqtt_wills_dropped_total{reason="too_large"}`},
		{"deep", "devices/deep/status/x", "x", `edgegate_mqtt_wills_dropped_total{reason="topic_limit"}`},
	} {
		_, drop := droppingDial(t, tb.addr("tcp"), tc.id, tc.topic, tc.payload)
		rec.waitFor(t, tc.id, "connected")
		drop()
		rec.waitFor(t, tc.id, "connected disconnected")
		if got := tb.metric(t, tc.metric); got != "1" {
			t.Errorf("%s = %s, want 1", tc.metric, got)
		}
	}
	// mochi would have delivered a will before the disconnect was
	// reported; a message published now arrives after it.
	if err := tb.srv.Publish("$SYS/forged", []byte("sentinel"), false, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-sys:
		if string(m.Payload()) != "sentinel" {
			t.Errorf("subscriber to $SYS got %q", m.Payload())
		}
	case <-time.After(waitLong):
		t.Error("no sentinel")
	}
}

// At shutdown every device gets a disconnected event (and its will) with
// a context that is still alive, so the gateway can store them.
func TestPresenceAtShutdown(t *testing.T) {
	rec := &presenceRecorder{}
	b, err := New(testConfig(), rec, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	<-b.Ready()
	_, _ = droppingDial(t, b.Addr("tcp").String(), "dev-s", "devices/dev-s/status", "gone")
	rec.waitFor(t, "dev-s", "connected")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	calls := rec.of("dev-s")
	if kinds(calls) != "connected will disconnected" {
		t.Fatalf("calls %q", kinds(calls))
	}
	for _, c := range calls[1:] {
		if !c.ctxAlive {
			t.Errorf("%s: ctx already done", c.kind)
		}
	}
	if r := calls[2].p.Reason; r != ReasonServerShutdown {
		t.Errorf("reason %q, want %s", r, ReasonServerShutdown)
	}
}

// Presence errors are counted, not fatal: the device's messages still flow.
func TestPresenceNotStoredCounted(t *testing.T) {
	rec := &presenceRecorder{fail: errors.New("buffer full")}
	tb := startBroker(t, testConfig(), rec)
	c, drop := droppingDial(t, tb.addr("tcp"), "dev-f", "devices/dev-f/status", "x")
	mqtttest.Publish(t, c, "devices/dev-f/t", 1, "1")
	drop()
	rec.waitFor(t, "dev-f", "connected message will disconnected")
	for _, ev := range []string{"connected", "will", "disconnected"} {
		name := fmt.Sprintf(`edgegate_mqtt_presence_not_stored_total{event=%q}`, ev)
		eventually(t, name, func() bool { return tb.metric(t, name) == "1" })
	}
}

func TestDisconnectReason(t *testing.T) {
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		cause, err error
		want       string
	}{
		{nil, nil, ReasonDisconnect},
		{packets.CodeDisconnect, nil, ReasonDisconnect},
		{packets.CodeDisconnectWillMessage, packets.CodeDisconnectWillMessage, ReasonDisconnectWithWill},
		{io.EOF, io.EOF, ReasonConnectionLost},
		{nil, fmt.Errorf("read: %w", net.ErrClosed), ReasonConnectionLost},
		{timeout, timeout, ReasonKeepAliveTimeout},
		{packets.ErrSessionTakenOver, io.EOF, ReasonTakenOver},
		{packets.ErrServerShuttingDown, net.ErrClosed, ReasonServerShutdown},
		{packets.ErrQuotaExceeded, nil, ReasonOverloaded},
		{packets.ErrPacketTooLarge, packets.ErrPacketTooLarge, ReasonPacketTooLarge},
		{packets.ErrMessageRateTooHigh, packets.ErrRejectPacket, ReasonRateLimited},
		{packets.ErrProtocolViolationInvalidTopic, nil, ReasonProtocolError},
		{errors.New("strange"), nil, ReasonError},
	} {
		if got, _ := disconnectReason(tc.cause, tc.err); got != tc.want {
			t.Errorf("disconnectReason(%v, %v) = %s, want %s", tc.cause, tc.err, got, tc.want)
		}
	}
}
