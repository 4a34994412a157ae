package cloudevent

// The mapping of a device's MQTT message to a CloudEvent: it matches the
// topic against configured templates, fills source, type and subject from
// the topic's segments, assigns a time-ordered id, and chooses between JSON
// data and data_base64.

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Unmatched policies: what happens to a message whose topic matches no template.
const (
	UnmatchedGeneric = "generic" // map with the generic template (default)
	UnmatchedDrop    = "drop"    // drop it and count it
)

// Topic maps MQTT topics that match Match to CloudEvent attributes.
//
// Match is an MQTT-style topic filter where a segment may be a literal, a
// named variable "{name}" matching exactly one level, "+" (one level, not
// named) or, as the last segment, "#" (any remaining levels). Source, Type and
// Subject are templates that may use the variables of Match plus
// {gateway_id}, {topic} and {client_id}.
//
// Source, Type and Subject may be left out (or empty); each then takes a
// default that depends only on which variables Match names (withDefaults):
// a level named {device} is the device, a level named {kind} the kind of
// message, and without them the publishing client is the device:
//
//	source   /edgegate/{gateway_id}/devices/{device}   or /edgegate/{gateway_id}/clients/{client_id}
//	type     io.edgegate.device.{kind}                 or io.edgegate.mqtt.message
//	subject  {device}                                  or {client_id}
//
// So every event of an entry has a subject naming its device, and rule
// state keyed on the subject is kept per device. An entry with only
// match: devices/{device}/{kind} is DefaultTopic.
type Topic struct {
	// Match is the topic filter: literal levels, {name} (one level, named
	// for the templates), + (one level) and, last, # (the rest).
	Match string `yaml:"match"`
	// Source is the template of the event's source; default
	// /edgegate/{gateway_id}/devices/{device} when Match names {device},
	// else /edgegate/{gateway_id}/clients/{client_id}.
	Source string `yaml:"source"`
	// Type is the template of the event's type; default
	// io.edgegate.device.{kind} when Match names {kind}, else
	// io.edgegate.mqtt.message.
	Type string `yaml:"type"`
	// Subject is the template of the event's subject, the device rule
	// state is kept for; default {device} when Match names it, else
	// {client_id}.
	Subject string `yaml:"subject"`
}

// Config is the events section of the configuration.
type Config struct {
	// Topics map topics to events, first match wins. Templates may use
	// the variables of match plus {gateway_id}, {topic} and {client_id}.
	Topics []Topic `yaml:"topics"`
	// Unmatched is what happens to a message no entry matches: generic
	// (an event of type io.edgegate.mqtt.message, source its client,
	// subject its topic) or drop (counted).
	Unmatched string `yaml:"unmatched"`
	// Presence turns devices connecting and disconnecting into events.
	Presence PresenceConfig `yaml:"presence"`
}

// PresenceConfig is events.presence: whether devices connecting and
// disconnecting become events (see Mapper.Presence).
type PresenceConfig struct {
	// Enabled makes an event of each connect and disconnect
	// (io.edgegate.device.connected and io.edgegate.device.disconnected).
	Enabled bool `yaml:"enabled"`
}

// DefaultConfig maps devices/{device}/{kind} as the README describes, and
// makes presence events.
func DefaultConfig() Config {
	return Config{
		Topics:    []Topic{DefaultTopic()},
		Unmatched: UnmatchedGeneric,
		Presence:  PresenceConfig{Enabled: true},
	}
}

// DefaultTopic is the template for devices/{device}/{kind}.
func DefaultTopic() Topic {
	return Topic{
		Match:   "devices/{device}/{kind}",
		Source:  defaultDeviceSource,
		Type:    defaultKindType,
		Subject: "{device}",
	}
}

// Default templates of an events.topics entry (see Topic).
const (
	defaultDeviceSource = "/edgegate/{gateway_id}/devices/{device}"
	defaultClientSource = "/edgegate/{gateway_id}/clients/{client_id}"
	defaultKindType     = "io.edgegate.device.{kind}"
	defaultType         = "io.edgegate.mqtt.message"
)

// withDefaults fills the templates t leaves empty, by the variables its
// match names (names, from compileTopic): see Topic.
func (t Topic) withDefaults(names map[string]int) Topic {
	_, device := names["device"]
	_, kind := names["kind"]
	if t.Source == "" {
		t.Source = defaultClientSource
		if device {
			t.Source = defaultDeviceSource
		}
	}
	if t.Type == "" {
		t.Type = defaultType
		if kind {
			t.Type = defaultKindType
		}
	}
	if t.Subject == "" {
		t.Subject = "{client_id}"
		if device {
			t.Subject = "{device}"
		}
	}
	return t
}

// genericTopic maps any topic when unmatched is "generic".
func genericTopic() Topic {
	return Topic{
		Match:   "#",
		Source:  defaultClientSource,
		Type:    defaultType,
		Subject: "{topic}",
	}
}

// presenceTopic gives presence events their source and subject (the type
// is TypeConnected or TypeDisconnected).
func presenceTopic() Topic {
	return Topic{
		Match:   "#",
		Source:  defaultClientSource,
		Type:    TypeConnected,
		Subject: "{client_id}",
	}
}

// Validate reports every problem in the section, each a *yamlconf.Error
// with its path from the section's root.
func (c Config) Validate() error {
	_, err := compile(c, "gateway")
	return err
}

// Property is an MQTT 5 user property.
type Property struct{ Key, Value string }

// Message is what mapping needs of an MQTT publish.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	ClientID string
	// Username is the client's authenticated identity, "" for an
	// anonymous client; AuthMethod says how it was established
	// (anonymous, password, certificate). The event carries both and
	// ClientID as ExtUser, ExtAuth and ExtClientID.
	Username       string
	AuthMethod     string
	ContentType    string // MQTT 5 content type, "" if absent
	UserProperties []Property
	Received       time.Time
	// Will marks the client's will, published by the broker when its
	// connection ended abnormally (ExtWill).
	Will bool
	// DroppedProperty, if set, is called for each user property that did
	// not become an extension, with the reason (DropReserved,
	// DropDuplicate, DropCollision).
	DroppedProperty func(m Message, p Property, reason string)
}

// ErrUnmatched is returned by Map for a topic that matches no template when
// the unmatched policy is drop.
var ErrUnmatched = errors.New("topic matches no events.topics template")

// Mapper maps messages to CloudEvents.
type Mapper struct {
	gatewayID string
	topics    []compiledTopic
	generic   *compiledTopic // nil when unmatched is drop
	presence  *compiledTopic // nil when presence events are off
}

// Compile checks the configuration and prepares the templates.
func Compile(c Config, gatewayID string) (*Mapper, error) {
	return compile(c, gatewayID)
}

func compile(c Config, gatewayID string) (*Mapper, error) {
	var errs yamlconf.List
	m := &Mapper{gatewayID: gatewayID}
	for i, t := range c.Topics {
		ct, err := compileTopic(t)
		if err != nil {
			errs.Nest(yamlconf.Key("topics").Index(i), err)
			continue
		}
		m.topics = append(m.topics, ct)
	}
	switch c.Unmatched {
	case "", UnmatchedGeneric:
		g, err := compileTopic(genericTopic())
		if err != nil {
			errs.Nest(yamlconf.Key("unmatched"), err)
		}
		m.generic = &g
	case UnmatchedDrop:
	default:
		errs.Add(yamlconf.Key("unmatched"), "must be %q or %q, got %q", UnmatchedGeneric, UnmatchedDrop, c.Unmatched)
	}
	if c.Presence.Enabled {
		p, err := compileTopic(presenceTopic())
		if err != nil {
			errs.Nest(yamlconf.Key("presence"), err)
		}
		m.presence = &p
	}
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	return m, nil
}

// Map builds the event for m. It never fails on payload content:
// bytes that are not JSON travel as data_base64 (see setData). It returns
// ErrUnmatched when the topic matches no template and unmatched is drop.
// The event's Data shares m.Payload's bytes.
//
// Extensions, in this order: ExtTopic, ExtQoS, the publisher's identity
// (ExtClientID, ExtUser unless anonymous, ExtAuth), ExtContentType and
// ExtWill when they apply, then the user properties (see
// foldProperties); a user property never sets a name ReservedForGateway.
func (mp *Mapper) Map(m Message) (Event, error) {
	var vars [maxVars]string
	ct := mp.match(m.Topic, &vars)
	if ct == nil {
		return Event{}, ErrUnmatched
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("event id: %w", err)
	}
	// id, source, type and subject are cut from one string.
	x := expander{vars: &vars, gatewayID: mp.gatewayID, msg: &m}
	var stack [256]byte
	b := appendUUID(stack[:0], id)
	endID := len(b)
	b = x.appendTo(b, ct.source, true)
	endSource := len(b)
	b = x.appendTo(b, ct.typ, false)
	endType := len(b)
	b = x.appendTo(b, ct.subject, false)
	s := string(b)
	e := Event{ID: s[:endID], Source: mp.source(ct, s[endID:endSource])}
	// Type and subject are trimmed as sdk-go's setters did.
	if e.Type = strings.TrimSpace(s[endSource:endType]); e.Type == "" {
		e.Type = defaultType
	}
	e.Subject = strings.TrimSpace(s[endType:])
	received := m.Received
	if received.IsZero() {
		received = time.Now()
	}
	e.Time = received.UTC()

	e.Extensions = make([]Extension, 2, 5+len(m.UserProperties))
	e.Extensions[0] = Extension{Name: ExtTopic, Value: String(SanitizeString(m.Topic))}
	e.Extensions[1] = Extension{Name: ExtQoS, Value: Integer(int32(m.QoS))}
	setIdentity(&e, m.ClientID, m.Username, m.AuthMethod)
	setData(&e, m.Payload, m.ContentType)
	if m.Will {
		e.Extensions = append(e.Extensions, Extension{Name: ExtWill, Value: Bool(true)})
	}
	foldProperties(&e, &m)
	return e, nil
}

// setIdentity appends the extensions that say who published: ExtClientID,
// ExtUser (unless user is "", an anonymous client) and ExtAuth (unless
// auth is "").
func setIdentity(e *Event, clientID, user, auth string) {
	e.Extensions = append(e.Extensions, Extension{Name: ExtClientID, Value: String(SanitizeString(clientID))})
	if user != "" {
		e.Extensions = append(e.Extensions, Extension{Name: ExtUser, Value: String(SanitizeString(user))})
	}
	if auth != "" {
		e.Extensions = append(e.Extensions, Extension{Name: ExtAuth, Value: String(SanitizeString(auth))})
	}
}

// source checks the expanded source template. A template whose literal
// text is a plain absolute path expands to a URI reference that needs no
// checking (every variable is path-escaped), unless an empty first
// variable makes it start with "//"; everything else goes through
// parsedSource.
func (mp *Mapper) source(ct *compiledTopic, s string) string {
	if ct.plainSource && !strings.HasPrefix(s, "//") {
		return s
	}
	return mp.parsedSource(s)
}

// parsedSource makes s a URI reference as sdk-go's SetSource left it:
// parsed and written out again. A ':' that makes s unparsable (a variable
// put it into the first segment: "{device}" = "a:b" reads as a bad scheme)
// is escaped. An s that still does not parse, or is empty, gives the
// gateway's own source (sdk-go left the required source empty).
func (mp *Mapper) parsedSource(s string) string {
	if _, err := url.Parse(s); err != nil {
		s = strings.ReplaceAll(s, ":", "%3A")
	}
	if u, err := url.Parse(s); err == nil && strings.TrimSpace(u.String()) != "" {
		return u.String()
	}
	return "/edgegate/" + url.PathEscape(mp.gatewayID)
}

// appendUUID appends id in its canonical text form.
func appendUUID(dst []byte, id uuid.UUID) []byte {
	const hex = "0123456789abcdef"
	for i, c := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hex[c>>4], hex[c&0xf])
	}
	return dst
}

// setData chooses the representation of the payload and its
// datacontenttype, the same for every uplink mode:
//   - valid JSON (and UTF-8) under a JSON content type (application/json,
//     text/json) or none travels as a JSON value (data);
//   - anything else as bytes (data_base64), under the declared content
//     type, or application/octet-stream when there is none;
//   - a declared type that is not a media type is not used; one that names
//     a CloudEvents format, or declares JSON (…/json, …+json) over a
//     payload that is not JSON in UTF-8, becomes application/octet-stream:
//     under the HTTP binary binding the first would make a receiver read
//     the payload as the event, the second makes a strict receiver refuse
//     it.
//
// Whenever datacontenttype is not the declared type (space trimmed), the
// declared type is kept in ExtContentType. An empty payload gives an event
// without data.
func setData(e *Event, payload []byte, declared string) {
	contentType := strings.TrimSpace(declared)
	if contentType != "" {
		// mime accepts a bare token ("bogus"); RFC 2046 wants type/subtype.
		if mt, _, err := mime.ParseMediaType(contentType); err != nil || !strings.Contains(mt, "/") || SanitizeString(declared) != declared {
			contentType = "" // not a media type: do not repeat it as datacontenttype
		} else if CloudEventsFormat(contentType) {
			contentType = "application/octet-stream"
		}
	}
	switch {
	case len(payload) == 0:
		e.DataContentType = contentType
	case JSONContentType(contentType) && validJSON(payload):
		if contentType == "" {
			contentType = "application/json"
		}
		e.DataContentType, e.Data = contentType, payload
	default:
		if contentType == "" || declaresJSON(contentType) && !validJSON(payload) {
			contentType = "application/octet-stream"
		}
		e.DataContentType, e.Data, e.DataBase64 = contentType, payload, true
	}
	if declared != "" && e.DataContentType != strings.TrimSpace(declared) {
		e.Extensions = append(e.Extensions, Extension{Name: ExtContentType, Value: String(SanitizeString(declared))})
	}
}

// validJSON reports whether b is one JSON value in UTF-8 (json.Valid
// accepts invalid UTF-8 inside strings).
func validJSON(b []byte) bool { return json.Valid(b) && utf8.Valid(b) }
