package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// kill -9 while devices publish with persistent sessions: they reconnect
// and resend what was in flight (DUP). Every acknowledged message must
// arrive, and a message that arrives more than once must always carry the
// same CloudEvent id (the gateway recognises resends of stored messages).
func TestKill9MidStreamWithResends(t *testing.T) {
	e := newE2E(t, "builds and kills the real binary")
	s := startSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)

	const devices, perDevice = 10, 600
	var acked sync.Map // payload -> true
	var nAcked atomic.Int32
	var wg sync.WaitGroup
	for d := range devices {
		wg.Go(func() {
			publishPipelined(t, "tcp://"+e.mqtt, d, perDevice, "", &acked, &nAcked, mqtttest.Persistent, func(o *paho.ClientOptions) {
				o.SetConnectTimeout(2 * time.Second)
			})
		})
	}
	// Three crashes while the devices publish.
	for range 3 {
		time.Sleep(150 * time.Millisecond)
		p.kill()
		time.Sleep(100 * time.Millisecond)
		p = startProc(t, e.bin, e.config, e.admin)
	}
	wg.Wait()
	defer p.kill()

	deadline := time.Now().Add(30 * time.Second)
	missing := notArrived(s, &acked)
	for len(missing) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		missing = notArrived(s, &acked)
	}
	byData := idsByData(s.Events())
	distinct, total := s.Counts()
	newIDs := 0
	for d, ids := range byData {
		if len(ids) > 1 {
			newIDs++
			t.Errorf("message %s arrived under %d different ids", d, len(ids))
		}
	}
	t.Logf("acked %d of %d; arrived %d distinct messages, %d deliveries (%d repeats, all with the same id); %d resent messages stored twice",
		nAcked.Load(), devices*perDevice, len(byData), total, total-distinct, newIDs)
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged messages never arrived, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
}

// publishPipelined connects a paho client as mid-d (mqtttest options,
// changed by adjust) and publishes perDevice QoS 1 messages
// {"dev":d,"seq":i} to devices/mid-d/telemetry with up to 32 in flight, as
// real devices pipeline, recording each payload whose PUBACK arrived
// (mqtttest.PubackStore: a completed token is no PUBACK on a persistent
// session). pad is added inside the JSON object (e.g. `,"pad":"xxx"`).
func publishPipelined(t *testing.T, broker string, d, perDevice int, pad string, acked *sync.Map, nAcked *atomic.Int32, adjust ...func(*paho.ClientOptions)) {
	store := mqtttest.NewPubackStore(func(payload []byte) {
		if _, dup := acked.LoadOrStore(string(payload), true); !dup {
			nAcked.Add(1)
		}
	})
	adjust = append(adjust, func(o *paho.ClientOptions) { o.SetStore(store) })
	c, err := mqtttest.Dial(broker, fmt.Sprintf("mid-%d", d), adjust...)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Disconnect(100)
	window := make(chan paho.Token, 32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tok := range window {
			tok.WaitTimeout(15 * time.Second) // the window only: the store counts the acks
		}
	}()
	for i := range perDevice {
		msg := fmt.Sprintf(`{"dev":%d,"seq":%d%s}`, d, i, pad)
		window <- c.Publish(fmt.Sprintf("devices/mid-%d/telemetry", d), 1, false, msg)
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	close(window)
	<-done
}

// notArrived returns the acknowledged payloads the sink has not received.
func notArrived(s *cetest.Server, acked *sync.Map) []string {
	byData := idsByData(s.Events())
	var out []string
	acked.Range(func(k, _ any) bool {
		if len(byData[k.(string)]) == 0 {
			out = append(out, k.(string))
		}
		return true
	})
	return out
}

// idsByData maps each event data to the ids it arrived with.
func idsByData(events []event.Event) map[string]map[string]bool {
	byData := map[string]map[string]bool{}
	for _, e := range events {
		d := string(e.Data())
		if byData[d] == nil {
			byData[d] = map[string]bool{}
		}
		byData[d][e.ID()] = true
	}
	return byData
}
