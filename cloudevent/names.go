package cloudevent

import (
	"mime"
	"strings"
	"unicode/utf8"
)

// SpecVersion is the CloudEvents version of every event edgegate writes.
const SpecVersion = "1.0"

// Extension attributes edgegate sets. Names follow the CloudEvents rules
// (lower-case a-z and 0-9, at most 20 characters).
const (
	// ExtTopic is the MQTT topic the device published to (String).
	ExtTopic = "mqtttopic"
	// ExtQoS is the QoS of that publish (Integer).
	ExtQoS = "mqttqos"
	// ExtReplayed (true) marks an event sent after an outage; its time
	// attribute keeps the original time. Encoders render it from
	// Event.Replayed; it is never stored.
	ExtReplayed = "replayed"
	// ExtError is the text of the failure that dead-lettered an event.
	ExtError = "edgegateerror"
	// ExtErrorCode is the HTTP status of that failure (absent if none).
	ExtErrorCode = "edgegateerrorcode"
	// ExtErrorDest is the name of the uplink that refused the event.
	ExtErrorDest = "edgegateerrordest"
	// ExtAttempts is the number of delivery attempts made.
	ExtAttempts = "edgegateattempts"

	// ExtClientID is the MQTT client id of the device that published the
	// event's message (or connected, or left its will) (String).
	ExtClientID = "edgegateclientid"
	// ExtUser is that client's authenticated identity: the user name its
	// password was checked for, or the identity of its verified client
	// certificate (String); absent for an anonymous client.
	ExtUser = "edgegateuser"
	// ExtAuth is how the client authenticated: anonymous, password or
	// certificate (String).
	ExtAuth = "edgegateauth"
	// ExtContentType is the content type the device declared (MQTT 5),
	// when datacontenttype is not that type: one that names a CloudEvents
	// format, JSON over a payload that is not JSON, or not a media type
	// (String).
	ExtContentType = "edgegatecontenttype"
	// ExtWill (true) marks an event made of a device's will message, which
	// the broker published for it when its connection ended abnormally.
	ExtWill = "edgegatewill"
)

// Prefixes of extension names that only edgegate sets: a device's user
// property never takes a name starting with one (see ReservedForGateway).
const (
	GatewayPrefix = "edgegate"
	MQTTPrefix    = "mqtt"
)

// MaxExtensionName is the longest extension name edgegate writes (the
// spec's SHOULD limit).
const MaxExtensionName = 20

// IsContextAttribute reports whether name is a CloudEvents 1.0 context
// attribute (specversion, id, source, type, subject, time,
// datacontenttype, dataschema).
func IsContextAttribute(name string) bool {
	switch name {
	case "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema":
		return true
	}
	return false
}

// Reserved reports whether an extension may not take name: a context
// attribute, a member of the JSON format that holds data (data,
// data_base64), or an attribute of CloudEvents 0.3 that readers still
// interpret (datacontentencoding, schemaurl).
func Reserved(name string) bool {
	switch name {
	case "data", "data_base64", "datacontentencoding", "schemaurl":
		return true
	}
	return IsContextAttribute(name)
}

// ReservedForGateway reports whether a device's MQTT 5 user property may
// not become an extension of this name: a name Reserved for the spec, one
// starting with GatewayPrefix or MQTTPrefix, or ExtReplayed. The gateway
// sets these; a device must not be able to forge them.
func ReservedForGateway(name string) bool {
	return Reserved(name) || name == ExtReplayed ||
		strings.HasPrefix(name, GatewayPrefix) || strings.HasPrefix(name, MQTTPrefix)
}

// ValidExtensionName reports whether name may name an extension attribute
// edgegate writes: 1 to MaxExtensionName lower-case ASCII letters or
// digits. It does not check Reserved.
func ValidExtensionName(name string) bool {
	return len(name) <= MaxExtensionName && lowerAlnum(name)
}

// lowerAlnum reports whether s is one or more lower-case ASCII letters
// and digits (the spec's rule for attribute names, of any length).
func lowerAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// ExtensionName folds an MQTT user property key into lower-case ASCII
// letters and digits, every other character left out, cut at
// MaxExtensionName characters. It returns "" when nothing usable remains.
// Different keys may fold to the same name; the mapping keeps them apart
// (see foldProperties).
func ExtensionName(key string) string {
	f := appendFolded(nil, key)
	return string(f[:min(len(f), MaxExtensionName)])
}

// SanitizeString makes s a valid CloudEvents String: invalid UTF-8,
// control characters (U+0000-U+001F, U+007F-U+009F) and noncharacters,
// which the spec forbids in String attributes (spec.md "Type System") but
// MQTT topics and properties can carry, become U+FFFD. A valid s is
// returned as it is, without allocating.
func SanitizeString(s string) string {
	if validString(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if notCEString(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

// validString reports whether s is a valid CloudEvents String.
func validString(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= 0x1f || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || notCEString(r) {
			return false
		}
		i += size
	}
	return true
}

// notCEString reports whether a CloudEvents String may not contain r.
func notCEString(r rune) bool {
	return r <= 0x1f || r >= 0x7f && r <= 0x9f || r >= 0xfdd0 && r <= 0xfdef || r&0xfffe == 0xfffe
}

// CloudEventsFormat reports whether a content type names a CloudEvents
// format (application/cloudevents, application/cloudevents+json,
// application/cloudevents-batch+json, …, in any case, with or without
// parameters). Under the HTTP binding such a Content-Type means structured
// mode: the body would be read as the event itself, so such a type never
// travels as datacontenttype.
func CloudEventsFormat(ct string) bool {
	const prefix = "application/cloudevents"
	ct = strings.TrimSpace(ct)
	return len(ct) >= len(prefix) && strings.EqualFold(ct[:len(prefix)], prefix)
}

// declaresJSON reports whether a media type says its content is JSON: a
// subtype json or ending in +json (application/json, text/json,
// application/vnd.acme+json), the types a strict receiver parses as JSON.
func declaresJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	_, sub, ok := strings.Cut(mt, "/")
	return ok && (sub == "json" || strings.HasSuffix(sub, "+json"))
}

// JSONContentType reports whether data of this datacontenttype travels as
// a JSON value (the data member) rather than data_base64: no content type,
// or a media type of application/json or text/json. Other JSON-based types
// (application/vnd.acme+json) go as data_base64, which every reader takes
// byte for byte.
func JSONContentType(ct string) bool {
	if ct == "" {
		return true
	}
	switch ct { // the common cases, without parsing
	case "application/json", "text/json":
		return true
	case "application/octet-stream":
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || mt == "text/json")
}
