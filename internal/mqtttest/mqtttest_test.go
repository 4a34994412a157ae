package mqtttest

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	broker := StartBroker(t).URL
	sub := Connect(t, broker, "sub")
	msgs := Subscribe(t, sub, "devices/#", 1)
	dev := Connect(t, broker, "dev", Persistent, nil)
	Publish(t, dev, "devices/d1/telemetry", 1, "hello")
	stop := make(chan struct{})
	var acked atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Steady(dev, "devices/d1/steady", time.Millisecond, stop, func(seq int) {
			if acked.Add(1) == 3 {
				close(stop)
			}
		})
	}()
	<-done
	for i, want := range []string{"hello", `{"seq":0}`, `{"seq":1}`, `{"seq":2}`} {
		select {
		case m := <-msgs:
			if string(m.Payload()) != want {
				t.Errorf("message %d: %q, want %q", i, m.Payload(), want)
			}
		case <-time.After(Timeout):
			t.Fatalf("message %d did not arrive", i)
		}
	}
}

func TestDialNamesTheClient(t *testing.T) {
	_, err := Dial("tcp://127.0.0.1:1", "dev-7") // nothing listens on port 1
	if err == nil || !strings.Contains(err.Error(), "connect dev-7 to tcp://127.0.0.1:1") {
		t.Errorf("Dial: %v", err)
	}
}
