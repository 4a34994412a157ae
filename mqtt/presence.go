package mqtt

// Device presence: connects, disconnects and wills, handed to a Handler
// that also implements PresenceHandler.
//
// What mochi v2.7.9 does, and what this builds on (server.go):
//   - attachClient calls OnSessionEstablish after authentication and
//     before the client is listed or CONNACKed, OnSessionEstablished after
//     the CONNACK and before the first packet is read, and OnDisconnect
//     once the read loop has ended; a connection refused earlier gets
//     none of them, the inline client never runs attachClient.
//   - A will is published by sendLWT when the read loop ends with an
//     error (a lost connection, a protocol error, DISCONNECT 0x04, a
//     takeover, the server shutting down), before OnDisconnect, on the
//     client's goroutine; with a will delay, sendDelayedLWT publishes it
//     later from the server's housekeeping loop (and not at all if the
//     client came back, or if its session expired first: mochi then finds
//     no client and calls no hook). Either way OnWillSent follows the
//     delivery to subscribers. A will never passes OnPublish nor
//     OnACLCheck, and OnWill cannot cancel it: the topic is checked here,
//     at OnSessionEstablish, and a will that may not be published is
//     removed before it can be sent.
//   - mochi keeps a will's topic, payload, QoS, retain flag and user
//     properties, not its content type or payload format indicator.

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// PresenceHandler is an optional interface of the Handler given to New. A
// Handler that implements it also learns when devices connect and
// disconnect, and receives their wills.
//
// Presence is called with Connected set once a device's session is
// established (after its CONNACK, before any of its PUBLISHes reaches
// Handle), and with Connected unset once its connection has ended (after
// its last Handle and its Will). Will is called after the broker published
// a device's will to local subscribers; m is the will as a Message
// (ContentType and PayloadFormat are not known). Both run on the device's
// goroutine (a delayed will: on the broker's housekeeping goroutine), so
// they should return promptly; they are never called for the gateway's
// own Broker.Publish client.
//
// Nothing is acknowledged: a returned error is counted
// (edgegate_mqtt_presence_not_stored_total) and logged at debug level.
// ctx is the one Handle gets until shutdown begins; the disconnects and
// wills of shutdown get a context of their own, ending after shutdownGrace.
type PresenceHandler interface {
	Presence(ctx context.Context, p Presence) error
	Will(ctx context.Context, m Message) error
}

// Presence is a device that connected or disconnected.
type Presence struct {
	Connected bool // false: disconnected
	// ClientInfo is who connected or disconnected; its ConnectedSince is
	// Time for a connect and zero for a disconnect.
	ClientInfo
	// Reason says why a device disconnected (one of the Reason…
	// constants); Detail is the error text, if any.
	Reason, Detail string
	Time           time.Time
}

// Why a device disconnected (Presence.Reason).
const (
	ReasonDisconnect         = "disconnect"           // it sent DISCONNECT
	ReasonDisconnectWithWill = "disconnect_with_will" // DISCONNECT 0x04: publish my will
	ReasonConnectionLost     = "connection_lost"      // closed without DISCONNECT
	ReasonKeepAliveTimeout   = "keep_alive_timeout"
	ReasonTakenOver          = "session_taken_over" // a new connection with its client id
	ReasonServerShutdown     = "server_shutdown"
	ReasonOverloaded         = "overloaded"       // MQTT 3.1.1: a QoS 1/2 message could not be stored
	ReasonPacketTooLarge     = "packet_too_large" // over the maximum packet size
	ReasonRateLimited        = "rate_limited"     // over its publish rate for too long
	ReasonProtocolError      = "protocol_error"   // the broker refused a packet
	ReasonError              = "error"            // anything else
)

// presenceHook tells a PresenceHandler about connects, disconnects and
// wills, and keeps wills the device may not publish from being sent.
type presenceHook struct {
	mochi.HookBase
	b *Broker
	h PresenceHandler // nil: the Handler does not implement it

	notStored        map[bool]*metrics.Counter // Presence, by Connected
	willNotStored    *metrics.Counter
	willReserved     *metrics.Counter
	willTopicLimit   *metrics.Counter
	willTooLarge     *metrics.Counter
	willNotPermitted *metrics.Counter
}

// newPresenceHook registers its metrics in set:
//
//	edgegate_mqtt_presence_not_stored_total{event="connected|disconnected|will"}
//	edgegate_mqtt_wills_dropped_total{reason="reserved_topic|topic_limit|too_large|not_permitted"}
//	    wills removed at connect, never sent
func newPresenceHook(b *Broker, set *metrics.Set) *presenceHook {
	h := &presenceHook{b: b}
	h.h, _ = b.h.(PresenceHandler)
	h.notStored = map[bool]*metrics.Counter{
		true:  set.GetOrCreateCounter(`edgegate_mqtt_presence_not_stored_total{event="connected"}`),
		false: set.GetOrCreateCounter(`edgegate_mqtt_presence_not_stored_total{event="disconnected"}`),
	}
	h.willNotStored = set.GetOrCreateCounter(`edgegate_mqtt_presence_not_stored_total{event="will"}`)
	h.willReserved = set.GetOrCreateCounter(`edgegate_mqtt_wills_dropped_total{reason="reserved_topic"}`)
	h.willTopicLimit = set.GetOrCreateCounter(`edgegate_mqtt_wills_dropped_total{reason="topic_limit"}`)
	h.willTooLarge = set.GetOrCreateCounter(`edgegate_mqtt_wills_dropped_total{reason="too_large"}`)
	h.willNotPermitted = set.GetOrCreateCounter(`edgegate_mqtt_wills_dropped_total{reason="not_permitted"}`)
	return h
}

func (h *presenceHook) ID() string { return "edgegate-presence" }

func (h *presenceHook) Provides(b byte) bool {
	switch b {
	case mochi.OnSessionEstablish:
		return true
	case mochi.OnSessionEstablished, mochi.OnDisconnect, mochi.OnWillSent:
		return h.h != nil
	}
	return false
}

// OnSessionEstablish runs after authentication, before the client is
// listed: nothing else touches it yet. A will the device may not publish
// is removed here, so mochi never sends it.
func (h *presenceHook) OnSessionEstablish(cl *mochi.Client, pk packets.Packet) {
	if atomic.LoadUint32(&cl.Properties.Will.Flag) == 0 {
		return
	}
	topic := cl.Properties.Will.TopicName
	var dropped *metrics.Counter
	switch {
	case strings.HasPrefix(topic, "$"):
		dropped = h.willReserved
	case h.b.overTopicLimits(topic):
		dropped = h.willTopicLimit
	case len(cl.Properties.Will.Payload) > h.b.cfg.MaxPayloadBytes:
		dropped = h.willTooLarge
	case !h.b.willPermitted(cl, topic):
		dropped = h.willNotPermitted
	default:
		return
	}
	dropped.Inc()
	h.b.log.Debug("will removed: the device may not publish it", "client", cl.ID, "topic", topic,
		"payload_bytes", len(cl.Properties.Will.Payload))
	cl.Properties.Will = mochi.Will{}
}

func (h *presenceHook) OnSessionEstablished(cl *mochi.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	h.presence(cl, true, nil)
}

func (h *presenceHook) OnDisconnect(cl *mochi.Client, err error, expire bool) {
	if cl.Net.Inline || cl.Net.Conn == nil { // restored from storage: never connected here
		return
	}
	h.presence(cl, false, err)
}

// OnWillSent hands the will mochi just published to the handler.
func (h *presenceHook) OnWillSent(cl *mochi.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	m := h.b.message(cl, pk)
	ctx, cancel := h.b.presenceCtx()
	defer cancel()
	if err := h.h.Will(ctx, m); err != nil {
		h.willNotStored.Inc()
		h.b.log.Debug("will not stored", "client", cl.ID, "topic", m.Topic, "err", err)
	}
}

func (h *presenceHook) presence(cl *mochi.Client, connected bool, err error) {
	now := time.Now()
	p := Presence{Connected: connected, Time: now}
	var since time.Time
	if connected {
		since = now
	}
	p.ClientInfo = h.b.clientInfo(cl, since)
	if !connected {
		p.Reason, p.Detail = disconnectReason(cl.StopCause(), err)
	}
	ctx, cancel := h.b.presenceCtx()
	defer cancel()
	if err := h.h.Presence(ctx, p); err != nil {
		h.notStored[connected].Inc()
		h.b.log.Debug("presence event not stored", "client", cl.ID, "connected", connected, "err", err)
	}
}

// presenceCtx is the context of a presence call: the Handler's until
// shutdown begins, then one that gives the disconnects and wills of
// shutdown shutdownGrace to be stored.
func (b *Broker) presenceCtx() (context.Context, context.CancelFunc) {
	if b.handlerCtx.Err() == nil {
		return b.handlerCtx, func() {}
	}
	return context.WithTimeout(context.WithoutCancel(b.handlerCtx), shutdownGrace)
}

// disconnectReason names why a connection ended: cause is what stopped
// the client first (mochi's StopCause), err what its read loop returned.
func disconnectReason(cause, err error) (reason, detail string) {
	if cause == nil {
		cause = err
	}
	if cause == nil {
		return ReasonDisconnect, ""
	}
	detail = cause.Error()
	var code packets.Code
	var ne net.Error
	switch {
	case errors.As(cause, &code):
		switch code {
		case packets.CodeDisconnect, packets.CodeSuccess:
			return ReasonDisconnect, ""
		case packets.CodeDisconnectWillMessage:
			return ReasonDisconnectWithWill, ""
		case packets.ErrSessionTakenOver:
			return ReasonTakenOver, detail
		case packets.ErrServerShuttingDown:
			return ReasonServerShutdown, detail
		case packets.ErrKeepAliveTimeout:
			return ReasonKeepAliveTimeout, detail
		case packets.ErrQuotaExceeded:
			return ReasonOverloaded, detail
		case packets.ErrPacketTooLarge:
			return ReasonPacketTooLarge, detail
		case packets.ErrMessageRateTooHigh:
			return ReasonRateLimited, detail
		}
		if code.Code >= packets.ErrUnspecifiedError.Code {
			return ReasonProtocolError, detail
		}
	case errors.As(cause, &ne) && ne.Timeout():
		return ReasonKeepAliveTimeout, detail
	case errors.Is(cause, io.EOF), errors.Is(cause, io.ErrUnexpectedEOF), errors.Is(cause, net.ErrClosed),
		errors.Is(cause, syscall.ECONNRESET), errors.Is(cause, syscall.EPIPE), errors.Is(cause, mochi.ErrConnectionClosed):
		return ReasonConnectionLost, detail
	}
	return ReasonError, detail
}
