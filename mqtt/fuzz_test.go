package mqtt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/sync/semaphore"

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

// FuzzRawConn writes arbitrary bytes into a fresh connection to the real
// listener: as the first packet (flags&1 == 0) or after a valid CONNECT
// (MQTT 5 when flags&2), all at once or (flags&4) in pieces of
// flags>>3 + 1 bytes, so that the framing is followed across reads. The
// broker must answer another client afterwards, never panic (a panic in a
// connection goroutine ends the test binary), close every connection it
// served, and keep its heap bounded. The seeds run in every `go test`;
// testdata/fuzz/FuzzRawConn holds inputs the fuzzer found.
func FuzzRawConn(f *testing.F) {
	var bad atomic.Value
	h := HandlerFunc(func(ctx context.Context, m Message) error {
		switch {
		case strings.HasPrefix(m.Topic, "$") || m.Topic == "":
			bad.Store(fmt.Sprintf("handler saw topic %q", m.Topic))
		case len(m.Topic) > 64 || strings.Count(m.Topic, "/") >= 8:
			bad.Store(fmt.Sprintf("handler saw topic %q over the limits", m.Topic))
		case len(m.Payload) > 4096:
			bad.Store(fmt.Sprintf("handler saw %d bytes", len(m.Payload)))
		}
		return nil
	})
	cfg := testConfig()
	cfg.MaxPayloadBytes = 4096
	cfg.Limits.MaxTopicLength = 64
	cfg.Limits.MaxTopicLevels = 8
	cfg.Limits.MaxRetainedMessages = 16
	cfg.Limits.MaxRetainedBytes = 16 << 10
	tb := startBroker(f, cfg, h, func(b *Broker) {
		b.budget = semaphore.NewWeighted(256 << 10) // so that fuzzed large packets meet the budget
	})
	addr := tb.addr("tcp")

	for _, s := range rawSeeds() {
		f.Add(s.data, s.flags)
	}
	f.Fuzz(func(t *testing.T, data []byte, flags byte) {
		c, err := net.DialTimeout("tcp", addr, mqtttest.Timeout)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if flags&1 != 0 {
			_, _ = c.Write(rawConnect(byte(4+(flags>>1)&1), "fuzz"))
		}
		step := len(data)
		if flags&4 != 0 {
			step = int(flags>>3) + 1
		}
		for i := 0; i < len(data); i += step {
			if _, err := c.Write(data[i:min(i+step, len(data))]); err != nil {
				break
			}
		}
		_ = c.(*net.TCPConn).CloseWrite() // the broker reads EOF after the input and closes
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
		c.Close()

		check, _ := mqtttest.DialRaw(t, addr, 5, "check", true)
		check.Ping()
		check.Conn.Close()
		if msg := bad.Load(); msg != nil {
			t.Fatal(msg)
		}
		eventually(t, "every connection closed", func() bool { return tb.openConns() == 0 })
		if heap := heapObjectBytes(); heap > 256<<20 {
			t.Fatalf("heap holds %d MiB of objects", heap>>20)
		}
	})
}

// openConns counts the connections the broker tracks.
func (tb *testBroker) openConns() int {
	tb.conns.mu.Lock()
	defer tb.conns.mu.Unlock()
	return len(tb.conns.conns)
}

func heapObjectBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// rawConnect is a CONNECT packet for MQTT version 4 or 5 with keep-alive 30
// and a clean session.
func rawConnect(version byte, id string) []byte {
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Keepalive: 30, Clean: true}}
	if err := pk.ConnectEncode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

type rawSeed struct {
	data  []byte
	flags byte
}

// rawSeeds are the fuzzer's starting points: valid sessions, the packets
// the guard answers, and framing edge cases.
func rawSeeds() []rawSeed {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	pub := func(topic string, payload []byte, flags, version byte) []byte {
		return rawPublish(topic, payload, flags, version)
	}
	sub := func(filter string, version byte) []byte {
		var buf bytes.Buffer
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: version,
			PacketID: 9, Filters: packets.Subscriptions{{Filter: filter, Qos: 1}}}
		if err := pk.SubscribeEncode(&buf); err != nil {
			panic(err)
		}
		return buf.Bytes()
	}
	pubrel := []byte{0x62, 0x02, 0x00, 0x01}
	return []rawSeed{
		{rawConnect(4, "a"), 0},                                                                // a CONNECT, nothing else
		{rawConnect(5, "b"), 0},                                                                // MQTT 5 CONNECT
		{cat(rawConnect(4, "c"), rawConnect(4, "c")), 0},                                       // a second CONNECT: protocol error
		{[]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01}, 0},                                        // CONNECT with a 5-byte length
		{[]byte{0x10, 0x00}, 0},                                                                // empty CONNECT
		{[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0},                                       // HTTP on the MQTT port
		{pub("sensors/a", []byte("21.5"), 0x02, 4), 1},                                         // QoS 1 after CONNECT
		{pub("sensors/a", []byte("21.5"), 0x02, 4), 1 | 4 | 0<<3},                              // ...a byte at a time
		{pub("$SYS/broker/uptime", []byte("x"), 0x02, 5), 3},                                   // reserved, MQTT 5
		{cat(pub("s/q2", []byte("x"), 0x04, 4), pub("s/q2", []byte("x"), 0x0c, 4), pubrel), 1}, // QoS 2, DUP resend, PUBREL
		{pub(strings.Repeat("t/", 40), []byte("x"), 0x02, 5), 3},                               // too many levels
		{sub(strings.Repeat("x", 100), 5), 3},                                                  // filter too long
		{sub("#/x", 4), 1},                                                                     // invalid filter
		{pub("r/1", []byte("keep"), 0x03, 4), 1},                                               // retained
		{pub("t", make([]byte, 4000), 0x02, 4), 1 | 4 | 31<<3},                                 // large, in pieces: the budget
		{[]byte{0x32, 0xff, 0xff, 0x7f}, 1},                                                    // announces 2 MiB: over the packet limit
		{[]byte{0x32, 0x80, 0x80, 0x04}, 1 | 4 | 1<<3},                                         // announces 64 KiB and stops
		{cat([]byte{0x32, 0x8a, 0x08, 0x00, 0x01, 't', 0x00, 0x01}, make([]byte, 1024)), 1},    // truncated large packet
		{[]byte{0xf0, 0x00}, 3},                                                                // AUTH without a method
		{[]byte{0xe0, 0x02, 0x8e, 0x00}, 3},                                                    // DISCONNECT with a reason
		{[]byte{0xc0, 0x00, 0xc0, 0x00, 0xc0}, 1 | 4 | 2<<3},                                   // pings, split
		{[]byte{0x00, 0x00}, 1},                                                                // reserved packet type 0
	}
}
