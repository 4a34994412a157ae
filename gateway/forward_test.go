package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/uplink"
)

// A poison event in a batch is isolated and sent to the dead-letter uplink
// with the failure attached; every other event of the batch is delivered,
// in order, and nothing blocks.
func TestPoisonEventIsDeadLetteredAlone(t *testing.T) {
	main, dlq := newReceiver(t), newReceiver(t)
	main.RejectIf(func(e event.Event) bool { return strings.Contains(string(e.Data()), `"poison":true`) })
	cfg := testConfig(t, main.URL())
	cfg.Uplinks[0].DeadLetter = "dlq"
	cfg.Uplinks[0].Batch.Linger = 200 * time.Millisecond // one batch holds them all
	d := httpUplink("dlq", dlq.URL())
	cfg.Uplinks = append(cfg.Uplinks, d)
	gw := start(t, cfg)

	c := mqtttest.Connect(t, gw.mqtt, "p")
	const n = 40
	for i := range n {
		payload := fmt.Sprintf(`{"seq":%d}`, i)
		if i == 17 {
			payload = `{"seq":17,"poison":true}`
		}
		if tok := c.Publish("devices/p1/telemetry", 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	good := main.WaitFor(n-1, 20*time.Second)
	var last = -1
	for _, e := range good {
		var seq int
		fmt.Sscanf(string(e.Data()), `{"seq":%d`, &seq)
		if seq == 17 || seq <= last {
			t.Fatalf("main uplink got seq %d after %d", seq, last)
		}
		last = seq
	}
	// The dead-letter uplink also receives the routed copies of all n events
	// (every uplink gets every event by default) plus the dead letter, which
	// keeps its id.
	dlq.WaitFor(n, 20*time.Second)
	var dead []event.Event
	deadline := time.Now().Add(10 * time.Second)
	for len(dead) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		dead = dead[:0]
		for _, e := range dlq.Events() {
			if _, ok := e.Extensions()[uplink.ExtError]; ok {
				dead = append(dead, e)
			}
		}
	}
	if len(dead) != 1 {
		t.Fatalf("dead letters: %d, want 1", len(dead))
	}
	ext := dead[0].Extensions()
	if !strings.Contains(string(dead[0].Data()), `"poison":true`) || fmt.Sprint(ext[uplink.ExtErrorCode]) != "400" ||
		ext[uplink.ExtErrorDest] != "cloud" || !strings.Contains(fmt.Sprint(ext[uplink.ExtError]), "refused") {
		t.Errorf("dead letter: %s", dead[0])
	}
}

// Events that waited out an outage arrive with replayed=true and their
// original time; events published after recovery are not marked.
func TestReplayedEventsAreMarked(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Refuse(http.StatusServiceUnavailable)
	gw := start(t, testConfig(t, rcv.URL()))
	c := mqtttest.Connect(t, gw.mqtt, "r")
	publishSeq(t, c, "r1", 0, 20)
	time.Sleep(150 * time.Millisecond) // failed attempts
	rcv.Refuse(0)
	rcv.WaitFor(20, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	publishSeq(t, c, "r1", 20, 10)
	events := rcv.WaitFor(30, 10*time.Second)
	checkOrder(t, events)
	for i, e := range events {
		replayed := e.Extensions()[uplink.ExtReplayed] == true
		if i < 20 && !replayed {
			t.Errorf("event %d from the outage not marked replayed: %s", i, e)
		}
		if i >= 20 && replayed {
			t.Errorf("live event %d marked replayed", i)
		}
		if e.Time().After(time.Now()) || e.Time().IsZero() {
			t.Errorf("event %d time %v", i, e.Time())
		}
	}
	if i := events[0]; time.Since(i.Time()) < 150*time.Millisecond {
		t.Errorf("replayed event's time %v is not its original ingest time", i.Time())
	}
}

// With retry.max_attempts an uplink that stays down moves its events to the
// local dead-letter queue instead of holding them forever.
func TestMaxAttemptsDeadLetters(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Refuse(http.StatusServiceUnavailable)
	cfg := testConfig(t, rcv.URL())
	cfg.Uplinks[0].Retry.MaxAttempts = 3
	gw := start(t, cfg)
	publishSeq(t, mqtttest.Connect(t, gw.mqtt, "m"), "m1", 0, 5)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st := gw.g.buffer().Stats()
		if st.Queues[deadLetterName("cloud")].Records == 5 && st.Queues[queueName("cloud")].Records == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("buffer after max_attempts: %+v", gw.g.buffer().Stats().Queues)
}
