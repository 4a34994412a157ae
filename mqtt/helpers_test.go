package mqtt

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/internal/mqtttest"
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

// byPayload decides by payload: the error errs maps it to, or nil.
func byPayload(errs map[string]error) func(context.Context, Message) error {
	return func(_ context.Context, m Message) error { return errs[string(m.Payload)] }
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

// startBroker runs New(cfg, h) until the test ends; each adjust changes the
// broker before Run.
func startBroker(t testing.TB, cfg Config, h Handler, adjust ...func(*Broker)) *testBroker {
	t.Helper()
	set := metrics.NewSet()
	b, err := New(cfg, h, nil, set)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, a := range adjust {
		a(b)
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

// wantMetric fails the test unless metric line name has value want.
func (tb *testBroker) wantMetric(t testing.TB, name, want string) {
	t.Helper()
	if got := tb.metric(t, name); got != want {
		t.Errorf("%s = %s, want %s", name, got, want)
	}
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

// floodQoS0 writes MQTT 5 QoS 0 publishes to topic on rc as fast as the
// connection takes them, until stop is closed or a write fails.
func floodQoS0(rc *mqtttest.Raw, topic string, stop <-chan struct{}) {
	msg := rawPublish(topic, []byte("f"), 0, 5)
	for {
		select {
		case <-stop:
			return
		default:
		}
		if _, err := rc.Conn.Write(msg); err != nil {
			return
		}
	}
}
