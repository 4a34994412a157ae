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
	return b == mochi.OnPublish || b == mochi.OnDisconnect || b == mochi.OnPacketEncode
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
	if !cl.Net.Inline { // Broker.Publish is never fed back to the Handler.
		if err := h.b.onPublish(cl, pk); err != nil {
			return pk, err
		}
	}
	if pk.FixedHeader.Retain && len(pk.Payload) > 0 && !h.b.retained.fits(h.b, pk.TopicName, retainedSize(pk)) {
		pk.FixedHeader.Retain = false // delivered (and stored as an event), not retained
	}
	return pk, nil
}

// OnDisconnect counts connections mochi closed because a packet exceeded
// the maximum packet size.
func (h *brokerHook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
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
// refused '$' topics already.
func (b *Broker) onPublish(cl *mochi.Client, pk packets.Packet) error {
	qos := pk.FixedHeader.Qos
	if strings.HasPrefix(pk.TopicName, "$") { // a safety net: guardHook answers these
		b.m.droppedReserved.Inc()
		b.log.Debug("publish to reserved topic refused", "client", cl.ID, "topic", pk.TopicName)
		return b.refuse(cl, pk, packets.ErrTopicNameInvalid)
	}
	if !b.allowPublish(cl, pk.TopicName) {
		return b.refuse(cl, pk, b.deniedCode())
	}
	if len(pk.Payload) > b.cfg.MaxPayloadBytes {
		b.m.tooLarge.Inc()
		b.log.Debug("payload too large, refused", "client", cl.ID, "topic", pk.TopicName,
			"payload_bytes", len(pk.Payload), "max_payload_bytes", b.cfg.MaxPayloadBytes)
		return b.refuse(cl, pk, packets.ErrPacketTooLarge)
	}

	ctx := b.handlerCtx
	if ctx.Err() != nil { // shutting down: do not start storing.
		b.m.errOverloaded.Inc()
		return b.overloaded(cl, pk)
	}
	err := b.handle(ctx, b.message(cl, pk))
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
