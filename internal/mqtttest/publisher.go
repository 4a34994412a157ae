package mqtttest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Publisher is a device that publishes QoS 1 messages over MQTT 5 for as
// long as its context lasts, through a gateway that may be killed and
// restarted: it reconnects (clean session) whenever the connection fails
// and learns the fate of each message from its own PUBACK, read with
// mochi's codec. A message counts as acknowledged only on a PUBACK with a
// success reason; a negative PUBACK (0x97 quota exceeded, …) counts as
// refused; a message whose connection died first is neither. Unlike a paho
// client (#563), it never reports an acknowledgement the broker did not
// send. Set the fields, then call Run once.
type Publisher struct {
	Addr     string // host:port of the MQTT listener
	ClientID string
	Topic    string
	// Interval is the time between two publishes; Inflight bounds the
	// unacknowledged ones (default 16). While the window is full the
	// device waits, as a real one does.
	Interval time.Duration
	Inflight int
	// Payload returns message seq's payload (seqs start at 0 and never
	// repeat, across reconnects).
	Payload func(seq int64) []byte
	// Acked and Refused, when set, learn each message's outcome; they are
	// called from the reading goroutine, one at a time.
	Acked   func(seq int64)
	Refused func(seq int64, reason byte)

	sent, acked, refused, unanswered, connects, dialFailures atomic.Int64
}

// PublisherStats counts a Publisher's messages and connections so far.
type PublisherStats struct {
	Sent, Acked, Refused, Unanswered int64
	Connects, DialFailures           int64
}

// Stats returns the counts so far; safe while Run runs.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		Sent: p.sent.Load(), Acked: p.acked.Load(), Refused: p.refused.Load(), Unanswered: p.unanswered.Load(),
		Connects: p.connects.Load(), DialFailures: p.dialFailures.Load(),
	}
}

// Run publishes until ctx ends, then waits at most a second for the
// acknowledgements still due, disconnects and returns.
func (p *Publisher) Run(ctx context.Context) {
	if p.Inflight <= 0 {
		p.Inflight = 16
	}
	var seq int64
	for ctx.Err() == nil {
		conn, err := p.dial(ctx)
		if err != nil {
			p.dialFailures.Add(1)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		p.connects.Add(1)
		seq = p.session(ctx, conn, seq)
	}
}

// dial connects and completes the MQTT 5 handshake.
func (p *Publisher) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, err
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), ClientIdentifier: p.ClientID, Keepalive: 30, Clean: true,
		},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(buf.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	ack, err := readPacket(bufio.NewReader(conn), 5)
	if err == nil && (ack.FixedHeader.Type != packets.Connack || ack.ReasonCode >= 0x80) {
		err = fmt.Errorf("connect refused: type %d reason %#x", ack.FixedHeader.Type, ack.ReasonCode)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// session publishes on conn until it fails or ctx ends, and returns the
// next seq.
func (p *Publisher) session(ctx context.Context, conn net.Conn, seq int64) int64 {
	var mu sync.Mutex
	pending := make(map[uint16]int64)
	window := make(chan struct{}, p.Inflight)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		br := bufio.NewReader(conn)
		for {
			conn.SetReadDeadline(time.Now().Add(45 * time.Second))
			pk, err := readPacket(br, 5)
			if err != nil {
				return
			}
			if pk.FixedHeader.Type != packets.Puback {
				continue
			}
			mu.Lock()
			s, ok := pending[pk.PacketID]
			delete(pending, pk.PacketID)
			mu.Unlock()
			if !ok {
				continue
			}
			<-window
			if pk.ReasonCode < 0x80 {
				p.acked.Add(1)
				if p.Acked != nil {
					p.Acked(s)
				}
			} else {
				p.refused.Add(1)
				if p.Refused != nil {
					p.Refused(s, pk.ReasonCode)
				}
			}
		}
	}()
	defer func() {
		// Give the acknowledgements due a moment, then drop the connection;
		// what is still pending was never answered.
		deadline := time.After(time.Second)
	wait:
		for {
			mu.Lock()
			n := len(pending)
			mu.Unlock()
			if n == 0 {
				break
			}
			select {
			case <-readerDone:
				break wait
			case <-deadline:
				break wait
			case <-time.After(10 * time.Millisecond):
			}
		}
		conn.Close()
		<-readerDone
		mu.Lock()
		p.unanswered.Add(int64(len(pending)))
		mu.Unlock()
	}()

	tick := time.NewTicker(max(p.Interval, time.Microsecond))
	defer tick.Stop()
	var pid uint16
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return seq
		case <-readerDone:
			return seq
		case <-tick.C:
		}
		select {
		case window <- struct{}{}:
		case <-ctx.Done():
			return seq
		case <-readerDone:
			return seq
		}
		pid = pid%0xffff + 1
		mu.Lock()
		pending[pid] = seq
		mu.Unlock()
		pk := packets.Packet{
			FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
			ProtocolVersion: 5,
			TopicName:       p.Topic,
			Payload:         p.Payload(seq),
			PacketID:        pid,
		}
		buf.Reset()
		if err := pk.PublishEncode(&buf); err != nil {
			panic(err) // a bug in the caller's topic or payload
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		seq++
		p.sent.Add(1)
		if _, err := conn.Write(buf.Bytes()); err != nil {
			return seq
		}
	}
}

// readPacket reads one packet of protocol version v from r (io.EOF when
// the broker closed the connection).
func readPacket(r *bufio.Reader, v byte) (packets.Packet, error) {
	var pk packets.Packet
	pk.ProtocolVersion = v
	b, err := r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return pk, err
	}
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectDecode(body)
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback, packets.Pubrec, packets.Pubcomp, packets.Pubrel:
		err = pk.PubackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}
