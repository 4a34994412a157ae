package mqtttest

import (
	"fmt"
	"net"
	"strings"
	"sync"
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

// Close returns while clients keep connecting and leaving (mochi's own
// listener closer can deadlock then; see disconnectClients).
func TestCloseWhileClientsComeAndGo(t *testing.T) {
	for round := range 20 {
		b, err := NewBroker("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := strings.TrimPrefix(b.URL, "tcp://")
		stop := make(chan struct{})
		var churn sync.WaitGroup
		for w := range 8 {
			churn.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					connectAndLeave(addr, fmt.Sprintf("c%d-%d", w, i))
				}
			})
		}
		time.Sleep(20 * time.Millisecond)
		closed := make(chan struct{})
		go func() { b.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: Close did not return within 10 s while clients came and went", round)
		}
		close(stop)
		churn.Wait()
	}
}

// connectAndLeave sends an MQTT 3.1.1 CONNECT and closes the connection.
func connectAndLeave(addr, id string) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, byte(len(id))}, id...)
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write(append([]byte{0x10, byte(len(body))}, body...))
	var ack [4]byte
	c.Read(ack[:])
}
