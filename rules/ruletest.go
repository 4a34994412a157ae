package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// Test is a test case for the rules, carried in the rules section and run
// by `edgegate rules test` (the gateway ignores it). Each test gets fresh
// state; its steps share it, in order. A test with Event and Expect is a
// single step.
//
//	tests:
//	  - name: hot reading turns the fan on
//	    event: { type: io.edgegate.device.telemetry, subject: t1, data: { temperature: 31 } }
//	    expect:
//	      publishes: [{ topic: devices/t1/cmd/fan, payload: { on: true } }]
type Test struct {
	// Name names the test in the report.
	Name string `yaml:"name"`
	// At is the clock at the first step (default 2026-01-01T00:00:00Z).
	At time.Time `yaml:"at"`
	// Event is the input of a single-step test, with Expect.
	Event *TestEvent `yaml:"event"`
	// Expect is the outcome of Event.
	Expect *Expect `yaml:"expect"`
	// Steps are the events and clock ticks of a test in several steps
	// (instead of Event and Expect).
	Steps []Step `yaml:"steps"`
}

// Step is one event (or one tick of the clock) of a test.
type Step struct {
	// After advances the clock before the step.
	After time.Duration `yaml:"after"`
	// Event is the step's input event.
	Event *TestEvent `yaml:"event"`
	// Tick runs the gateway's periodic check (closed windows, stale keys)
	// instead of an event; Expect.Emits then lists what it emitted.
	Tick bool `yaml:"tick"`
	// Expect is the step's expected outcome.
	Expect *Expect `yaml:"expect"`
}

// TestEvent is an input event. Missing attributes get defaults: id
// "test-N", source "/edgegate/test", type "io.edgegate.mqtt.message", time
// the test clock.
type TestEvent struct {
	// ID is the event's id; default test-N.
	ID string `yaml:"id"`
	// Source is the event's source; default /edgegate/test.
	Source string `yaml:"source"`
	// Type is the event's type; default io.edgegate.mqtt.message.
	Type string `yaml:"type"`
	// Subject is the event's subject (the device).
	Subject string `yaml:"subject"`
	// Time is the event's time; default the test's clock.
	Time time.Time `yaml:"time"`
	// DataContentType is the event's datacontenttype.
	DataContentType string `yaml:"datacontenttype"`
	// Data is the event's data: any YAML value.
	Data any `yaml:"data"`
	// Ext are the event's extension attributes.
	Ext map[string]any `yaml:"ext"`
	// Topic is the MQTT topic the event came from.
	Topic string `yaml:"topic"`
	// ClientID is the MQTT client id of the publishing device.
	ClientID string `yaml:"client_id"`
}

// Expect is the expected outcome of a step. Only what is written is
// checked; objects match when the fields written match (extra fields are
// fine), lists must have the same length.
type Expect struct {
	// Drop: whether the event is dropped.
	Drop *bool `yaml:"drop"`
	// Routes: [] means the default route (every uplink).
	Routes *[]string `yaml:"routes"`
	// Event is matched against the event after the rules (id, source,
	// type, subject, time, datacontenttype, data, ext).
	Event map[string]any `yaml:"event"`
	// Emits are emitted events: event fields plus routes.
	Emits *[]map[string]any `yaml:"emits"`
	// Publishes: topic, payload (JSON value or string), qos, retain.
	Publishes *[]map[string]any `yaml:"publishes"`
	// DeadLetter is the reason the event is dead-lettered with.
	DeadLetter *string `yaml:"dead_letter"`
	// Errors lists the names of the rules that failed, in order.
	Errors *[]string `yaml:"errors"`
}

// DefaultTestTime is the clock of a test that sets no `at`.
var DefaultTestTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (t Test) validate(p yamlconf.Path) error {
	var errs yamlconf.List
	if t.Name == "" {
		errs.Add(p.Key("name"), "is required")
	}
	switch {
	case t.Event != nil && len(t.Steps) > 0:
		errs.Add(p, "use either event/expect or steps, not both")
	case t.Event == nil && len(t.Steps) == 0:
		errs.Add(p, "needs an event (with expect) or steps")
	case t.Event != nil && t.Expect == nil:
		errs.Add(p.Key("expect"), "is required")
	}
	for i, s := range t.Steps {
		sp := p.Key("steps").Index(i)
		if (s.Event != nil) == s.Tick {
			errs.Add(sp, "a step has either an event or tick: true")
		}
		if s.After < 0 {
			errs.Add(sp.Key("after"), "must not be negative")
		}
	}
	return errs.Err()
}

func (t Test) steps() []Step {
	if t.Event != nil {
		return []Step{{Event: t.Event, Expect: t.Expect}}
	}
	return t.Steps
}

// StepResult is what one step did.
type StepResult struct {
	Time     time.Time
	Tick     bool
	Input    *Input    // nil for a tick
	Decision *Decision // nil for a tick
	Emits    []Emitted // tick only
	Failures []string  // each "field: want …, got …"
}

// TestResult is the outcome of one test.
type TestResult struct {
	Name  string
	Steps []StepResult
}

// Failed reports whether any step failed.
func (r TestResult) Failed() bool {
	for _, s := range r.Steps {
		if len(s.Failures) > 0 {
			return true
		}
	}
	return false
}

// RunTests runs cfg.Tests, each against a freshly compiled Set. It returns
// an error only when the rules do not compile. Emitted events get the ids
// emit-1, emit-2, … in each test.
func RunTests(cfg Config, uplinks []string, opts ...Option) ([]TestResult, error) {
	if _, err := Compile(cfg, uplinks, opts...); err != nil {
		return nil, err
	}
	var out []TestResult
	for _, t := range cfg.Tests {
		n := 0
		ids := WithIDGenerator(func() string { n++; return fmt.Sprintf("emit-%d", n) })
		set, err := Compile(cfg, uplinks, append(slices.Clone(opts), ids)...)
		if err != nil {
			return nil, err
		}
		res := TestResult{Name: t.Name}
		now := t.At
		if now.IsZero() {
			now = DefaultTestTime
		}
		for i, s := range t.steps() {
			now = now.Add(s.After)
			sr := StepResult{Time: now, Tick: s.Tick}
			if s.Tick {
				sr.Emits = set.Tick(now)
				if s.Expect != nil {
					sr.Failures = checkTick(*s.Expect, sr.Emits)
				}
			} else {
				in := s.Event.Input(i+1, now)
				d := set.Evaluate(in, now)
				sr.Input, sr.Decision = &in, &d
				if s.Expect != nil {
					sr.Failures = s.Expect.Check(d)
				}
			}
			res.Steps = append(res.Steps, sr)
		}
		out = append(out, res)
	}
	return out, nil
}

// Input builds the Evaluate input of a test event; n numbers default ids.
func (te TestEvent) Input(n int, now time.Time) Input {
	e := Event{
		ID: te.ID, Source: te.Source, Type: te.Type, Subject: te.Subject, Time: te.Time,
		DataContentType: te.DataContentType,
	}
	if e.ID == "" {
		e.ID = fmt.Sprintf("test-%d", n)
	}
	if e.Source == "" {
		e.Source = "/edgegate/test"
	}
	if e.Type == "" {
		e.Type = "io.edgegate.mqtt.message"
	}
	if e.Time.IsZero() {
		e.Time = now.UTC()
	}
	if te.Data != nil {
		if d, err := normalizeJSON(te.Data); err == nil {
			e.Data = d
		}
		if e.DataContentType == "" {
			e.DataContentType = "application/json"
		}
	}
	if len(te.Ext) > 0 {
		if x, err := normalizeJSON(te.Ext); err == nil {
			e.Extensions, _ = x.(map[string]any)
		}
	}
	return Input{Event: e, Topic: te.Topic, ClientID: te.ClientID}
}

// Check compares a decision with the expectation and returns the
// differences.
func (x Expect) Check(d Decision) []string {
	var f []string
	if x.Drop != nil && *x.Drop != d.Drop {
		f = append(f, fmt.Sprintf("drop: want %v, got %v", *x.Drop, d.Drop))
	}
	if x.Routes != nil && !slices.Equal(*x.Routes, d.Routes) {
		f = append(f, fmt.Sprintf("routes: want %s, got %s", routesText(*x.Routes), routesText(d.Routes)))
	}
	if x.DeadLetter != nil && *x.DeadLetter != d.DeadLetter {
		f = append(f, fmt.Sprintf("dead_letter: want %q, got %q", *x.DeadLetter, d.DeadLetter))
	}
	if x.Errors != nil {
		var got []string
		for _, e := range d.Errors {
			got = append(got, e.Rule)
		}
		if !slices.Equal(*x.Errors, got) {
			var msgs []string
			for _, e := range d.Errors {
				msgs = append(msgs, e.Error())
			}
			f = append(f, fmt.Sprintf("errors: want rules %v, got %v %q", *x.Errors, got, msgs))
		}
	}
	if x.Event != nil {
		f = append(f, match("event", x.Event, jsonValue(d.Event))...)
	}
	if x.Emits != nil {
		f = append(f, matchList("emits", *x.Emits, emittedValues(d.Emits))...)
	}
	if x.Publishes != nil {
		f = append(f, matchList("publishes", *x.Publishes, jsonValue(d.Publishes))...)
	}
	return f
}

func checkTick(x Expect, emits []Emitted) []string {
	var f []string
	if x.Emits != nil {
		f = append(f, matchList("emits", *x.Emits, emittedValues(emits))...)
	}
	if x.Drop != nil || x.Routes != nil || x.Event != nil || x.Publishes != nil || x.DeadLetter != nil || x.Errors != nil {
		f = append(f, "expect: a tick step can only check emits")
	}
	return f
}

func routesText(r []string) string {
	if len(r) == 0 {
		return "default (every uplink)"
	}
	return "[" + strings.Join(r, ", ") + "]"
}

func emittedValues(es []Emitted) any {
	out := make([]any, 0, len(es))
	for _, e := range es {
		m, _ := jsonValue(e.Event).(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		if e.Routes != nil {
			m["routes"] = jsonValue(e.Routes)
		}
		out = append(out, m)
	}
	return out
}

func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(not JSON: %v)", err)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func matchList(path string, want []map[string]any, got any) []string {
	w := make([]any, len(want))
	for i, m := range want {
		w[i] = m
	}
	nw, err := normalizeJSON(w)
	if err != nil {
		return []string{fmt.Sprintf("%s: expectation is not JSON: %v", path, err)}
	}
	return match(path, nw, got)
}

// match compares want (partial) with got, both JSON values.
func match(path string, want, got any) []string {
	if w, ok := want.(map[string]any); ok {
		nw, err := normalizeJSON(w)
		if err == nil {
			want = nw
		}
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %s", path, show(got))}
		}
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var f []string
		for _, k := range keys {
			gv, present := g[k]
			if !present && w[k] != nil {
				f = append(f, fmt.Sprintf("%s.%s: want %s, got nothing", path, k, show(w[k])))
				continue
			}
			f = append(f, match(path+"."+k, w[k], gv)...)
		}
		return f
	case []any:
		if got == nil {
			got = []any{} // an absent list is an empty one
		}
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: want %d item(s), got %s", path, len(w), show(got))}
		}
		var f []string
		for i := range w {
			f = append(f, match(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return f
	case float64:
		g, ok := got.(float64)
		if !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			return []string{fmt.Sprintf("%s: want %s, got %s", path, show(want), show(got))}
		}
		return nil
	case string:
		// Times are compared as instants.
		if wt, err := time.Parse(time.RFC3339Nano, w); err == nil {
			if gs, ok := got.(string); ok {
				if gt, err := time.Parse(time.RFC3339Nano, gs); err == nil && gt.Equal(wt) {
					return nil
				}
			}
		}
	}
	if fmt.Sprint(jsonValue(want)) != fmt.Sprint(got) || (want == nil) != (got == nil) {
		return []string{fmt.Sprintf("%s: want %s, got %s", path, show(want), show(got))}
	}
	return nil
}

func show(v any) string {
	if v == nil {
		return "nothing"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// normalizeJSON converts YAML-decoded values to what encoding/json would
// decode (map[string]any, []any, float64, string, bool, nil).
func normalizeJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}
