package cloudevent

// Presence events: a device connecting to the broker or disconnecting
// from it, as an event of its own.

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// The types of presence events.
const (
	TypeConnected    = "io.edgegate.device.connected"
	TypeDisconnected = "io.edgegate.device.disconnected"
)

// Presence is a device that connected (its session established) or
// disconnected.
type Presence struct {
	Connected bool // false: disconnected
	ClientID  string
	// Username and AuthMethod are the client's authenticated identity and
	// how it was established, as in Message.
	Username   string
	AuthMethod string
	Listener   string // the id of the listener it connected to
	RemoteAddr string
	// ProtocolVersion is the MQTT protocol level: 3, 4 (3.1.1) or 5.
	ProtocolVersion byte
	// Reason says why it disconnected (a short snake_case word, e.g.
	// connection_lost); Detail is the error text, if any. Both "" for a
	// connect.
	Reason, Detail string
	Time           time.Time // zero: now
}

// presenceData is the data of a presence event.
type presenceData struct {
	ClientID        string `json:"client_id"`
	Username        string `json:"username,omitempty"`
	Auth            string `json:"auth,omitempty"`
	Listener        string `json:"listener,omitempty"`
	RemoteAddr      string `json:"remote_addr,omitempty"`
	ProtocolVersion byte   `json:"protocol_version,omitempty"`
	Reason          string `json:"reason,omitempty"`
	Detail          string `json:"detail,omitempty"`
}

// PresenceEnabled reports whether the configuration makes presence events
// (events.presence.enabled).
func (mp *Mapper) PresenceEnabled() bool { return mp.presence != nil }

// Presence builds the event of a device connecting (TypeConnected) or
// disconnecting (TypeDisconnected): source
// /edgegate/{gateway_id}/clients/{client_id}, subject the client id, the
// identity extensions of Map (ExtClientID, ExtUser, ExtAuth), and JSON data
// with client_id, username, auth, listener, remote_addr, protocol_version
// and, for a disconnect, reason and detail (empty ones left out). It
// returns an error only when presence events are off or no id can be made.
func (mp *Mapper) Presence(p Presence) (Event, error) {
	if mp.presence == nil {
		return Event{}, fmt.Errorf("presence events are off (events.presence.enabled)")
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("event id: %w", err)
	}
	var vars [maxVars]string
	x := expander{vars: &vars, gatewayID: mp.gatewayID, msg: &Message{ClientID: p.ClientID}}
	e := Event{
		ID:      id.String(),
		Source:  mp.source(mp.presence, string(x.appendTo(nil, mp.presence.source, true))),
		Type:    TypeConnected,
		Subject: strings.TrimSpace(string(x.appendTo(nil, mp.presence.subject, false))),
	}
	if !p.Connected {
		e.Type = TypeDisconnected
	}
	at := p.Time
	if at.IsZero() {
		at = time.Now()
	}
	e.Time = at.UTC()
	e.Extensions = make([]Extension, 0, 3)
	setIdentity(&e, p.ClientID, p.Username, p.AuthMethod)
	d := presenceData{
		ClientID: p.ClientID, Username: p.Username, Auth: p.AuthMethod, Listener: p.Listener,
		RemoteAddr: p.RemoteAddr, ProtocolVersion: p.ProtocolVersion,
	}
	if !p.Connected {
		d.Reason, d.Detail = p.Reason, p.Detail
	}
	// encoding/json writes invalid UTF-8 as U+FFFD: the data is valid JSON.
	if e.Data, err = json.Marshal(d); err != nil {
		return Event{}, fmt.Errorf("presence data: %w", err)
	}
	e.DataContentType = "application/json"
	return e, nil
}
