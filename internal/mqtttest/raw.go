package mqtttest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Raw speaks MQTT over a plain connection using mochi's packet codec, to
// send what paho cannot (a chosen packet id, DUP, MQTT 5) and see exactly
// what the broker writes (reason codes, missing acks).
type Raw struct {
	t    testing.TB
	Conn net.Conn // for bytes the codec would not write
	br   *bufio.Reader
	v    byte
}

// DialRaw connects to addr (host:port) as client id with protocol version
// (4: MQTT 3.1.1, 5: MQTT 5) and a clean or persistent session, and returns
// the client and its CONNACK; the connection closes when the test ends.
func DialRaw(t testing.TB, addr string, version byte, id string, clean bool) (*Raw, packets.Packet) {
	t.Helper()
	rc, ack, err := DialRawConnect(t, addr, version, packets.ConnectParams{ClientIdentifier: id, Keepalive: 30, Clean: clean})
	if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		t.Fatalf("connect: %+v %v", ack, err)
	}
	return rc, ack
}

// DialRawConnect connects to addr with protocol version and the CONNECT
// parameters c (the protocol name and the user name and password flags are
// filled in) and returns the client and the broker's answer, whatever it
// is; the connection closes when the test ends.
func DialRawConnect(t testing.TB, addr string, version byte, c packets.ConnectParams) (*Raw, packets.Packet, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	rc := &Raw{t: t, Conn: conn, br: bufio.NewReader(conn), v: version}
	c.ProtocolName = []byte("MQTT")
	c.UsernameFlag = len(c.Username) > 0
	c.PasswordFlag = len(c.Password) > 0
	rc.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: c})
	ack, err := rc.Read()
	return rc, ack, err
}

// Send encodes and writes pk.
func (rc *Raw) Send(pk packets.Packet) {
	rc.t.Helper()
	pk.ProtocolVersion = rc.v
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	default:
		err = fmt.Errorf("cannot encode %d", pk.FixedHeader.Type)
	}
	if err != nil {
		rc.t.Fatalf("encode: %v", err)
	}
	if _, err := rc.Conn.Write(buf.Bytes()); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// Publish sends a PUBLISH.
func (rc *Raw) Publish(topic string, payload []byte, qos byte, id uint16, props packets.Properties) {
	rc.t.Helper()
	rc.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    id,
		Properties:  props,
	})
}

// Read reads the next packet (io.EOF when the broker closed the connection).
func (rc *Raw) Read() (packets.Packet, error) {
	_ = rc.Conn.SetReadDeadline(time.Now().Add(Timeout))
	return readPacket(rc.br, rc.v)
}

// Ping checks the connection still works (PINGREQ → PINGRESP).
func (rc *Raw) Ping() {
	rc.t.Helper()
	rc.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	pk, err := rc.Read()
	if err != nil || pk.FixedHeader.Type != packets.Pingresp {
		rc.t.Fatalf("ping: %+v %v", pk.FixedHeader, err)
	}
}
