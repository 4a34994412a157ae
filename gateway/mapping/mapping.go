// Package mapping turns a device's MQTT message into a CloudEvent: it matches
// the topic against configured templates, fills source, type and subject from
// the topic's segments, assigns a time-ordered id, and chooses between JSON
// data and data_base64.
//
// mapping does no I/O and imports no other edgegate package but
// internal/yamlconf (its config errors). A *Mapper is immutable after
// Compile and safe for concurrent use.
package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Unmatched policies: what happens to a message whose topic matches no template.
const (
	UnmatchedGeneric = "generic" // map with the generic template (default)
	UnmatchedDrop    = "drop"    // drop it and count it
)

// Extension attribute names every event carries.
const (
	ExtTopic = "mqtttopic"
	ExtQoS   = "mqttqos"
)

// Topic maps MQTT topics that match Match to CloudEvent attributes.
//
// Match is an MQTT-style topic filter where a segment may be a literal, a
// named variable "{name}" matching exactly one level, "+" (one level, not
// named) or, as the last segment, "#" (any remaining levels). Source, Type and
// Subject are templates that may use the variables of Match plus
// {gateway_id}, {topic} and {client_id}.
type Topic struct {
	Match   string `yaml:"match"`
	Source  string `yaml:"source"`
	Type    string `yaml:"type"`
	Subject string `yaml:"subject"`
}

// Config is the events section of the configuration.
type Config struct {
	Topics    []Topic `yaml:"topics"`
	Unmatched string  `yaml:"unmatched"` // generic (default) or drop
}

// DefaultConfig maps devices/{device}/{kind} as the README describes.
func DefaultConfig() Config {
	return Config{
		Topics:    []Topic{DefaultTopic()},
		Unmatched: UnmatchedGeneric,
	}
}

// DefaultTopic is the template for devices/{device}/{kind}.
func DefaultTopic() Topic {
	return Topic{
		Match:   "devices/{device}/{kind}",
		Source:  "/edgegate/{gateway_id}/devices/{device}",
		Type:    "io.edgegate.device.{kind}",
		Subject: "{device}",
	}
}

// genericTopic maps any topic when unmatched is "generic".
func genericTopic() Topic {
	return Topic{
		Match:   "#",
		Source:  "/edgegate/{gateway_id}/clients/{client_id}",
		Type:    "io.edgegate.mqtt.message",
		Subject: "{topic}",
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
	Topic          string
	Payload        []byte
	QoS            byte
	ClientID       string
	ContentType    string // MQTT 5 content type, "" if absent
	UserProperties []Property
	Received       time.Time
}

// ErrUnmatched is returned by Map for a topic that matches no template when
// the unmatched policy is drop.
var ErrUnmatched = errors.New("topic matches no events.topics template")

// Mapper maps messages to CloudEvents.
type Mapper struct {
	gatewayID string
	topics    []compiledTopic
	generic   *compiledTopic // nil when unmatched is drop
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
	if len(errs) > 0 {
		return nil, errs.Err()
	}
	return m, nil
}

// Map builds the CloudEvent for m and returns it. It never fails on payload
// content: bytes that are not JSON travel as data_base64. It returns
// ErrUnmatched when the topic matches no template and unmatched is drop.
func (mp *Mapper) Map(m Message) (event.Event, error) {
	var vars [maxVars]string
	ct := mp.match(m.Topic, &vars)
	if ct == nil {
		return event.Event{}, ErrUnmatched
	}
	x := expander{vars: &vars, gatewayID: mp.gatewayID, msg: &m}

	e := event.New()
	id, err := uuid.NewV7()
	if err != nil {
		return event.Event{}, fmt.Errorf("event id: %w", err)
	}
	e.SetID(id.String())

	source := x.expand(ct.source, true)
	if _, err := url.Parse(source); err != nil {
		// A variable put a ':' into the first segment ("{device}" = "a:b"),
		// which reads as a bad scheme; sdk-go would silently leave the
		// required source empty. Escape it.
		source = strings.ReplaceAll(source, ":", "%3A")
	}
	if source == "" {
		source = "/edgegate/" + url.PathEscape(mp.gatewayID)
	}
	e.SetSource(source)
	typ := x.expand(ct.typ, false)
	if typ == "" {
		typ = "io.edgegate.mqtt.message"
	}
	e.SetType(typ)
	if subject := x.expand(ct.subject, false); subject != "" {
		e.SetSubject(subject)
	}
	received := m.Received
	if received.IsZero() {
		received = time.Now()
	}
	e.SetTime(received.UTC())

	e.SetExtension(ExtTopic, validUTF8(m.Topic))
	e.SetExtension(ExtQoS, int32(m.QoS))
	for _, p := range m.UserProperties {
		name := extensionName(p.Key)
		if name == "" || reserved[name] {
			continue
		}
		if _, dup := e.Extensions()[name]; dup {
			continue
		}
		e.SetExtension(name, validUTF8(p.Value))
	}

	setData(&e, m.Payload, m.ContentType)
	return e, nil
}

// setData chooses the representation of the payload: a JSON value as data
// when the payload is valid JSON and the content type (if any) says JSON,
// data_base64 otherwise. An empty payload gives an event without data.
func setData(e *event.Event, payload []byte, contentType string) {
	if contentType != "" {
		// mime accepts a bare token ("bogus"); RFC 2046 wants type/subtype.
		if mt, _, err := mime.ParseMediaType(contentType); err != nil || !strings.Contains(mt, "/") || validUTF8(contentType) != contentType {
			contentType = "" // not a media type: do not repeat it as datacontenttype
		}
	}
	if len(payload) == 0 {
		if contentType != "" {
			e.SetDataContentType(contentType)
		}
		return
	}
	data := bytes.Clone(payload)
	// json.Valid accepts invalid UTF-8 inside strings; JSON must be UTF-8.
	if (contentType == "" || plainJSON(contentType)) && json.Valid(data) && utf8.Valid(data) {
		if contentType == "" {
			contentType = event.ApplicationJSON
		}
		e.SetDataContentType(contentType)
		e.DataEncoded = data
		e.DataBase64 = false
		return
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	e.SetDataContentType(contentType)
	e.DataEncoded = data
	e.DataBase64 = true
}

// plainJSON reports whether sdk-go writes data of this content type as a raw
// JSON value (its own rule), so only these may carry data instead of
// data_base64.
func plainJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == event.ApplicationJSON || mt == event.TextJSON
}

// reserved holds attribute names that user properties may not take.
var reserved = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true, "data": true,
	"data_base64": true, "datacontentencoding": true, "schemaurl": true,
	ExtTopic: true, ExtQoS: true,
}

// extensionName folds an MQTT user property key into a CloudEvents extension
// name: lower-case ASCII letters and digits, at most 20 characters. It
// returns "" when nothing usable remains.
func extensionName(key string) string {
	var b strings.Builder
	for i := 0; i < len(key) && b.Len() < 20; i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		}
	}
	return b.String()
}

// validUTF8 makes s a valid CloudEvents String: invalid UTF-8, control
// characters (U+0000-U+001F, U+007F-U+009F) and noncharacters, which the
// spec forbids in String attributes (spec.md "Type System") but MQTT topics
// and properties can carry, become U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, notCEString) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if notCEString(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// notCEString reports whether a CloudEvents String may not contain r.
func notCEString(r rune) bool {
	return r <= 0x1f || r >= 0x7f && r <= 0x9f || r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe
}
