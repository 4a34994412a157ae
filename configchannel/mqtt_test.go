package configchannel

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// fakeConn is a Conn that fails its first subscribes and records publishes.
type fakeConn struct {
	mu         sync.Mutex
	failFirst  int
	topic      string
	handler    func([]byte, bool)
	subscribes int
	subscribed chan struct{}
	published  chan [2]string
}

func (f *fakeConn) Subscribe(_ context.Context, topic string, h func([]byte, bool)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failFirst > 0 {
		f.failFirst--
		return errors.New("connect tcp://cloud: connection refused")
	}
	f.topic, f.handler = topic, h
	f.subscribes++
	if f.subscribes == 1 {
		close(f.subscribed)
	}
	return nil
}

func (f *fakeConn) Publish(_ context.Context, topic string, payload []byte) error {
	f.published <- [2]string{topic, string(payload)}
	return nil
}

func TestMQTTChannel(t *testing.T) {
	conn := &fakeConn{failFirst: 1, subscribed: make(chan struct{}), published: make(chan [2]string, 10)}
	var applied []Update
	apply := func(_ context.Context, u Update) (Result, error) {
		applied = append(applied, u)
		switch string(u.Data) {
		case "bad":
			return Result{}, &Rejection{Reason: "signature", Err: errors.New("config is not signed\nsecond line")}
		case "same":
			return Result{Unchanged: true, Version: 7, Hash: "abc"}, nil
		}
		return Result{Applied: true, Version: 8, Hash: "def"}, nil
	}
	m := metrics.NewSet()
	cfg := DefaultMQTTConfig()
	c := NewMQTT(cfg, "gw-9", conn, apply, nil, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	select {
	case <-conn.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("never subscribed after a failed attempt")
	}
	if conn.topic != "gateways/gw-9/config" {
		t.Fatalf("subscribed to %q", conn.topic)
	}
	next := func() Status {
		t.Helper()
		select {
		case p := <-conn.published:
			if p[0] != "gateways/gw-9/config/status" {
				t.Fatalf("status on %q", p[0])
			}
			var st Status
			if err := json.Unmarshal([]byte(p[1]), &st); err != nil {
				t.Fatal(err)
			}
			return st
		case <-time.After(10 * time.Second):
			t.Fatal("no status published")
			return Status{}
		}
	}
	conn.handler([]byte("same"), true)
	if st := next(); st.Result != "unchanged" || st.Version != 7 || !st.Retained || st.GatewayID != "gw-9" {
		t.Errorf("status = %+v", st)
	}
	conn.handler([]byte("bad"), false)
	if st := next(); st.Result != "rejected" || st.Reason != "signature" || len(st.Errors) != 2 || st.Errors[0] != "config is not signed" {
		t.Errorf("status = %+v", st)
	}
	conn.handler([]byte("good"), false)
	if st := next(); st.Result != "applied" || st.Version != 8 || st.Hash != "def" {
		t.Errorf("status = %+v", st)
	}
	conn.handler([]byte(strings.Repeat("x", MaxDocument+1)), false)
	if st := next(); st.Result != "rejected" || !strings.Contains(st.Errors[0], "larger than") {
		t.Errorf("status = %+v", st)
	}
	// A replaced uplink connection: Run subscribes again.
	c.Resubscribe()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn.mu.Lock()
		n := conn.subscribes
		conn.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Resubscribe: %d subscribes", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(applied) != 3 || applied[0].Source != SourceMQTT || applied[0].Origin != "gateways/gw-9/config" {
		t.Errorf("applied = %+v", applied)
	}
	if s := c.Status(); !s.Subscribed || s.Last == nil || s.Last.Result != "rejected" {
		t.Errorf("status = %+v", s)
	}
	for r, want := range map[string]uint64{"applied": 1, "unchanged": 1, "rejected": 2} {
		if got := m.GetOrCreateCounter(`edgegate_config_mqtt_total{result="` + r + `"}`).Get(); got != want {
			t.Errorf("%s = %d, want %d", r, got, want)
		}
	}
}

func TestMQTTConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*MQTTConfig)
		want string
	}{
		{func(c *MQTTConfig) {}, ""},
		{func(c *MQTTConfig) { c.Topic = "gateways/+/config" }, "topic: must be a topic name"},
		{func(c *MQTTConfig) { c.StatusTopic = "" }, "status_topic: must not be empty"},
		{func(c *MQTTConfig) { c.StatusTopic = c.Topic }, "status_topic: must differ"},
	} {
		c := DefaultMQTTConfig()
		tc.mod(&c)
		checkErr(t, c, c.Validate(), tc.want)
	}
}

// checkErr checks that err contains want, or is nil when want is "".
func checkErr(t *testing.T, what any, err error, want string) {
	t.Helper()
	if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
		t.Errorf("%+v: err = %v, want %q", what, err, want)
	}
}
