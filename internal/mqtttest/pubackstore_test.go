package mqtttest

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A broker that drops the connection instead of acknowledging a publish:
// paho completes the publish's token once it resends the message after
// reconnecting, before any PUBACK; the store reports the message only when
// the resend's PUBACK arrives.
func TestPubackStoreCountsOnlyPubacks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resent := make(chan packets.Packet, 1)
	release := make(chan struct{})
	go fakeBroker(ln, resent, release)

	acks := make(chan string, 4)
	store := NewPubackStore(func(p []byte) { acks <- string(p) })
	c := Connect(t, "tcp://"+ln.Addr().String(), "dev", Persistent, func(o *paho.ClientOptions) { o.SetStore(store) })
	tok := c.Publish("devices/d1/telemetry", 1, false, "m1")
	select {
	case pk := <-resent:
		if !pk.FixedHeader.Dup {
			t.Errorf("second PUBLISH without DUP: %+v", pk.FixedHeader)
		}
	case <-time.After(Timeout):
		t.Fatal("paho did not resend after the reconnect")
	}
	if !Acked(tok, Timeout) {
		t.Fatal("paho's token did not complete on the resend (paho changed: see PubackStore)")
	}
	if len(acks) != 0 {
		t.Fatalf("store reported %q acknowledged before any PUBACK", <-acks)
	}
	close(release)
	select {
	case p := <-acks:
		if p != "m1" {
			t.Fatalf("acknowledged %q, want m1", p)
		}
	case <-time.After(Timeout):
		t.Fatal("the resend's PUBACK was not reported")
	}
}

// fakeBroker accepts MQTT 3.1.1 connections on ln: the first one's
// PUBLISH is never acknowledged (the connection is closed); the second
// one's is sent to resent and acknowledged once release is closed.
func fakeBroker(ln net.Listener, resent chan<- packets.Packet, release <-chan struct{}) {
	for n := 0; ; n++ {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		r := bufio.NewReader(conn)
		if pk, err := readPacket(r, 4); err != nil || pk.FixedHeader.Type != packets.Connect {
			conn.Close()
			continue
		}
		var buf bytes.Buffer
		ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: 4}
		if ack.ConnackEncode(&buf) != nil {
			conn.Close()
			return
		}
		conn.Write(buf.Bytes())
		pk, err := readPacket(r, 4)
		if err != nil || pk.FixedHeader.Type != packets.Publish || n == 0 {
			conn.Close()
			continue
		}
		resent <- pk
		<-release
		buf.Reset()
		puback := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID, ProtocolVersion: 4}
		if puback.PubackEncode(&buf) == nil {
			conn.Write(buf.Bytes())
		}
		go func() { // until the client leaves
			defer conn.Close()
			for {
				if _, err := readPacket(r, 4); err != nil {
					return
				}
			}
		}()
	}
}
