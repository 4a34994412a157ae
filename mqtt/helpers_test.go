package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/mochi-mqtt/server/v2/packets"
)

const waitLong = 10 * time.Second // upper bound for things that should happen at once

// recorder is a Handler that records copies of every message and answers
// with decide (nil decide: accept).
type recorder struct {
	mu     sync.Mutex
	msgs   []Message
	decide func(ctx context.Context, m Message) error
	notify chan Message // optional, gets every message after decide returned
}

func (r *recorder) Handle(ctx context.Context, m Message) error {
	m.Payload = bytes.Clone(m.Payload)
	var err error
	if r.decide != nil {
		err = r.decide(ctx, m)
	}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	if r.notify != nil {
		r.notify <- m
	}
	return err
}

func (r *recorder) all() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// testBroker runs a broker on 127.0.0.1:0 until the test ends.
type testBroker struct {
	*Broker
	set *metrics.Set
	err chan error
}

func testConfig(listeners ...ListenerConfig) Config {
	cfg := DefaultConfig()
	cfg.Listeners = []ListenerConfig{{ID: "tcp", Type: TypeTCP, Address: "127.0.0.1:0"}}
	if len(listeners) > 0 {
		cfg.Listeners = listeners
	}
	return cfg
}

func startBroker(t testing.TB, cfg Config, h Handler) *testBroker {
	t.Helper()
	set := metrics.NewSet()
	b, err := New(cfg, h, nil, set)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb := &testBroker{Broker: b, set: set, err: make(chan error, 1)}
	go func() { tb.err <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-tb.err:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLong):
			t.Errorf("Run did not return after cancel")
		}
	})
	select {
	case <-b.Ready():
	case err := <-tb.err:
		t.Fatalf("Run: %v", err)
	case <-time.After(waitLong):
		t.Fatal("broker not ready")
	}
	return tb
}

func (tb *testBroker) addr(id string) string { return tb.Addr(id).String() }

// metric returns the current value of one metric line, e.g.
// `edgegate_mqtt_handler_errors_total{kind="overloaded"}`.
func (tb *testBroker) metric(t testing.TB, name string) string {
	t.Helper()
	var buf bytes.Buffer
	tb.set.WritePrometheus(&buf)
	for line := range strings.Lines(buf.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	t.Fatalf("metric %s not found in\n%s", name, buf.String())
	return ""
}

// eventually polls cond until it holds or waitLong passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawClient speaks MQTT over a plain connection using mochi's packet codec,
// to see exactly what the broker writes (reason codes, missing acks).
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
	v    byte
}

func dialRaw(t testing.TB, addr string, version byte, id string, clean bool) (*rawClient, packets.Packet) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitLong)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn), v: version}
	rc.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: id,
			Keepalive:        30,
			Clean:            clean,
		},
	})
	ack, err := rc.read()
	if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("connect: %+v %v", ack, err)
	}
	return rc, ack
}

func (rc *rawClient) send(pk packets.Packet) {
	rc.t.Helper()
	pk.ProtocolVersion = rc.v
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode %d", pk.FixedHeader.Type)
	}
	if err != nil {
		rc.t.Fatalf("encode: %v", err)
	}
	if _, err := rc.conn.Write(buf.Bytes()); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *rawClient) publish(topic string, payload []byte, qos byte, id uint16, props packets.Properties) {
	rc.t.Helper()
	rc.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    id,
		Properties:  props,
	})
}

// read reads the next packet (io.EOF when the broker closed the connection).
func (rc *rawClient) read() (packets.Packet, error) {
	_ = rc.conn.SetReadDeadline(time.Now().Add(waitLong))
	var pk packets.Packet
	pk.ProtocolVersion = rc.v
	b, err := rc.br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(rc.br)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.br, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback, packets.Pubrec, packets.Pubcomp, packets.Pubrel:
		err = pk.PubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// ping checks the connection still works (PINGREQ → PINGRESP).
func (rc *rawClient) ping() {
	rc.t.Helper()
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	pk, err := rc.read()
	if err != nil || pk.FixedHeader.Type != packets.Pingresp {
		rc.t.Fatalf("ping: %+v %v", pk.FixedHeader, err)
	}
}
