package mqtt

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Listener types accepted in ListenerConfig.Type.
const (
	// TypeTCP is plain MQTT over TCP.
	TypeTCP = "tcp"
	// TypeTLS is MQTT over TLS (ListenerConfig.TLS is required).
	TypeTLS = "tls"
	// TypeWebsocket is MQTT over WebSocket (binary frames, subprotocol
	// "mqtt", any path; see ListenerConfig.AllowedOrigins).
	TypeWebsocket = "websocket"
	// TypeWSS is MQTT over WebSocket over TLS (ListenerConfig.TLS is
	// required).
	TypeWSS = "wss"
)

// listenerTypes lists the accepted types for error messages.
const listenerTypes = "tcp, tls, websocket or wss"

// packetSlack is added to MaxPayloadBytes to get the largest MQTT packet
// the broker reads: fixed header, topic, packet id and MQTT 5 properties.
const packetSlack = 64 << 10

// maxPacketSize is the largest remaining length MQTT can encode (256 MiB).
const maxPacketSize = 268_435_455

// ListenerConfig is one network endpoint devices connect to.
type ListenerConfig struct {
	// ID names the listener in logs and errors; unique.
	ID string `yaml:"id"`
	// Type is "tcp", "tls", "websocket" or "wss".
	Type string `yaml:"type"`
	// Address is host:port, e.g. "127.0.0.1:1883"; an empty host means every
	// interface; port 0 picks a free port.
	Address string `yaml:"address"`
	// TLS is the server certificate and the optional client-certificate
	// check of a tls or wss listener; required for those, refused for the
	// others.
	TLS *TLSConfig `yaml:"tls"`
	// AllowedOrigins are the browser origins ("https://dash.example.com",
	// or "*" for any) a websocket or wss listener accepts. A request
	// without an Origin header (a device, not a browser) is always
	// accepted. Empty: only an Origin whose host equals the request's Host.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Config is the mqtt section of the gateway configuration. Start from
// DefaultConfig: zero values are not replaced by defaults.
type Config struct {
	// Listeners are the endpoints devices connect to; at least one.
	Listeners []ListenerConfig `yaml:"listeners"`
	// MaxPayloadBytes is the largest PUBLISH payload accepted. Packets larger
	// than MaxPayloadBytes plus 64 KiB of header slack are refused while
	// reading (the connection is closed); payloads over the limit that fit
	// the slack are refused (MQTT 5: PUBACK 0x99; MQTT 3.1.1: acknowledged
	// and dropped). MQTT 5 clients are told the packet limit in CONNACK.
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	// MaxInflight is the receive maximum per client (unacknowledged QoS 1/2
	// messages a client may have outstanding towards the broker) and the cap
	// on QoS 1/2 messages the broker keeps per client towards subscribers.
	MaxInflight int `yaml:"max_inflight"`
	// SessionExpiry caps how long a disconnected persistent session (MQTT
	// 3.1.1 CleanSession=false, MQTT 5 session expiry interval) is kept; whole
	// seconds.
	SessionExpiry time.Duration `yaml:"max_session_expiry"`
	// Limits bound what one client, and all of them together, may use.
	Limits LimitsConfig `yaml:"limits"`
}

// LimitsConfig bounds connections, publish rates, topics, retained
// messages and keep-alives. Defaults suit a 1 GB Raspberry Pi.
type LimitsConfig struct {
	// MaxConnections bounds open device connections (TLS handshakes and
	// connections not yet past CONNECT included); more are closed at
	// accept and counted.
	MaxConnections int `yaml:"max_connections"`
	// PublishRate is the messages per second one connection may publish
	// on average (a token bucket of PublishBurst); 0 turns the limit off.
	// Over the rate, the client's messages are read only as fast as the
	// rate allows (counted); a client that stays over the rate for 5 s is
	// disconnected (MQTT 5: DISCONNECT 0x96; counted, logged).
	PublishRate float64 `yaml:"publish_rate"`
	// PublishBurst is the token bucket's size: how many messages a client
	// may publish at once after being quiet.
	PublishBurst int `yaml:"publish_burst"`
	// PublishRateExempt are authenticated identities (auth user names or
	// certificate identities) whose connections have no publish rate: the
	// MQTT uplink of another edgegate (or a bridge) that uses this one as
	// its cloud broker carries all its devices' messages on one
	// connection. Anonymous clients are never exempt.
	PublishRateExempt []string `yaml:"publish_rate_exempt"`
	// MaxTopicLength bounds a topic name or filter, in bytes.
	MaxTopicLength int `yaml:"max_topic_length"`
	// MaxTopicLevels bounds the '/'-separated levels of a topic name or
	// filter.
	MaxTopicLevels int `yaml:"max_topic_levels"`
	// MaxRetainedMessages bounds how many topics hold a retained message.
	MaxRetainedMessages int `yaml:"max_retained_messages"`
	// MaxRetainedBytes bounds the size of all retained messages (topic,
	// payload and properties).
	MaxRetainedBytes yamlconf.ByteSize `yaml:"max_retained_bytes"`
	// ServerKeepAlive, when not 0, is the longest keep-alive an MQTT 5
	// client gets: one that asks for more, or for none (0), gets this one
	// and is told so in CONNACK; whole seconds. MQTT 3.1.1 has no way to
	// tell a client: those keep their own.
	ServerKeepAlive time.Duration `yaml:"server_keep_alive"`
}

// TLSConfig is the TLS side of a tls or wss listener. Files are read at
// start and again, at the next handshake, whenever one of them changes
// (modification time or size), so certificates rotate without a restart; a
// changed file that does not load is logged and the previous certificate
// stays in use. Relative paths are relative to the configuration file's
// directory (see ResolveFiles).
type TLSConfig struct {
	// CertFile is the server certificate chain (PEM), leaf first.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the server certificate's private key (PEM).
	KeyFile string `yaml:"key_file"`
	// ClientCAFile, when set, makes devices present a client certificate
	// signed by one of these CAs (PEM); its verified identity is offered
	// to authentication.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientCerts is "require" (the default with ClientCAFile: a handshake
	// without a valid client certificate fails) or "optional" (a device
	// may connect without one, e.g. to use a password; a certificate it
	// does present must verify).
	ClientCerts string `yaml:"client_certs"`
	// Identity is where a device's identity comes from in its certificate:
	// "cn" (subject common name, the default), "san_dns", "san_email" or
	// "san_uri" (the first subject alternative name of that kind).
	Identity string `yaml:"identity"`
}

// Client certificate modes (TLSConfig.ClientCerts).
const (
	ClientCertsRequire  = "require"
	ClientCertsOptional = "optional"
)

// Where a client certificate's identity comes from (TLSConfig.Identity).
const (
	IdentityCN       = "cn"
	IdentitySANDNS   = "san_dns"
	IdentitySANEmail = "san_email"
	IdentitySANURI   = "san_uri"
)

// DefaultConfig returns one TCP listener "mqtt" on "127.0.0.1:1883"
// (loopback: opening it to the network is a decision, see the auth
// section), 1 MiB payloads, 1024 inflight messages per client, sessions
// kept for 1 h and DefaultLimits.
func DefaultConfig() Config {
	return Config{
		Listeners:       []ListenerConfig{{ID: "mqtt", Type: TypeTCP, Address: "127.0.0.1:1883"}},
		MaxPayloadBytes: 1 << 20,
		MaxInflight:     1024,
		SessionExpiry:   time.Hour,
		Limits:          DefaultLimits(),
	}
}

// DefaultLimits returns limits for a 1 GB board: 5,000 connections (an
// idle connection costs about 36 KiB of heap and stacks: 180 MiB in all),
// 1,000 messages/s per client with bursts of 2,000, topics of 1 KiB and 32
// levels, 10,000 retained messages in 16 MiB, clients' own keep-alive.
func DefaultLimits() LimitsConfig {
	return LimitsConfig{
		MaxConnections:      5000,
		PublishRate:         1000,
		PublishBurst:        2000,
		MaxTopicLength:      1024,
		MaxTopicLevels:      32,
		MaxRetainedMessages: 10000,
		MaxRetainedBytes:    16 << 20,
	}
}

// Validate reports every problem in c, each a *yamlconf.Error with its
// path from the section's root.
func (c Config) Validate() error {
	var errs yamlconf.List
	if len(c.Listeners) == 0 {
		errs.Add(yamlconf.Key("listeners"), "at least one listener is required")
	}
	ids := make(map[string]int, len(c.Listeners))
	addrs := make(map[string]int, len(c.Listeners))
	for i, l := range c.Listeners {
		at := yamlconf.Key("listeners").Index(i)
		switch {
		case l.ID == "":
			errs.Add(at.Key("id"), "must not be empty")
		default:
			if j, dup := ids[l.ID]; dup {
				errs.Add(at.Key("id"), "%q is already used by listeners[%d]", l.ID, j)
			} else {
				ids[l.ID] = i
			}
		}
		switch l.Type {
		case TypeTCP, TypeWebsocket, TypeTLS, TypeWSS:
		case "":
			errs.Add(at.Key("type"), "must not be empty (%s)", listenerTypes)
		default:
			errs.Add(at.Key("type"), "%q is not supported (%s)", l.Type, listenerTypes)
		}
		l.validateTLS(&errs, at)
		l.validateOrigins(&errs, at)
		if err := checkAddress(l.Address); err != nil {
			errs.Add(at.Key("address"), "%v", err)
		} else if j, dup := addrs[l.Address]; dup && !hasZeroPort(l.Address) {
			errs.Add(at.Key("address"), "%q is already used by listeners[%d]", l.Address, j)
		} else {
			addrs[l.Address] = i
		}
	}
	if c.MaxPayloadBytes <= 0 || c.MaxPayloadBytes > maxPacketSize-packetSlack {
		errs.Add(yamlconf.Key("max_payload_bytes"), "must be between 1 and %d, got %d", maxPacketSize-packetSlack, c.MaxPayloadBytes)
	}
	if c.MaxInflight <= 0 || c.MaxInflight > math.MaxUint16 {
		errs.Add(yamlconf.Key("max_inflight"), "must be between 1 and %d, got %d", math.MaxUint16, c.MaxInflight)
	}
	if c.SessionExpiry < 0 || c.SessionExpiry/time.Second > math.MaxUint32 {
		errs.Add(yamlconf.Key("max_session_expiry"), "must be between 0s and %ds, got %s", uint32(math.MaxUint32), c.SessionExpiry)
	}
	errs.Nest(yamlconf.Key("limits"), c.Limits.Validate())
	return errs.Err()
}

// Validate reports every problem in l, with paths from the limits
// section.
func (l LimitsConfig) Validate() error {
	var errs yamlconf.List
	between := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			errs.Add(yamlconf.Key(key), "must be between %d and %d, got %d", lo, hi, v)
		}
	}
	between("max_connections", l.MaxConnections, 1, 1_000_000)
	if l.PublishRate < 0 || math.IsNaN(l.PublishRate) || math.IsInf(l.PublishRate, 0) {
		errs.Add(yamlconf.Key("publish_rate"), "must be 0 (off) or a positive number of messages per second, got %v", l.PublishRate)
	}
	if l.PublishRate > 0 {
		between("publish_burst", l.PublishBurst, 1, 1_000_000)
	}
	seen := make(map[string]bool, len(l.PublishRateExempt))
	for i, u := range l.PublishRateExempt {
		switch {
		case u == "":
			errs.Add(yamlconf.Key("publish_rate_exempt").Index(i), "must not be empty")
		case seen[u]:
			errs.Add(yamlconf.Key("publish_rate_exempt").Index(i), "%q is listed twice", u)
		}
		seen[u] = true
	}
	between("max_topic_length", l.MaxTopicLength, 1, math.MaxUint16)
	between("max_topic_levels", l.MaxTopicLevels, 1, math.MaxUint16)
	between("max_retained_messages", l.MaxRetainedMessages, 0, 10_000_000)
	if l.MaxRetainedBytes < 0 {
		errs.Add(yamlconf.Key("max_retained_bytes"), "must not be negative, got %d", l.MaxRetainedBytes)
	}
	if k := l.ServerKeepAlive; k < 0 || k > math.MaxUint16*time.Second || k%time.Second != 0 {
		errs.Add(yamlconf.Key("server_keep_alive"), "must be 0s (clients' own) or whole seconds up to %ds, got %s", math.MaxUint16, k)
	}
	return errs.Err()
}

// checkAddress accepts host:port with a numeric port 0-65535; the host may
// be empty (all interfaces).
func checkAddress(addr string) error {
	if addr == "" {
		return errors.New("must not be empty (host:port, e.g. \":1883\")")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, e.g. \":1883\": %q", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" || n > math.MaxUint16 {
		return fmt.Errorf("port must be a number between 0 and 65535, got %q", port)
	}
	return nil
}

func hasZeroPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}
