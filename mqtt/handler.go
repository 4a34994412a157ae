package mqtt

import (
	"context"
	"errors"
)

// Property is one MQTT 5 user property. Keys may repeat.
type Property struct {
	Key, Value string
}

// Message is one PUBLISH received from a device.
type Message struct {
	// Topic is the topic name, with any MQTT 5 topic alias resolved. It
	// never starts with '$'.
	Topic string
	// Payload is valid only during Handle and must not be modified (it is
	// also what subscribers receive); copy it to keep it.
	Payload []byte
	// QoS is the quality of service the message was received with (0, 1, 2).
	QoS byte
	// Retain is the PUBLISH retain flag.
	Retain bool
	// Dup is the PUBLISH DUP flag: the device says this is a resend of a
	// message it sent before (same PacketID) without getting its ack.
	Dup bool
	// PacketID identifies a QoS 1/2 message within the client's session
	// (0 for QoS 0).
	PacketID uint16
	// ClientID is the MQTT client identifier (assigned by the broker if the
	// device sent an empty one).
	ClientID string
	// Username is the client's authenticated identity: the user name its
	// password was checked for, or the identity taken from its verified
	// client certificate; "" for an anonymous client (a CONNECT user name
	// that nothing checked is never trusted).
	Username string
	// AuthMethod says how Username was established: AuthAnonymous,
	// AuthPassword or AuthCertificate.
	AuthMethod string
	// ProtocolVersion is 3 (MQTT 3.1), 4 (MQTT 3.1.1) or 5.
	ProtocolVersion byte
	// ContentType is the MQTT 5 content type, "" if absent.
	ContentType string
	// PayloadFormat is the MQTT 5 payload format indicator (1 = UTF-8), 0 if
	// absent.
	PayloadFormat byte
	// UserProperties are the MQTT 5 user properties in wire order, nil if
	// none.
	UserProperties []Property
}

// How a client authenticated (Message.AuthMethod).
const (
	AuthAnonymous   = "anonymous"
	AuthPassword    = "password"
	AuthCertificate = "certificate"
)

// Handler receives every device PUBLISH.
//
// Handle is called synchronously on the publishing client's goroutine,
// before the broker acknowledges the message, so one client's messages are
// handled one at a time and in order; different clients call Handle
// concurrently. Handle is never called for messages published with
// Broker.Publish, for topics starting with '$', or for payloads over
// Config.MaxPayloadBytes. A QoS 1/2 message may be handed over more than
// once (the device resends until it gets an acknowledgement).
//
// The returned error decides what the device sees:
//
//   - nil means "durably stored": the PUBACK/PUBREC goes out and the message
//     is delivered to local MQTT subscribers (and retained if flagged).
//   - ErrOverloaded, or any error that is not ErrRejected, means "not stored,
//     try again later"; the message is never acknowledged as received and is
//     not delivered. MQTT 5 QoS 1/2: PUBACK/PUBREC with reason 0x97 (quota
//     exceeded). MQTT 3.1.1 QoS 1/2: no acknowledgement, and the connection is
//     closed so that the device resends its unacknowledged messages when it
//     reconnects (3.1.1 resends only on reconnect). QoS 0: dropped.
//   - ErrRejected means "never acceptable": not delivered, not retried.
//     MQTT 5 QoS 1/2: PUBACK/PUBREC with reason 0x99 (payload format
//     invalid). MQTT 3.1.1 QoS 1/2: acknowledged normally so that the device
//     does not resend it forever. QoS 0: dropped.
//
// ctx is cancelled when the broker shuts down; Handle should then return
// promptly (an error, unless the message was already stored).
type Handler interface {
	Handle(ctx context.Context, m Message) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m Message) error

// Handle calls f(ctx, m).
func (f HandlerFunc) Handle(ctx context.Context, m Message) error { return f(ctx, m) }

var (
	// ErrOverloaded is returned by a Handler that could not store a message
	// now (buffer full, disk low, shutting down); the device should retry
	// later. Wrap it to add detail.
	ErrOverloaded = errors.New("mqtt: message not stored, retry later")
	// ErrRejected is returned by a Handler for a message that is
	// unacceptable and always will be; the device must not retry it. Wrap it
	// to add detail.
	ErrRejected = errors.New("mqtt: message rejected")
)
