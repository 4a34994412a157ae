package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// kill -9 while devices publish with persistent sessions: they reconnect
// and resend what was in flight (DUP). Every acknowledged message must
// arrive, and a message that arrives more than once must always carry the
// same CloudEvent id (the gateway recognises resends of stored messages).
func TestKill9MidStreamWithResends(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the real binary")
	}
	bin := edgegateBinary(t)
	dir := t.TempDir()
	mqttAddr, admin, uplinkAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	config := writeConfig(t, dir, mqttAddr, admin, uplinkAddr)
	s := startSink(t, uplinkAddr)
	p := startProc(t, bin, config, admin)

	const devices, perDevice = 10, 600
	var acked sync.Map // "dev/seq" -> true
	var nAcked atomic.Int32
	var wg sync.WaitGroup
	for d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID(fmt.Sprintf("mid-%d", d)).
				SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
				SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
				SetConnectTimeout(2 * time.Second)
			c := paho.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Errorf("connect: %v", tok.Error())
				return
			}
			defer c.Disconnect(100)
			// Up to 32 messages in flight per device, as real devices
			// pipeline: many are stored but not yet acked at a crash.
			type pending struct {
				tok paho.Token
				msg string
			}
			window := make(chan pending, 32)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for p := range window {
					if p.tok.WaitTimeout(15*time.Second) && p.tok.Error() == nil {
						acked.Store(p.msg, true)
						nAcked.Add(1)
					}
				}
			}()
			for i := range perDevice {
				msg := fmt.Sprintf(`{"dev":%d,"seq":%d}`, d, i)
				window <- pending{c.Publish(fmt.Sprintf("devices/mid-%d/telemetry", d), 1, false, msg), msg}
				if i%10 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			close(window)
			<-done
		}()
	}
	// Two crashes while the devices publish.
	for range 3 {
		time.Sleep(150 * time.Millisecond)
		p.kill()
		time.Sleep(100 * time.Millisecond)
		p = startProc(t, bin, config, admin)
	}
	wg.Wait()
	defer p.kill()

	deadline := time.Now().Add(30 * time.Second)
	var missing []string
	for {
		missing = missing[:0]
		s.mu.Lock()
		acked.Range(func(k, _ any) bool {
			if len(s.byData[k.(string)]) == 0 {
				missing = append(missing, k.(string))
			}
			return true
		})
		s.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	newIDs := 0
	for d, ids := range s.byData {
		if len(ids) > 1 {
			newIDs++
			t.Errorf("message %s arrived under %d different ids", d, len(ids))
		}
	}
	t.Logf("acked %d of %d; arrived %d distinct messages, %d deliveries (%d repeats, all with the same id); %d resent messages stored twice",
		nAcked.Load(), devices*perDevice, len(s.byData), s.total, s.total-len(s.ids), newIDs)
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged messages never arrived, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
}
