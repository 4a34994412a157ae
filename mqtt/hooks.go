package mqtt

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// brokerHook connects mochi to the Broker: it hands device publishes to the
// Handler, counts oversized packets and advertises the packet size limit.
type brokerHook struct {
	mochi.HookBase
	b *Broker
}

func (h *brokerHook) ID() string { return "edgegate-broker" }

func (h *brokerHook) Provides(b byte) bool {
	switch b {
	case mochi.OnPublish, mochi.OnDisconnect, mochi.OnPacketEncode, mochi.OnSessionEstablish, mochi.OnSessionEstablished:
		return true
	}
	return false
}

// OnSessionEstablish notes the connection this one takes the session
// over from (same client id), before mochi disconnects it.
func (h *brokerHook) OnSessionEstablish(cl *mochi.Client, _ packets.Packet) {
	old, ok := h.b.srv.Clients.Get(cl.ID)
	cc, _ := cl.Net.Conn.(*clientConn)
	if ok && old != cl && cc != nil {
		cc.prev = h.b.pipelineOf(old)
	}
}

// OnSessionEstablished runs before mochi reads the new connection's first
// packet: the publishes of the connection it took over are answered
// first, so the device's resends of them are recognised as stored.
func (h *brokerHook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	if cc, _ := cl.Net.Conn.(*clientConn); cc != nil && cc.prev != nil {
		cc.prev.settle()
		cc.prev = nil
	}
}

// OnPublish runs on the publishing client's read goroutine before mochi
// writes the acknowledgement (server.go processPublish). What it returns
// decides the acknowledgement:
//   - nil: normal ack, delivered to subscribers;
//   - packets.ErrRejectPacket: no ack, not delivered (we may have written
//     our own negative ack first);
//   - packets.CodeSuccessIgnore: normal ack, not delivered, not retained.
//
// A plain error would be acked with 0x00 and delivered, so none is returned.
func (h *brokerHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.Mods.MaxSize == injectedMark { // fed back by the pipeline: stored already
		pk.Mods.MaxSize = 0
	} else if !cl.Net.Inline { // Broker.Publish is never fed back to the Handler.
		if err := h.b.onPublish(cl, pk, nil); err != nil {
			return pk, err
		}
	}
	if pk.FixedHeader.Retain && len(pk.Payload) > 0 && !h.b.retained.fits(h.b, pk.TopicName, retainedSize(pk)) {
		pk.FixedHeader.Retain = false // delivered (and stored as an event), not retained
	}
	return pk, nil
}

// OnDisconnect counts connections mochi closed because a packet exceeded
// the maximum packet size. It runs on the read goroutine once its loop has
// ended.
func (h *brokerHook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	h.b.settle(cl) // the connection's stored publishes are answered before presence hears of its end
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.m.tooLarge.Inc()
		h.b.log.Debug("packet too large, connection closed", "client", cl.ID, "max_packet_bytes", h.b.maxPacket)
	}
}

// OnPacketEncode adds the maximum packet size to MQTT 5 CONNACKs so that
// well-behaved clients do not send oversized packets at all.
func (h *brokerHook) OnPacketEncode(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		pk.Properties.MaximumPacketSize = h.b.maxPacket
	}
	return pk
}

// onPublish hands one device PUBLISH to the Handler and maps the outcome to
// what mochi should do (see brokerHook.OnPublish). guardHook counted it and
// refused '$' topics already. With pipe (an AsyncHandler's QoS 0/1
// message, from guardHook.OnPacketRead) the message is queued on the
// pipeline (packets.ErrRejectPacket) unless it can be answered at once.
func (b *Broker) onPublish(cl *mochi.Client, pk packets.Packet, pipe *pipeline) error {
	if strings.HasPrefix(pk.TopicName, "$") { // a safety net: guardHook answers these
		b.m.droppedReserved.Inc()
		b.log.Debug("publish to reserved topic refused", "client", cl.ID, "topic", pk.TopicName)
		b.settle(cl)
		return b.refuse(cl, pk, packets.ErrTopicNameInvalid)
	}
	if !b.allowPublish(cl, pk.TopicName) {
		b.settle(cl)
		return b.refuse(cl, pk, b.deniedCode())
	}
	if len(pk.Payload) > b.cfg.MaxPayloadBytes {
		b.m.tooLarge.Inc()
		b.log.Debug("payload too large, refused", "client", cl.ID, "topic", pk.TopicName,
			"payload_bytes", len(pk.Payload), "max_payload_bytes", b.cfg.MaxPayloadBytes)
		b.settle(cl)
		return b.refuse(cl, pk, packets.ErrPacketTooLarge)
	}

	ctx := b.handlerCtx
	if ctx.Err() != nil { // shutting down: do not start storing.
		b.settle(cl)
		b.m.errOverloaded.Inc()
		return b.overloaded(cl, pk)
	}
	m := b.message(cl, pk)
	if pipe != nil {
		return b.beginPublish(ctx, b.h.(AsyncHandler), pipe, cl, pk, m)
	}
	b.settle(cl) // QoS 2, or a large packet (whose memory the pipeline must not keep)
	return b.outcome(cl, pk, b.handle(ctx, m))
}

// beginPublish begins a QoS 0/1 publish with the AsyncHandler and queues
// it on the connection's pipeline, which answers it once it is stored
// (packets.ErrRejectPacket: mochi does nothing now). It answers at once,
// after the publishes before it, what needs no waiting or cannot be
// queued (the queues hold maxPipedBytes already).
func (b *Broker) beginPublish(ctx context.Context, h AsyncHandler, pipe *pipeline, cl *mochi.Client, pk packets.Packet, m Message) error {
	if pk.FixedHeader.Dup {
		// A resend: the Handler recognises a stored message only once
		// its storage is complete, and the original may still be queued
		// (paho sends a message and then its resend after a reconnect).
		pipe.settle()
	}
	pipe.room()
	p, err := b.begin(ctx, h, m)
	if err == nil {
		if b.pipedBytes.Load() < maxPipedBytes && b.pipelined(pipe, cl, pk, p) {
			return packets.ErrRejectPacket
		}
		pipe.settle()
		err = b.waitPending(cl, pk, p)
	} else {
		pipe.settle()
	}
	return b.outcome(cl, pk, err)
}

// outcome counts and logs what the Handler said of a publish and returns
// what mochi should do (see brokerHook.OnPublish), answering refusals
// itself where mochi would not.
func (b *Broker) outcome(cl *mochi.Client, pk packets.Packet, err error) error {
	qos := pk.FixedHeader.Qos
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrRejected):
		b.m.errRejected.Inc()
		b.m.droppedRejected.Inc()
		b.log.Debug("message rejected by handler", "client", cl.ID, "topic", pk.TopicName, "qos", qos, "err", err)
		return b.refuse(cl, pk, packets.ErrPayloadFormatInvalid)
	case errors.Is(err, ErrOverloaded):
		b.m.errOverloaded.Inc()
	default:
		b.m.errOther.Inc()
	}
	b.log.Debug("message not stored", "client", cl.ID, "topic", pk.TopicName, "qos", qos, "err", err)
	return b.overloaded(cl, pk)
}

// handle calls the Handler; a panic in it becomes an error (the message is
// not acknowledged) instead of taking the gateway down.
func (b *Broker) handle(ctx context.Context, m Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			b.log.Error("mqtt handler panicked", "client", m.ClientID, "topic", m.Topic,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return b.h.Handle(ctx, m)
}

// refuse drops a message that will never be accepted. MQTT 5 QoS 1/2 gets a
// negative ack with code; MQTT 3.1.1 QoS 1/2 is acknowledged (so the device
// stops resending it) but not delivered.
func (b *Broker) refuse(cl *mochi.Client, pk packets.Packet, code packets.Code) error {
	switch {
	case pk.FixedHeader.Qos == 0:
		return packets.ErrRejectPacket
	case cl.Properties.ProtocolVersion == 5:
		b.writeAck(cl, pk, code)
		return packets.ErrRejectPacket
	default:
		return packets.CodeSuccessIgnore
	}
}

// overloaded answers a message that could not be stored now. MQTT 5 QoS 1/2
// gets a negative ack 0x97; MQTT 3.1.1 QoS 1/2 gets no ack and the
// connection is closed so the device resends after reconnecting; QoS 0 is
// dropped.
func (b *Broker) overloaded(cl *mochi.Client, pk packets.Packet) error {
	switch {
	case pk.FixedHeader.Qos == 0:
		b.m.droppedOverloaded.Inc()
	case cl.Properties.ProtocolVersion == 5:
		b.writeAck(cl, pk, packets.ErrQuotaExceeded)
	default:
		// Closing (not DISCONNECT, which 3.1.1 servers must not send) before
		// returning ErrRejectPacket: mochi writes nothing for this packet and
		// its read loop ends at the closed connection. A persistent session
		// is kept; mochi treats this like a graceful close, so the client's
		// will is not published.
		b.m.overloadDisconnects.Inc()
		b.log.Debug("closing connection after unstored message", "client", cl.ID, "topic", pk.TopicName)
		cl.Stop(packets.ErrQuotaExceeded)
	}
	return packets.ErrRejectPacket
}

// writeAck writes a negative PUBACK (QoS 1) or PUBREC (QoS 2) without
// properties. mochi's own negative-ack path always writes PUBACK, also for
// QoS 2, so it is not used.
func (b *Broker) writeAck(cl *mochi.Client, pk packets.Packet, code packets.Code) {
	typ := packets.Puback
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	err := cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: typ},
		PacketID:    pk.PacketID,
		ReasonCode:  code.Code,
	})
	if err != nil {
		b.log.Debug("write negative ack", "client", cl.ID, "reason_code", code.Code, "err", err)
	}
}

func (b *Broker) message(cl *mochi.Client, pk packets.Packet) Message {
	id := b.identity(cl)
	m := Message{
		Topic:           pk.TopicName,
		Payload:         pk.Payload,
		QoS:             pk.FixedHeader.Qos,
		Retain:          pk.FixedHeader.Retain,
		Dup:             pk.FixedHeader.Dup,
		PacketID:        pk.PacketID,
		ClientID:        cl.ID,
		Username:        id.Username,
		AuthMethod:      id.Method,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		ContentType:     pk.Properties.ContentType,
	}
	if pk.Properties.PayloadFormatFlag {
		m.PayloadFormat = pk.Properties.PayloadFormat
	}
	if n := len(pk.Properties.User); n > 0 {
		m.UserProperties = make([]Property, n)
		for i, p := range pk.Properties.User {
			m.UserProperties[i] = Property{Key: p.Key, Value: p.Val}
		}
	}
	return m
}
