package mqtt

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// held is an AsyncHandler whose messages are stored only when the test
// says so (store), like a buffer whose group commit is held back: Begin
// records the message, Wait waits for its storage.
type held struct {
	mu     sync.Mutex
	begun  []Message
	stores map[string]chan struct{} // by payload; closed: stored
	stored []string                 // payloads whose Wait returned nil, in order
	fail   map[string]error         // payload → Wait's error, once
	seen   map[string]bool          // client/packet id/payload stored: a DUP resend of one is not stored again
	auto   bool                     // store at once
}

func newHeld() *held {
	return &held{stores: map[string]chan struct{}{}, fail: map[string]error{}, seen: map[string]bool{}}
}

func (h *held) Handle(ctx context.Context, m Message) error {
	p, err := h.Begin(ctx, m)
	if err != nil || p == nil {
		return err
	}
	return p.Wait(ctx)
}

func (h *held) Begin(_ context.Context, m Message) (Pending, error) {
	m.Payload = bytes.Clone(m.Payload)
	h.mu.Lock()
	defer h.mu.Unlock()
	key := fmt.Sprintf("%s/%d/%s", m.ClientID, m.PacketID, m.Payload)
	if m.Dup && h.seen[key] {
		return nil, nil // stored already: ack again
	}
	h.begun = append(h.begun, m)
	return &heldPending{h: h, m: m, key: key, ch: h.storeChan(string(m.Payload))}, nil
}

// storeChan returns payload's storage signal; mu is held.
func (h *held) storeChan(payload string) chan struct{} {
	ch := h.stores[payload]
	if ch == nil {
		ch = make(chan struct{})
		h.stores[payload] = ch
		if h.auto {
			close(ch)
		}
	}
	return ch
}

// store lets the message with payload be stored.
func (h *held) store(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.storeChan(payload))
}

func (h *held) begins() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.begun)
}

func (h *held) storedPayloads() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.stored...)
}

type heldPending struct {
	h   *held
	m   Message
	key string
	ch  chan struct{}
}

func (p *heldPending) Ready() bool {
	select {
	case <-p.ch:
		return true
	default:
		return false
	}
}

func (p *heldPending) Wait(ctx context.Context) error {
	select {
	case <-p.ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	h := p.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.fail[string(p.m.Payload)]; err != nil {
		delete(h.fail, string(p.m.Payload))
		return err
	}
	h.seen[p.key] = true
	h.stored = append(h.stored, string(p.m.Payload))
	return nil
}

// noAck fails the test if rc receives a packet within d.
func noAck(t *testing.T, rc *mqtttest.Raw, d time.Duration, what string) {
	t.Helper()
	_ = rc.Conn.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	if n, _ := rc.Conn.Read(b[:]); n > 0 {
		t.Fatalf("%s: the broker wrote (first byte %#x) before the message was stored", what, b[0])
	}
}

// A device with 64 QoS 1 publishes outstanding has all of them begun at
// once (one commit round, not 64), gets no PUBACK before its message is
// stored, and gets the PUBACKs in publish order however the storage
// completes.
func TestPipelineAcksAfterStorageInOrder(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run("v"+strconv.Itoa(int(v)), func(t *testing.T) {
			h := newHeld()
			tb := startBroker(t, testConfig(), h)
			dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), v, "dev", true)
			const n = 64
			for i := range n {
				dev.Publish("t", []byte(strconv.Itoa(i)), 1, uint16(i+1), packets.Properties{})
			}
			eventually(t, "64 publishes begun", func() bool { return h.begins() == n })
			noAck(t, dev, 100*time.Millisecond, "nothing stored")
			tb.wantMetric(t, "edgegate_mqtt_publishes_pending", "64")

			// Storage completes newest first: still no ack until the
			// first is stored, then every ack in publish order.
			for i := n - 1; i >= 1; i-- {
				h.store(strconv.Itoa(i))
			}
			noAck(t, dev, 100*time.Millisecond, "the first message not stored")
			h.store("0")
			for i := range n {
				readAck(t, dev, "pipelined", packets.Puback, uint16(i+1), 0)
			}
			dev.Ping()
			tb.wantMetric(t, "edgegate_mqtt_publishes_pending", "0")
			// Fed back into mochi, a message is still counted once ($SYS).
			if got := atomic.LoadInt64(&tb.srv.Info.MessagesReceived); got != n {
				t.Errorf("mochi counted %d messages received, want %d", got, n)
			}
			if got := h.storedPayloads(); len(got) != n || got[0] != "0" || got[n-1] != strconv.Itoa(n-1) {
				t.Errorf("stored %v, want 0..63 in order", got)
			}
		})
	}
}

// With paho's asynchronous publish, 64 outstanding QoS 1 messages all
// complete, each after it was stored.
func TestPipelinePahoOutstanding(t *testing.T) {
	h := newHeld()
	tb := startBroker(t, testConfig(), h)
	c := mqtttest.Connect(t, tb.addr("tcp"), "paho")
	const n = 64
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = c.Publish("t", 1, false, strconv.Itoa(i))
	}
	eventually(t, "64 publishes begun", func() bool { return h.begins() == n })
	for i, tok := range toks {
		if tok.WaitTimeout(50 * time.Millisecond) {
			t.Fatalf("publish %d acknowledged before it was stored", i)
		}
	}
	for i := range n {
		h.store(strconv.Itoa(i))
		mqtttest.Wait(t, toks[i], "publish "+strconv.Itoa(i))
	}
}

// A full publish window stops the reads of the connection (backpressure):
// at most publish_window messages are begun before the oldest is stored.
// The window is at most the receive maximum (max_inflight) the broker
// advertises; an MQTT 5 device that sends more than that unacknowledged is
// slowed down the same way, not disconnected.
func TestPipelineWindowBackpressure(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		window, inflight, max int
	}{
		{"publish_window", 4, 1024, 4},
		{"receive maximum", 64, 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHeld()
			cfg := testConfig()
			cfg.Limits.PublishWindow = tc.window
			cfg.MaxInflight = tc.inflight
			tb := startBroker(t, cfg, h)
			dev, connack := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev", true)
			if got := connack.Properties.ReceiveMaximum; int(got) != tc.inflight {
				t.Fatalf("CONNACK receive maximum %d, want %d", got, tc.inflight)
			}
			for i := range 10 {
				dev.Publish("t", []byte(strconv.Itoa(i)), 1, uint16(i+1), packets.Properties{})
			}
			eventually(t, "the window full", func() bool { return h.begins() == tc.max })
			time.Sleep(50 * time.Millisecond)
			if n := h.begins(); n != tc.max {
				t.Fatalf("%d messages begun with a window of %d", n, tc.max)
			}
			if got := tb.metric(t, "edgegate_mqtt_publish_window_full_total"); got == "0" {
				t.Error("the full window was not counted")
			}
			for i := range 10 {
				h.store(strconv.Itoa(i))
				readAck(t, dev, "windowed", packets.Puback, uint16(i+1), 0)
			}
			dev.Ping() // still connected
		})
	}
}

// Local subscribers get pipelined messages after storage, in publish order
// across QoS 0, 1 and 2; a NoLocal subscription of the publisher gets none;
// the last retained message is what a later subscriber gets.
func TestPipelineDeliveryOrderNoLocalRetained(t *testing.T) {
	h := newHeld()
	tb := startBroker(t, testConfig(), h)

	sub := mqtttest.Connect(t, tb.addr("tcp"), "sub")
	got := mqtttest.Subscribe(t, sub, "mixed/#", 2)

	dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev", true)
	dev.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: "mixed/#", Qos: 1, NoLocal: true}},
	})
	if pk, err := dev.Read(); err != nil || pk.FixedHeader.Type != packets.Suback {
		t.Fatalf("suback: %+v %v", pk.FixedHeader, err)
	}

	// QoS 0 and 1 pipelined, held; then a QoS 2 waits for them.
	qos := []byte{0, 1, 0, 1, 1, 0}
	for i, q := range qos {
		id := uint16(0)
		if q > 0 {
			id = uint16(10 + i)
		}
		dev.Publish("mixed/"+strconv.Itoa(i), []byte(strconv.Itoa(i)), q, id, packets.Properties{})
	}
	eventually(t, "pipelined begun", func() bool { return h.begins() == len(qos) })
	select {
	case m := <-got:
		t.Fatalf("subscriber got %q before it was stored", m.Payload())
	case <-time.After(50 * time.Millisecond):
	}
	h.mu.Lock()
	h.auto = true // the QoS 2 message and the retained ones: stored at once
	h.mu.Unlock()
	go func() {
		for i := len(qos) - 1; i >= 0; i-- {
			h.store(strconv.Itoa(i))
		}
	}()
	dev.Publish("mixed/q2", []byte("q2"), 2, 30, packets.Properties{})
	var acks []uint16
	for len(acks) < 4 { // three PUBACKs and a PUBREC
		pk, err := dev.Read()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if pk.FixedHeader.Type == packets.Publish {
			t.Fatalf("NoLocal subscription got its own message %q", pk.Payload)
		}
		acks = append(acks, pk.PacketID)
	}
	if fmt.Sprint(acks) != "[11 13 14 30]" {
		t.Errorf("acks for packet ids %v, want [11 13 14 30]", acks)
	}
	pubrel(dev, 30)
	readAck(t, dev, "qos 2", packets.Pubcomp, 30, 0)
	for _, want := range []string{"0", "1", "2", "3", "4", "5", "q2"} {
		select {
		case m := <-got:
			if string(m.Payload()) != want {
				t.Fatalf("subscriber got %q, want %q (publish order)", m.Payload(), want)
			}
		case <-time.After(waitLong):
			t.Fatalf("subscriber did not get %q", want)
		}
	}

	for i := range 5 {
		dev.Send(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
			TopicName:   "kept", Payload: []byte("v" + strconv.Itoa(i)), PacketID: uint16(40 + i),
		})
	}
	for i := range 5 {
		readAck(t, dev, "retained", packets.Puback, uint16(40+i), 0)
	}
	later := mqtttest.Connect(t, tb.addr("tcp"), "later")
	select {
	case m := <-mqtttest.Subscribe(t, later, "kept", 1):
		if string(m.Payload()) != "v4" || !m.Retained() {
			t.Errorf("retained %q (retained flag %v), want v4", m.Payload(), m.Retained())
		}
	case <-time.After(waitLong):
		t.Fatal("no retained message")
	}
}

// A device that disconnects with publishes being stored: they are all
// finished (stored, their acks dropped), and the worker goroutine ends.
func TestPipelineDisconnectWithPendingWork(t *testing.T) {
	h := newHeld()
	tb := startBroker(t, testConfig(), h)
	before := runtime.NumGoroutine()
	dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "dev", true)
	for i := range 10 {
		dev.Publish("t", []byte(strconv.Itoa(i)), 1, uint16(i+1), packets.Properties{})
	}
	eventually(t, "pipelined begun", func() bool { return h.begins() == 10 })
	_ = dev.Conn.Close()
	time.Sleep(50 * time.Millisecond)
	for i := range 10 {
		h.store(strconv.Itoa(i))
	}
	eventually(t, "all stored", func() bool { return len(h.storedPayloads()) == 10 })
	eventually(t, "the pipeline empty", func() bool { return tb.metric(t, "edgegate_mqtt_publishes_pending") == "0" })
	eventually(t, "the connection's goroutines gone", func() bool { return runtime.NumGoroutine() <= before })
}

// Shutdown with publishes whose storage never completes: Run returns
// (the waits are cancelled after the grace), the device got no ack.
func TestPipelineShutdownWithStuckStorage(t *testing.T) {
	h := newHeld()
	b, cancel, done := runBroker(t, testConfig(), h)
	dev, _ := mqtttest.DialRaw(t, b.Addr("tcp").String(), 5, "dev", true)
	for i := range 3 {
		dev.Publish("t", []byte(strconv.Itoa(i)), 1, uint16(i+1), packets.Properties{})
	}
	eventually(t, "pipelined begun", func() bool { return h.begins() == 3 })
	stopBroker(t, cancel, done, shutdownGrace+waitLong) // storage stuck
	if pk, err := dev.Read(); err == nil && pk.FixedHeader.Type == packets.Puback {
		t.Errorf("got PUBACK %d for a message never stored", pk.PacketID)
	}
}

// MQTT 3.1.1: a pipelined message that cannot be stored closes the
// connection without its ack; the messages after it that were stored are
// not acked either, and when the device resends them (DUP) after
// reconnecting they are recognised, not stored twice.
func TestPipelineOverloadClosesV311(t *testing.T) {
	h := newHeld()
	h.storeChan("4") // held until all ten are begun
	h.auto = true
	h.fail["4"] = fmt.Errorf("disk low: %w", ErrOverloaded)
	tb := startBroker(t, testConfig(), h)
	dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "dev", false)
	for i := range 10 {
		dev.Publish("t", []byte(strconv.Itoa(i)), 1, uint16(i+1), packets.Properties{})
	}
	eventually(t, "all begun", func() bool { return h.begins() == 10 })
	h.store("4")
	for i := range 4 {
		readAck(t, dev, "before the failure", packets.Puback, uint16(i+1), 0)
	}
	if pk, err := dev.Read(); err == nil {
		t.Fatalf("got %+v after the unstored message, want the connection closed", pk.FixedHeader)
	}
	eventually(t, "the rest stored", func() bool { return len(h.storedPayloads()) == 9 })
	tb.wantMetric(t, "edgegate_mqtt_overload_disconnects_total", "1")

	dev, ack := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "dev", false)
	if !ack.SessionPresent {
		t.Fatal("session lost")
	}
	for i := 4; i < 10; i++ {
		dev.Send(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: true},
			TopicName:   "t", Payload: []byte(strconv.Itoa(i)), PacketID: uint16(i + 1),
		})
	}
	for i := 4; i < 10; i++ {
		readAck(t, dev, "resent", packets.Puback, uint16(i+1), 0)
	}
	if got := h.storedPayloads(); fmt.Sprint(got) != "[0 1 2 3 5 6 7 8 9 4]" {
		t.Errorf("stored %v, want each once: [0 1 2 3 5 6 7 8 9 4]", got)
	}
}

// A resend (DUP) is begun only once the message it resends is stored, on
// the same connection (paho sends a message and then, after a reconnect
// race, its resend) and across a session takeover: the handler recognises
// it and it is stored once.
func TestPipelineResendWaitsForOriginal(t *testing.T) {
	dup := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: true},
		TopicName:   "t", Payload: []byte("a"), PacketID: 1,
	}
	t.Run("same connection", func(t *testing.T) {
		h := newHeld()
		tb := startBroker(t, testConfig(), h)
		dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "dev", true)
		dev.Publish("t", []byte("a"), 1, 1, packets.Properties{})
		dev.Send(dup)
		eventually(t, "the original begun", func() bool { return h.begins() == 1 })
		time.Sleep(50 * time.Millisecond)
		if n := h.begins(); n != 1 {
			t.Fatalf("the resend was begun before the original was stored (%d begun)", n)
		}
		h.store("a")
		readAck(t, dev, "original", packets.Puback, 1, 0)
		readAck(t, dev, "resend", packets.Puback, 1, 0)
		if got := h.storedPayloads(); len(got) != 1 {
			t.Errorf("stored %v, want the message once", got)
		}
	})
	t.Run("takeover", func(t *testing.T) {
		h := newHeld()
		tb := startBroker(t, testConfig(), h)
		old, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "dev", false)
		old.Publish("t", []byte("a"), 1, 1, packets.Properties{})
		eventually(t, "the original begun", func() bool { return h.begins() == 1 })
		go func() {
			time.Sleep(50 * time.Millisecond)
			h.store("a")
		}()
		dev, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "dev", false)
		dev.Send(dup)
		readAck(t, dev, "resend", packets.Puback, 1, 0)
		if got := h.storedPayloads(); len(got) != 1 || h.begins() != 1 {
			t.Errorf("stored %v (%d begun), want the message once", got, h.begins())
		}
	})
}
