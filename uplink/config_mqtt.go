package uplink

import (
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// MQTT session stores accepted in MQTTConfig.SessionStore.
const (
	// SessionStoreFile keeps unacknowledged publishes in files (paho
	// FileStore) under MQTTConfig.StateDir.
	SessionStoreFile = "file"
	// SessionStoreMemory keeps them in memory.
	SessionStoreMemory = "memory"
)

// MQTT sender defaults.
const (
	// DefaultMQTTTopic is the default topic template of an mqtt uplink.
	DefaultMQTTTopic = "gateways/{gateway_id}/events/{type}"
	// DefaultMQTTKeepAlive is the default MQTT keep-alive interval.
	DefaultMQTTKeepAlive = 30 * time.Second
	// DefaultMQTTMaxInFlight bounds unacknowledged publishes (AWS IoT Core
	// allows 100 per connection).
	DefaultMQTTMaxInFlight = 100
)

// MQTTConfig is the mqtt section of an uplink: QoS 1 publishes of
// structured-mode CloudEvents to a cloud MQTT broker.
type MQTTConfig struct {
	// URL is the broker: tcp://, mqtt://, tls://, ssl://, mqtts://, ws://
	// or wss://, with a port (but for ws and wss).
	URL string `yaml:"url"`
	// Topic is the topic template. Variables: {gateway_id}, {type},
	// {source}, {subject}, {id}.
	Topic string `yaml:"topic"`
	// ClientID is the MQTT client identifier; "{gateway_id}" is replaced by
	// the gateway id. Default "edgegate-{gateway_id}-<name>".
	ClientID string `yaml:"client_id"`
	// KeepAlive is the MQTT keep-alive interval.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// SessionStore keeps the publishes awaiting a PUBACK: "memory"
	// (default) or "file" (paho's FileStore in StateDir). Memory loses
	// nothing: a batch leaves the gateway's disk buffer only after every
	// PUBACK, and is sent again after a reconnect or restart. A file store
	// costs two file operations per message (~10x slower, SD-card wear).
	SessionStore string `yaml:"session_store"`
	// StateDir holds the file session store; default uplinks/<name> beside
	// the buffer's directory.
	StateDir string `yaml:"state_dir"`
	// MaxInFlight bounds unacknowledged publishes.
	MaxInFlight int `yaml:"max_in_flight"`
	// Timeout bounds connecting, writing and waiting for a PUBACK.
	Timeout time.Duration `yaml:"timeout"`
	// Auth holds the username and password, in basic.
	Auth AuthConfig `yaml:"auth"`
	// TLS configures custom CAs, client certificates (mTLS) and server
	// name checks for tls://, ssl://, mqtts:// and wss:// URLs.
	TLS TLSConfig `yaml:"tls"`
}

// DefaultMQTTConfig returns the mqtt section's defaults; URL has none.
func DefaultMQTTConfig() MQTTConfig {
	return MQTTConfig{
		Topic: DefaultMQTTTopic, KeepAlive: DefaultMQTTKeepAlive, SessionStore: SessionStoreMemory,
		MaxInFlight: DefaultMQTTMaxInFlight, Timeout: DefaultTimeout,
	}
}

// SetDefaults sets the defaults before the section is decoded
// (yamlconf.Defaulter).
func (m *MQTTConfig) SetDefaults() { *m = DefaultMQTTConfig() }

var (
	mqttSchemes = map[string]bool{"tcp": true, "mqtt": true, "tls": true, "ssl": true, "mqtts": true, "ws": true, "wss": true}
	mqttSecure  = map[string]bool{"tls": true, "ssl": true, "mqtts": true, "wss": true}
)

// Validate reports every problem in the section, each a *yamlconf.Error
// with its path from the section. It reads the files auth and tls name.
func (m MQTTConfig) Validate() error {
	var errs yamlconf.List
	secure := false
	if m.URL == "" {
		errs.Add(yamlconf.Key("url"), "is required")
	} else {
		u, err := url.Parse(m.URL)
		switch {
		case err != nil || u.Host == "" || !mqttSchemes[u.Scheme]:
			errs.Add(yamlconf.Key("url"), "must be a tcp://, mqtt://, tls://, ssl://, mqtts://, ws:// or wss:// URL")
		case u.Port() == "" && u.Scheme != "ws" && u.Scheme != "wss":
			errs.Add(yamlconf.Key("url"), "must include a port, e.g. tls://host:8883")
		case u.User != nil:
			errs.Add(yamlconf.Key("url"), "must not carry credentials: use auth.basic")
		default:
			secure = mqttSecure[u.Scheme]
		}
	}
	if err := checkTopicTemplate(m.Topic); err != nil {
		errs.Add(yamlconf.Key("topic"), "%v", err)
	}
	if m.ClientID != "" && (len(m.ClientID) > 65535 || strings.ContainsRune(m.ClientID, 0) || !utf8.ValidString(m.ClientID)) {
		errs.Add(yamlconf.Key("client_id"), "must be valid UTF-8 without NUL, at most 65535 bytes")
	}
	if m.KeepAlive < time.Second {
		errs.Add(yamlconf.Key("keep_alive"), "must be at least 1s")
	}
	if m.SessionStore != SessionStoreFile && m.SessionStore != SessionStoreMemory {
		errs.Add(yamlconf.Key("session_store"), "must be file or memory, got %q", m.SessionStore)
	}
	transport{m.URL, secure, m.Timeout, m.MaxInFlight, m.Auth, m.TLS, true}.validate(&errs)
	return errs.Err()
}
