package rules

import (
	"encoding/json"
	"time"
)

// Event is a CloudEvent as the rules see it. Data is decoded JSON
// (map[string]any, []any, string, float64, bool or nil) or, for payloads
// that are not JSON, []byte.
type Event struct {
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Subject         string         `json:"subject,omitempty"`
	Time            time.Time      `json:"time"`
	DataContentType string         `json:"datacontenttype,omitempty"`
	Data            any            `json:"data,omitempty"`
	Extensions      map[string]any `json:"ext,omitempty"`
}

// Input is what Evaluate looks at: the event and where it came from.
type Input struct {
	Event     Event
	Topic     string // MQTT topic the device published to
	ClientID  string // MQTT client id of the device
	GatewayID string // this gateway's id; "" means the WithGatewayID option
}

// Decision is what the rules decided for one event. The gateway applies it:
// Drop wins over everything; else a non-empty DeadLetter sends Event to the
// dead-letter queue; else Event goes to Routes (nil: every uplink). Emits
// and Publishes are applied in every case.
type Decision struct {
	Drop bool `json:"drop,omitempty"`
	// Routes names the uplinks chosen by route actions, in first-seen
	// order; nil means the default route (every uplink).
	Routes []string `json:"routes,omitempty"`
	// Event is the event after set/remove actions.
	Event Event `json:"event"`
	// Changed reports whether a set/remove action changed Event (the
	// gateway re-encodes it only then).
	Changed    bool        `json:"changed,omitempty"`
	Emits      []Emitted   `json:"emits,omitempty"`
	Publishes  []Publish   `json:"publishes,omitempty"`
	DeadLetter string      `json:"dead_letter,omitempty"`
	Errors     []RuleError `json:"errors,omitempty"`
}

// Emitted is an event derived by a rule (emit, aggregate or stale). It is
// routed by Routes (nil: every uplink) and never evaluated by the rules.
type Emitted struct {
	Event  Event    `json:"event"`
	Routes []string `json:"routes,omitempty"`
}

// Publish is a message for a local MQTT topic.
type Publish struct {
	Topic   string `json:"topic"`
	Payload []byte `json:"payload"`
	QoS     byte   `json:"qos,omitempty"`
	Retain  bool   `json:"retain,omitempty"`
}

// MarshalJSON shows a payload that is valid JSON as JSON, else as a string.
func (p Publish) MarshalJSON() ([]byte, error) {
	type plain struct {
		Topic   string `json:"topic"`
		Payload any    `json:"payload"`
		QoS     byte   `json:"qos,omitempty"`
		Retain  bool   `json:"retain,omitempty"`
	}
	out := plain{Topic: p.Topic, QoS: p.QoS, Retain: p.Retain, Payload: string(p.Payload)}
	if json.Valid(p.Payload) {
		out.Payload = json.RawMessage(p.Payload)
	}
	return json.Marshal(out)
}

// RuleError is a runtime error of one rule on one event.
type RuleError struct {
	Rule string
	Err  error
}

func (e RuleError) Error() string { return "rule " + e.Rule + ": " + e.Err.Error() }

// MarshalJSON writes {"rule": name, "error": message}.
func (e RuleError) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"rule": e.Rule, "error": e.Err.Error()})
}

// RuleStats are the counters of one rule since it was first loaded
// (CarryStateFrom keeps them across reloads).
type RuleStats struct {
	Name        string
	Evaluations uint64        // events the rule looked at
	Matches     uint64        // events for which its condition held
	Errors      uint64        // runtime errors (condition or actions)
	Time        time.Duration // time spent, estimated from 1 evaluation in 16
}

// Env is the environment of rule expressions (`when`, `key`, `set`, emit
// and publish fields, dead_letter):
//
//	id, source, type, subject   string   CloudEvent attributes
//	time                        time     CloudEvent time
//	datacontenttype             string
//	data                        any      decoded JSON data (bytes if not JSON)
//	ext                         map      extension attributes, e.g. ext.mqttqos
//	topic                       string   MQTT topic
//	segments                    []string topic levels: segments[1] of devices/t1/telemetry is "t1"
//	client_id, gateway_id       string
//
// Stateful functions, per rule and key (see the package documentation):
// changed(v[, by]), prev(v), duplicate(v, "30s"), sample("1m"),
// limit(n, "1m").
type Env struct {
	ID              string         `expr:"id"`
	Source          string         `expr:"source"`
	Type            string         `expr:"type"`
	Subject         string         `expr:"subject"`
	Time            time.Time      `expr:"time"`
	DataContentType string         `expr:"datacontenttype"`
	Data            any            `expr:"data"`
	Ext             map[string]any `expr:"ext"`
	Topic           string         `expr:"topic"`
	Segments        []string       `expr:"segments"`
	ClientID        string         `expr:"client_id"`
	GatewayID       string         `expr:"gateway_id"`

	// V holds the values of the data/ext paths the expressions read,
	// resolved once per event; expressions cannot name it.
	V []any `expr:"__v"`
	// St is the evaluation state the stateful functions reach through a
	// hidden argument; expressions cannot name it.
	St *evalState `expr:"__st"`
}

// WindowEnv is the environment of an aggregate action's emit expressions.
type WindowEnv struct {
	Key       string    `expr:"key"`
	Count     int       `expr:"count"`
	Sum       float64   `expr:"sum"`
	Min       float64   `expr:"min"`
	Max       float64   `expr:"max"`
	Avg       float64   `expr:"avg"`
	Start     time.Time `expr:"start"`
	End       time.Time `expr:"end"`
	Rule      string    `expr:"rule"`
	GatewayID string    `expr:"gateway_id"`
}

// StaleEnv is the environment of a stale action's emit expressions.
type StaleEnv struct {
	Key       string    `expr:"key"`
	LastSeen  time.Time `expr:"last_seen"`
	SilentFor float64   `expr:"silent_for"` // seconds
	Data      any       `expr:"data"`       // data of the key's last event
	Rule      string    `expr:"rule"`
	GatewayID string    `expr:"gateway_id"`
}
