package mqtt

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/sync/semaphore"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// Connections over max_connections are closed at accept and counted;
// one frees its place when it goes.
func TestMaxConnections(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxConnections = 2
	tb := startBroker(t, cfg, &recorder{})
	a, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "a", true)
	mqtttest.DialRaw(t, tb.addr("tcp"), 4, "b", true)

	refused := func() bool {
		c, err := net.Dial("tcp", tb.addr("tcp"))
		if err != nil {
			return true
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(waitLong))
		_, err = c.Read(make([]byte, 1))
		return err != nil
	}
	if !refused() {
		t.Fatal("a third connection was served")
	}
	tb.wantMetric(t, `edgegate_mqtt_connections_refused_total{reason="max_connections"}`, "1")
	a.Conn.Close()
	eventually(t, "a's place freed", func() bool { return tb.Clients() == 1 })
	mqtttest.DialRaw(t, tb.addr("tcp"), 5, "c", true)
}

// A websocket upgrade from a browser page is accepted only from an allowed
// origin (default: the same host); devices send no Origin and are always
// accepted.
func TestWebsocketOriginCheck(t *testing.T) {
	tb := startBroker(t, testConfig(
		ListenerConfig{ID: "ws", Type: TypeWebsocket, Address: "127.0.0.1:0"},
		ListenerConfig{ID: "dash", Type: TypeWebsocket, Address: "127.0.0.1:0", AllowedOrigins: []string{"https://Dash.example.com/"}},
	), &recorder{})
	dial := func(id, origin string) int {
		t.Helper()
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: waitLong}
		c, resp, err := d.Dial("ws://"+tb.addr(id)+"/mqtt", h)
		if err == nil {
			c.Close()
			return http.StatusSwitchingProtocols
		}
		if resp == nil {
			t.Fatalf("dial %s: %v", id, err)
		}
		return resp.StatusCode
	}
	for _, tc := range []struct {
		listener, origin string
		want             int
	}{
		{"ws", "", 101},
		{"ws", "http://" + tb.addr("ws"), 101},
		{"ws", "https://evil.example.com", 403},
		{"dash", "", 101},
		{"dash", "https://dash.example.com", 101},
		{"dash", "http://dash.example.com", 403},
		{"dash", "http://" + tb.addr("dash"), 403},
	} {
		if got := dial(tc.listener, tc.origin); got != tc.want {
			t.Errorf("%s with Origin %q: status %d, want %d", tc.listener, tc.origin, got, tc.want)
		}
	}
	tb.wantMetric(t, `edgegate_mqtt_connections_refused_total{reason="origin"}`, "3")
}

// Large packets are read only within the packet budget: while the budget
// is held by packets being trickled in, another large packet waits (a
// small one does not), and gets its turn when one completes. A connection
// that waits too long is closed and counted.
func TestPacketBudget(t *testing.T) {
	rec := &recorder{}
	const size = 100 << 10 // > largePacket
	tb := startBroker(t, testConfig(), rec, func(b *Broker) {
		b.budget = semaphore.NewWeighted(2 * 2 * (size + 64)) // room for two packets of this size
	})
	publish := func(topic string) []byte { return rawPublish(topic, bytes.Repeat([]byte("x"), size), 0x02, 4) }
	// Two clients announce large packets and send half of each.
	var slow []*mqtttest.Raw
	for i := range 2 {
		rc, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, fmt.Sprintf("slow%d", i), true)
		pkt := publish("slow")
		rc.Conn.Write(pkt[:len(pkt)/2])
		slow = append(slow, rc)
	}
	time.Sleep(50 * time.Millisecond) // let the broker read the headers
	// A third waits for budget; a small packet from a fourth does not.
	third, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "third", true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		third.Conn.Write(publish("third"))
	}()
	small, _ := mqtttest.DialRaw(t, tb.addr("tcp"), 4, "small", true)
	small.Publish("small", []byte("x"), 1, 1, packets.Properties{})
	readAck(t, small, "small packet while the budget is held", packets.Puback, 1, 0)
	time.Sleep(100 * time.Millisecond)
	if n := len(rec.all()); n != 1 {
		t.Fatalf("handler saw %d messages, want only the small one while the budget is held", n)
	}
	// The first slow packet completes: the third one gets its budget.
	pkt := publish("slow")
	slow[0].Conn.Write(pkt[len(pkt)/2:])
	readAck(t, slow[0], "first slow packet", packets.Puback, 1, 0)
	readAck(t, third, "waiting packet", packets.Puback, 1, 0)
	<-done
	tb.wantMetric(t, "edgegate_mqtt_packet_budget_timeouts_total", "0")
}

// A client the broker disconnects while it is still sending reads the
// whole answer, DISCONNECT included, and its writes meanwhile are not
// reset: the broker half-closes and drains before it closes (the Paho
// interoperability suite's flow control test).
func TestDisconnectedClientReadsEverything(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInflight = 4 // receive maximum
	tb := startBroker(t, cfg, &recorder{})
	dev, ack := mqtttest.DialRaw(t, tb.addr("tcp"), 5, "dev", true)
	if ack.Properties.ReceiveMaximum != 4 {
		t.Fatalf("receive maximum %d", ack.Properties.ReceiveMaximum)
	}
	for i := range 5 { // one over the receive maximum, none released
		dev.Publish("t", []byte("x"), 2, uint16(i+1), packets.Properties{})
	}
	time.Sleep(100 * time.Millisecond) // the broker has answered and closed by now
	for {
		pk, err := dev.Read()
		if err != nil {
			t.Fatalf("read: %v (before the DISCONNECT)", err)
		}
		if pk.FixedHeader.Type == packets.Disconnect {
			if pk.ReasonCode != packets.ErrReceiveMaximum.Code {
				t.Errorf("DISCONNECT reason %#x, want 0x93", pk.ReasonCode)
			}
			break
		}
		// Answer each PUBREC as a client does, after the broker closed.
		var buf bytes.Buffer
		rel := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: pk.PacketID, ProtocolVersion: 5}
		rel.PubrelEncode(&buf)
		if _, err := dev.Conn.Write(buf.Bytes()); err != nil {
			t.Fatalf("write PUBREL %d: %v", pk.PacketID, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
