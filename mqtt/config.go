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
	// TypeWebsocket is MQTT over WebSocket (binary frames, subprotocol
	// "mqtt", any path, any Origin).
	TypeWebsocket = "websocket"
)

// packetSlack is added to MaxPayloadBytes to get the largest MQTT packet
// the broker reads: fixed header, topic, packet id and MQTT 5 properties.
const packetSlack = 64 << 10

// maxPacketSize is the largest remaining length MQTT can encode (256 MiB).
const maxPacketSize = 268_435_455

// ListenerConfig is one network endpoint devices connect to.
type ListenerConfig struct {
	// ID names the listener in logs, errors and Broker.Addr; unique.
	ID string `yaml:"id"`
	// Type is "tcp" or "websocket".
	Type string `yaml:"type"`
	// Address is host:port, e.g. ":1883"; port 0 picks a free port.
	Address string `yaml:"address"`
}

// Config is the mqtt section of the gateway configuration. Start from
// DefaultConfig: zero values are not replaced by defaults.
type Config struct {
	// Listeners are the endpoints devices connect to; at least one.
	Listeners []ListenerConfig `yaml:"listeners"`
	// MaxPayloadBytes is the largest PUBLISH payload accepted. Packets larger
	// than MaxPayloadBytes plus 64 KiB of header slack are refused while
	// reading (the connection is closed); payloads over the limit that fit
	// the slack are refused like ErrRejected. MQTT 5 clients are told the
	// packet limit in CONNACK.
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	// MaxInflight is the receive maximum per client (unacknowledged QoS 1/2
	// messages a client may have outstanding towards the broker) and the cap
	// on QoS 1/2 messages the broker keeps per client towards subscribers.
	MaxInflight int `yaml:"max_inflight"`
	// SessionExpiry caps how long a disconnected persistent session (MQTT
	// 3.1.1 CleanSession=false, MQTT 5 session expiry interval) is kept; whole
	// seconds.
	SessionExpiry time.Duration `yaml:"max_session_expiry"`
}

// DefaultConfig returns one TCP listener "mqtt" on "127.0.0.1:1883"
// (loopback: opening it to the network is a decision, see the auth
// section), 1 MiB payloads, 1024 inflight messages per client and sessions
// kept for 1 h.
func DefaultConfig() Config {
	return Config{
		Listeners:       []ListenerConfig{{ID: "mqtt", Type: TypeTCP, Address: "127.0.0.1:1883"}},
		MaxPayloadBytes: 1 << 20,
		MaxInflight:     1024,
		SessionExpiry:   time.Hour,
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
		case TypeTCP, TypeWebsocket:
		case "":
			errs.Add(at.Key("type"), "must not be empty (tcp or websocket)")
		default:
			errs.Add(at.Key("type"), "%q is not supported (tcp or websocket)", l.Type)
		}
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
