package uplink

import (
	"fmt"
	"log/slog"
	"net/url"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Sender types: the name of the section that configures the sender.
const (
	// TypeHTTP posts CloudEvents over HTTP (batch, binary or structured).
	TypeHTTP = "http"
	// TypeMQTT publishes CloudEvents to a cloud MQTT broker (MQTT 3.1.1,
	// QoS 1, structured JSON).
	TypeMQTT = "mqtt"
)

// Config describes one uplink (one cloud endpoint). It is the YAML section
// of one entry in the gateway's uplinks list:
//
//	uplinks:
//	  - name: cloud
//	    http: {url: https://…, mode: batch}   # or mqtt: {url: tls://…:8883}
//	    batch: {max_events: 500}              # delivery: batch, retry, replay, dead_letter
//
// The sender's own settings live in its section, http or mqtt (exactly one
// is set: the section names the type); the delivery loop's settings
// (DeliveryConfig) are at the entry's top level.
type Config struct {
	// Name identifies the uplink in metrics, logs and routes: 1-64 of a-z,
	// 0-9, '_' and '-'.
	Name string `yaml:"name"`
	// HTTP configures a CloudEvents-over-HTTP sender.
	HTTP *HTTPConfig `yaml:"http"`
	// MQTT configures a sender to a cloud MQTT broker.
	MQTT *MQTTConfig `yaml:"mqtt"`
	// DeliveryConfig holds the settings of the delivery loop (Delivery):
	// batch, retry, replay and dead_letter, at the uplink's top level.
	DeliveryConfig `yaml:",inline"`

	// GatewayID is the gateway's id, for {gateway_id} in the MQTT topic and
	// client id. It is not read from the uplink's YAML: the gateway sets it.
	GatewayID string `yaml:"-"`
}

// DefaultConfig returns a Config with the delivery defaults and no sender:
// set Name and one of HTTP (DefaultHTTPConfig) or MQTT (DefaultMQTTConfig).
func DefaultConfig() Config {
	var c Config
	c.SetDefaults()
	return c
}

// SetDefaults sets the defaults of an uplinks entry before the YAML is
// decoded into it (yamlconf.Defaulter); the sections get theirs when the
// decoder allocates them.
func (c *Config) SetDefaults() { c.DeliveryConfig.SetDefaults() }

// Type is the sender type: TypeHTTP or TypeMQTT after Validate.
func (c Config) Type() string {
	switch {
	case c.HTTP != nil:
		return TypeHTTP
	case c.MQTT != nil:
		return TypeMQTT
	}
	return ""
}

// Mode is how events are sent: the http mode; mqtt is always structured.
func (c Config) Mode() string {
	switch {
	case c.HTTP != nil:
		return c.HTTP.Mode
	case c.MQTT != nil:
		return ModeStructured
	}
	return ""
}

// URL is the sender's endpoint, as configured (it may hold credentials:
// show Redacted().URL()).
func (c Config) URL() string {
	switch {
	case c.HTTP != nil:
		return c.HTTP.URL
	case c.MQTT != nil:
		return c.MQTT.URL
	}
	return ""
}

// Validate reports every problem in c, each a *yamlconf.Error with its path
// from the entry. It reads the files named in auth and tls (they must exist
// and parse) but never puts a secret into an error. Whether dead_letter
// names an uplink is ValidateList's to check.
func (c Config) Validate() error {
	var errs yamlconf.List
	switch {
	case c.Name == "":
		errs.Add(yamlconf.Key("name"), "is required")
	case !validName(c.Name):
		errs.Add(yamlconf.Key("name"), "%q must be 1-64 of a-z, 0-9, '_' or '-'", c.Name)
	}
	switch {
	case c.HTTP != nil && c.MQTT != nil:
		errs.Add(yamlconf.Key("mqtt"), "an uplink has one sender: set http or mqtt, not both")
	case c.HTTP != nil:
		errs.Nest(yamlconf.Key("http"), c.HTTP.Validate())
	case c.MQTT != nil:
		errs.Nest(yamlconf.Key("mqtt"), c.MQTT.Validate())
	default:
		errs.Add(yamlconf.Path{}, "a sender is required: an http or mqtt section")
	}
	errs.Nest(yamlconf.Path{}, c.DeliveryConfig.Validate())
	if c.DeadLetter == c.Name && c.Name != "" {
		errs.Add(yamlconf.Key("dead_letter"), "must name another uplink, not this one")
	}
	return errs.Err()
}

// ValidateList checks the uplinks of a gateway: each one (Validate), and
// what only the list knows: there is at least one, names are unique and a
// dead_letter names another uplink of the list. Each problem is a
// *yamlconf.Error with its path from the list ([1].name).
func ValidateList(list []Config) error {
	var errs yamlconf.List
	if len(list) == 0 {
		errs.Add(yamlconf.Path{}, "at least one uplink is required")
	}
	seen := make(map[string]int, len(list))
	for i, c := range list {
		at := yamlconf.Path{}.Index(i)
		errs.Nest(at, c.Validate())
		if j, dup := seen[c.Name]; dup && c.Name != "" {
			errs.Add(at.Key("name"), "%q is already used by uplinks[%d]", c.Name, j)
			continue
		}
		seen[c.Name] = i
	}
	for i, c := range list {
		if _, ok := seen[c.DeadLetter]; c.DeadLetter != "" && c.DeadLetter != c.Name && !ok {
			errs.Add(yamlconf.Path{}.Index(i).Key("dead_letter"), "no uplink is named %q", c.DeadLetter)
		}
	}
	return errs.Err()
}

// validName reports whether s is 1-64 of a-z, 0-9, '_' and '-'.
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '_' && b != '-' {
			return false
		}
	}
	return s != "" && len(s) <= 64
}

// Keys that were at an uplinks entry's top level before the sender's
// settings moved into its http or mqtt section.
var (
	movedSenderKeys = map[string]bool{
		"url": true, "mode": true, "timeout": true, "max_in_flight": true, "headers": true,
		"compression": true, "auth": true, "tls": true, "client_id": true, "topic": true,
		"keep_alive": true, "session_store": true, "state_dir": true,
	}
	mqttOnlyKeys = map[string]bool{"client_id": true, "topic": true, "keep_alive": true, "session_store": true, "state_dir": true}
	httpOnlyKeys = map[string]bool{"mode": true, "headers": true, "compression": true}
)

// MovedKey says where a key of the old flat uplinks entry went
// (yamlconf.KeyMover): the sender's settings into its section, chosen by
// the section present or by the old `type:`.
func (c *Config) MovedKey(at yamlconf.Path, key string, sibling func(string) (string, bool)) string {
	kind := TypeHTTP
	_, hasHTTP := sibling(TypeHTTP)
	_, hasMQTT := sibling(TypeMQTT)
	if typ, _ := sibling("type"); hasMQTT && !hasHTTP || !hasHTTP && typ == TypeMQTT || mqttOnlyKeys[key] {
		kind = TypeMQTT
	}
	switch {
	case key == "type":
		return fmt.Sprintf("removed: the sender's section names the type; put the sender's settings under %s", at.Key(kind))
	case !movedSenderKeys[key]:
		return ""
	case kind == TypeMQTT && key == "mode":
		return "removed: an mqtt uplink always publishes structured mode"
	case kind == TypeMQTT && httpOnlyKeys[key]:
		return "not supported by an mqtt uplink"
	}
	return "moved to " + at.Key(kind).Key(key).String()
}

// redactedValue replaces secrets in Redacted.
const redactedValue = "<redacted>"

// Redacted returns a copy of c that is safe to show (logs, /status): header
// values, inline tokens and passwords become "<redacted>", and the URL loses
// its password and query values. File paths are kept: they are not secrets.
func (c Config) Redacted() Config {
	r := c
	if c.HTTP != nil {
		h := *c.HTTP
		h.URL = redactURL(h.URL)
		if h.Headers != nil {
			h.Headers = make(map[string]string, len(c.HTTP.Headers))
			for k := range c.HTTP.Headers {
				h.Headers[k] = redactedValue
			}
		}
		h.Auth = h.Auth.redacted()
		r.HTTP = &h
	}
	if c.MQTT != nil {
		m := *c.MQTT
		m.URL = redactURL(m.URL)
		m.Auth = m.Auth.redacted()
		r.MQTT = &m
	}
	return r
}

// String describes the uplink without secrets.
func (c Config) String() string {
	return fmt.Sprintf("uplink %s (%s %s %s)", c.Name, c.Type(), c.Mode(), redactURL(c.URL()))
}

// LogValue makes slog print the redacted view.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name),
		slog.String("type", c.Type()),
		slog.String("mode", c.Mode()),
		slog.String("url", redactURL(c.URL())),
	)
}

// redactURL drops the password and query values of a URL. An unparsable
// URL is replaced entirely.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return redactedValue
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment = ""
	return u.String()
}
