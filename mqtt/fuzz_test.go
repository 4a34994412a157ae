package mqtt

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// FuzzPublish sends arbitrary PUBLISH packets (topic, payload, header
// flags; with flags&0x80 the payload bytes go out raw after CONNECT) and
// checks that the broker keeps serving and the Handler only ever sees
// well-formed messages. The seeds run in every `go test`.
func FuzzPublish(f *testing.F) {
	var bad atomic.Value
	h := HandlerFunc(func(ctx context.Context, m Message) error {
		switch {
		case strings.HasPrefix(m.Topic, "$"):
			bad.Store(fmt.Sprintf("handler saw reserved topic %q", m.Topic))
		case m.QoS > 2:
			bad.Store(fmt.Sprintf("handler saw qos %d", m.QoS))
		case len(m.Payload) > 4096:
			bad.Store(fmt.Sprintf("handler saw %d bytes", len(m.Payload)))
		}
		if len(m.Payload) > 0 && m.Payload[0] == 'R' {
			return ErrRejected
		}
		if len(m.Payload) > 0 && m.Payload[0] == 'O' {
			return ErrOverloaded
		}
		return nil
	})
	cfg := testConfig()
	cfg.MaxPayloadBytes = 4096
	tb := startBroker(f, cfg, h)
	addr := tb.addr("tcp")

	f.Add("sensors/a", []byte("21.5"), byte(0x02))                               // v3 QoS 1
	f.Add("sensors/a", []byte("R"), byte(0x44))                                  // v5 QoS 2 rejected
	f.Add("sensors/a", []byte("O"), byte(0x42))                                  // v5 QoS 1 overloaded
	f.Add("", []byte("x"), byte(0x00))                                           // empty topic
	f.Add("$SYS/broker/version", []byte("evil"), byte(0x03))                     // reserved, retained
	f.Add("a/+/#", []byte("x"), byte(0x02))                                      // wildcards
	f.Add("\xff\xfe", []byte("x"), byte(0x02))                                   // invalid UTF-8
	f.Add("a\x00b", []byte("x"), byte(0x02))                                     // NUL
	f.Add("t", []byte("x"), byte(0x06))                                          // QoS 3
	f.Add("t", make([]byte, 5000), byte(0x02))                                   // over MaxPayloadBytes
	f.Add("", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, byte(0x80))                  // huge remaining length
	f.Add("", []byte{0x32, 0x03, 0x00, 0x05, 'a'}, byte(0x80))                   // truncated topic
	f.Add("", []byte{0x32, 0x06, 0x00, 0x01, 'a', 0x00, 0x00, 0x09}, byte(0xc0)) // v5 garbage properties
	f.Add("", []byte{0xe0, 0x00, 0x10, 0x00}, byte(0x80))                        // DISCONNECT then CONNECT bytes

	f.Fuzz(func(t *testing.T, topic string, payload []byte, flags byte) {
		version := byte(4)
		if flags&0x40 != 0 {
			version = 5
		}
		rc, _ := mqtttest.DialRaw(t, addr, version, "", true)
		c := rc.Conn
		var pkt []byte
		if flags&0x80 != 0 {
			pkt = payload
		} else {
			pkt = rawPublish(topic, payload, flags, version)
		}
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = c.Write(pkt)
		_, _ = c.Read(make([]byte, 64)) // whatever the broker answers, if anything
		c.Close()

		check, _ := mqtttest.DialRaw(t, addr, 5, "", true)
		check.Ping()
		if msg := bad.Load(); msg != nil {
			t.Fatal(msg)
		}
	})
}

// rawPublish builds a PUBLISH by hand, so that invalid topics and flags
// reach the broker as they are.
func rawPublish(topic string, payload []byte, flags byte, version byte) []byte {
	if len(topic) > 0xffff {
		topic = topic[:0xffff]
	}
	body := binary.BigEndian.AppendUint16(nil, uint16(len(topic)))
	body = append(body, topic...)
	if qos := (flags >> 1) & 3; qos > 0 {
		body = append(body, 0, 1) // packet id 1
	}
	if version == 5 {
		body = append(body, 0) // no properties
	}
	body = append(body, payload...)
	pkt := []byte{0x30 | flags&0x0f}
	n := len(body)
	for { // variable byte integer
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
	return append(pkt, body...)
}
