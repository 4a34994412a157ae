package rules

import (
	"fmt"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Config is the `rules:` section of the configuration.
//
//	rules:
//	  max_keys: 10000          # per rule: devices/keys with state (LRU beyond)
//	  schemas: [...]           # optional JSON Schema of data per event type
//	  rules: [...]             # evaluated in order for every event
//	  tests: [...]             # run by `edgegate rules test`, ignored by the gateway
//
// In the gateway's configuration file the section may instead name a file
// of the same shape: `rules: {file: rules.yaml}`.
type Config struct {
	// File is the path of a file holding this section (max_keys, schemas,
	// rules, tests), relative to the configuration file's directory; the
	// section then holds nothing else.
	File string `yaml:"file,omitempty"`

	// MaxKeys caps the keys each stateful rule remembers (deadband, dedupe,
	// sample, windows, stale); the least recently used key is forgotten
	// beyond it. 0 means 10000.
	MaxKeys int `yaml:"max_keys"`
	// Schemas validate the data of events of one type against a JSON
	// Schema before the rules run.
	Schemas []Schema `yaml:"schemas"`
	// Rules are evaluated in order for every event; a rule whose `when`
	// holds runs its actions.
	Rules []Rule `yaml:"rules"`
	// Tests are run by `edgegate rules test`; the gateway ignores them.
	Tests []Test `yaml:"tests"`
}

// DefaultMaxKeys is the per-rule key cap when max_keys is not set.
const DefaultMaxKeys = 10000

// Hard limits on what a configuration may ask for.
const (
	maxMaxKeys     = 1_000_000
	maxSlideBucket = 60 // size / every of a sliding window
)

// On-error and on-invalid behaviours.
const (
	OnErrorSkip       = "skip"        // the rule counts as not matching (default)
	OnErrorDrop       = "drop"        // the event is dropped
	OnErrorDeadLetter = "dead_letter" // the event goes to the dead-letter queue
	OnInvalidTag      = "tag"         // schemas only: set ext.schemaerror and continue
)

// Rule is one rule: when its condition holds, its actions run in order.
type Rule struct {
	// Name names the rule in metrics, logs and the events it derives
	// (1-64 letters, digits, '_', '.' or '-', starting with a letter or
	// digit); unique.
	Name string `yaml:"name"`
	// When is an expr boolean; empty means always.
	When string `yaml:"when"`
	// Key is an expr string naming the state key of the stateful functions
	// and the aggregate and stale actions; empty means subject.
	Key string `yaml:"key"`
	// OnError is what a runtime error in the rule does: skip (default),
	// drop or dead_letter.
	OnError string `yaml:"on_error"`
	// Actions run in order when the rule matches; at least one.
	Actions []Action `yaml:"actions"`
}

// Action is one step of a rule. Exactly one field is set.
type Action struct {
	// Set assigns expr values to targets, in order: data, data.a.b, type,
	// source, subject, datacontenttype, ext.name.
	Set Assignments `yaml:"set"`
	// Remove deletes targets (data.a.b, subject, ext.name).
	Remove []string `yaml:"remove"`
	// Emit derives a new event (never evaluated by the rules).
	Emit *EmitSpec `yaml:"emit"`
	// Publish sends a message to a local MQTT topic.
	Publish *PublishSpec `yaml:"publish"`
	// Route sends the event to these uplinks (added to earlier routes).
	Route []string `yaml:"route"`
	// DeadLetter is an expr string: the reason. It ends the evaluation.
	DeadLetter string `yaml:"dead_letter"`
	// Drop drops the event. It ends the evaluation.
	Drop *bool `yaml:"drop"`
	// Aggregate adds a value to per-key windows that emit when they close.
	Aggregate *AggregateSpec `yaml:"aggregate"`
	// Stale emits an event when a key has been silent for a while.
	Stale *StaleSpec `yaml:"stale"`
}

// Assignment is one `target: expression` of a set action.
type Assignment struct {
	Target string
	Expr   string
}

// Assignments keep the order in which the YAML mapping lists them.
type Assignments []Assignment

// UnmarshalYAML decodes a mapping of target: expression in order. Its
// problems are *yamlconf.Error at the offending node, with paths from the
// set action (a target may hold dots: data.version).
func (a *Assignments) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return &yamlconf.Error{Line: n.Line, Column: n.Column, Msg: "must be a mapping of target: expression"}
	}
	var errs yamlconf.List
	out := make(Assignments, 0, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		at := yamlconf.Key(k.Value)
		if line, dup := seen[k.Value]; dup {
			errs = append(errs, &yamlconf.Error{Path: at, Line: k.Line, Column: k.Column, Msg: fmt.Sprintf("duplicate target (first at line %d)", line)})
			continue
		}
		seen[k.Value] = k.Line
		if v.Kind != yaml.ScalarNode {
			errs = append(errs, &yamlconf.Error{Path: at, Line: v.Line, Column: v.Column, Msg: "the value must be an expression string"})
			continue
		}
		out = append(out, Assignment{Target: k.Value, Expr: v.Value})
	}
	*a = out
	return errs.Err()
}

// JSONSchema describes the YAML form of a set action for editors: a
// mapping of targets to expressions (scalars).
func (Assignments) JSONSchema() map[string]any {
	return map[string]any{
		"type":                 "object",
		"additionalProperties": map[string]any{"type": []string{"string", "number", "boolean", "null"}},
	}
}

// JSONSchemaKind names the type in the configuration reference.
func (Assignments) JSONSchemaKind() string { return "mapping of targets to expressions" }

// MarshalYAML writes the assignments as a mapping.
func (a Assignments) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for _, x := range a {
		n.Content = append(n.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: x.Target},
			&yaml.Node{Kind: yaml.ScalarNode, Value: x.Expr})
	}
	return n, nil
}

// EmitSpec describes a derived event. Type is a plain name; Source, Subject and
// Data are expressions (Source defaults to /edgegate/{gateway_id}/rules/{rule},
// Subject to the triggering event's subject or the window/stale key, Data to
// null for emit and to the aggregate/stale summary for those actions).
type EmitSpec struct {
	// Type is the new event's type: a plain name such as
	// io.acme.alert.overheat, not an expression.
	Type string `yaml:"type"`
	// Source is an expression for the new event's source; default
	// /edgegate/{gateway_id}/rules/{rule}.
	Source string `yaml:"source"`
	// Subject is an expression for the new event's subject; default the
	// triggering event's subject, or the window's or stale key.
	Subject string `yaml:"subject"`
	// Data is an expression for the new event's data; default null for
	// emit, the summary for aggregate and stale.
	Data string `yaml:"data"`
	// Route names the uplinks the new event goes to; empty: every uplink.
	Route []string `yaml:"route"`
}

// PublishSpec describes a local MQTT message. Topic and Payload are
// expressions; a string or bytes payload is sent as is, anything else as JSON.
type PublishSpec struct {
	// Topic is an expression for the topic, e.g.
	// "'devices/' + subject + '/cmd/fan'".
	Topic string `yaml:"topic"`
	// Payload is an expression for the payload: a string or bytes is sent
	// as is, any other value as JSON.
	Payload string `yaml:"payload"`
	// QoS is the MQTT quality of service towards subscribers: 0, 1 or 2.
	QoS int `yaml:"qos"`
	// Retain makes the broker keep the message for later subscribers.
	Retain bool `yaml:"retain"`
}

// AggregateSpec keeps count, sum, min, max and avg of Value per key in windows
// aligned on multiples of Every (processing time). With Size = Every (or
// unset) windows tumble; with Size a multiple of Every they slide, one
// window of length Size closing every Every. When a window that saw data
// closes, Emit is emitted; its Data expression sees key, count, sum, min,
// max, avg, start, end, rule, gateway_id.
type AggregateSpec struct {
	// Value is a number expression added to the key's window, e.g.
	// data.temperature.
	Value string `yaml:"value"`
	// Every is how often a window closes (at least 1s), aligned on
	// multiples of it.
	Every time.Duration `yaml:"every"`
	// Size is the length of a window: unset or equal to `every`, windows
	// tumble; a multiple of `every` (at most 60 times), they slide.
	Size time.Duration `yaml:"size"`
	// Emit is the event emitted when a window that saw data closes; its
	// data expression sees key, count, sum, min, max, avg, start, end,
	// rule and gateway_id.
	Emit EmitSpec `yaml:"emit"`
}

// StaleSpec watches keys: when a key that matched the rule has been silent for
// After, Emit is emitted once (again only after the key reports anew). Its
// Data expression sees key, last_seen, silent_for (seconds), data (the last
// event's data), rule, gateway_id.
type StaleSpec struct {
	// After is how long a key may stay silent (at least 1s).
	After time.Duration `yaml:"after"`
	// Emit is the event emitted once a key has been silent for `after`; its
	// data expression sees key, last_seen, silent_for (seconds), data,
	// rule and gateway_id.
	Emit EmitSpec `yaml:"emit"`
}

// Schema validates data of events of one type with a JSON Schema given
// inline (as YAML or JSON).
type Schema struct {
	// Type is the event type whose data is checked.
	Type string `yaml:"type"`
	// Schema is what the data must match: a JSON schema document, written
	// as YAML or JSON.
	Schema any `yaml:"schema"`
	// OnInvalid: drop, dead_letter (default) or tag (set ext.schemaerror
	// to the validation error and continue).
	OnInvalid string `yaml:"on_invalid"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate compiles every expression and checks every field, without
// checking route names against uplinks (Compile does). Each problem is a
// *yamlconf.Error with its path from the section (rules[2].when).
func (c Config) Validate() error {
	_, err := Compile(c, nil)
	return err
}

func (c Config) maxKeys() int {
	if c.MaxKeys == 0 {
		return DefaultMaxKeys
	}
	return c.MaxKeys
}
