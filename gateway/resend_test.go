package gateway

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// rawClient speaks just enough MQTT 3.1.1 to send a PUBLISH with a chosen
// packet id and DUP flag, which paho does not allow.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func rawConnect(t *testing.T, addr, clientID string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0 /* persistent session */, 0, 60}
	c.write(0x10, append(vh, str(clientID)...))
	if typ, body := c.read(); typ != 0x20 || body[1] != 0 {
		t.Fatalf("CONNACK: %x %x", typ, body)
	}
	return c
}

func str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func (c *rawClient) write(header byte, body []byte) {
	c.t.Helper()
	pkt := []byte{header}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		pkt = append(pkt, b)
		if n == 0 {
			break
		}
	}
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(append(pkt, body...)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) read() (byte, []byte) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatal(err)
	}
	n, mul := 0, 1
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			c.t.Fatal(err)
		}
		n += int(b&0x7f) * mul
		mul *= 128
		if b&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	return typ, body
}

// publish sends a QoS 1 PUBLISH and waits for its PUBACK.
func (c *rawClient) publish(topic string, id uint16, dup bool, payload string) {
	c.t.Helper()
	header := byte(0x32)
	if dup {
		header |= 0x08
	}
	body := append(str(topic), byte(id>>8), byte(id))
	c.write(header, append(body, payload...))
	typ, ack := c.read()
	if typ != 0x40 || len(ack) != 2 || uint16(ack[0])<<8|uint16(ack[1]) != id {
		c.t.Fatalf("PUBACK for %d: %x %x", id, typ, ack)
	}
}

// A device that resends (DUP) a message whose PUBACK it never got, for
// example because the gateway crashed between storing and acking, gets its
// ack without a second event under a new id; even after a restart, as the
// index lives in the buffer. A resend with another payload, or a new message
// reusing the packet id, is a new event.
func TestResendIsRecognised(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t, rcv.URL())
	gw := start(t, cfg)
	addr := strings.TrimPrefix(gw.mqtt, "tcp://")
	c := rawConnect(t, addr, "dev-dup")
	c.publish("devices/dup/telemetry", 7, false, `{"seq":0}`)
	c.publish("devices/dup/telemetry", 7, true, `{"seq":0}`) // lost ack: resend
	rcv.WaitFor(1, 10*time.Second)

	gw.stop(t)
	gw = start(t, cfg)
	addr = strings.TrimPrefix(gw.mqtt, "tcp://")
	c = rawConnect(t, addr, "dev-dup")
	c.publish("devices/dup/telemetry", 7, true, `{"seq":0}`)  // resend after a restart
	c.publish("devices/dup/telemetry", 7, true, `{"seq":1}`)  // same id, other payload
	c.publish("devices/dup/telemetry", 7, false, `{"seq":2}`) // packet id reused
	events := rcv.WaitFor(3, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	if got := len(rcv.Events()); got != 3 {
		t.Fatalf("receiver got %d events, want 3 (seq 0, 1, 2)", got)
	}
	checkOrder(t, events)
	if n := metricValue(t, gw, "edgegate_mqtt_resends_recognised_total"); n != 1 {
		t.Errorf("recognised resends after restart: %v, want 1", n)
	}
}
