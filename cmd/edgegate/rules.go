package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/gateway"
	"github.com/edgegate/edgegate/gateway/mapping"
	"github.com/edgegate/edgegate/rules"
)

const rulesUsage = `Usage: edgegate rules test [--config FILE] [--events FILE.jsonl] [-v]

Runs the test cases of the rules section (rules.tests) and reports each as
PASS or FAIL with the differences; exits non-zero when one fails. With
--events, also runs every event of the file through the rules and prints the
decision (routes, changed event, emitted events, local publishes,
dead-letter, errors). Each line of the file is a CloudEvent in JSON, or an
MQTT message {"topic": "devices/t1/telemetry", "payload": {...} or "text",
"client_id": "t1", "time": "2026-01-01T00:00:00Z"} that is first mapped to a
CloudEvent by the events section. Events are evaluated at their time
(or now), in file order, sharing state.

Flags:
`

// rulesSetup is what `rules test` needs of a configuration file.
type rulesSetup struct {
	rules     rules.Config
	uplinks   []string
	gatewayID string
	events    mapping.Config
}

// cmdRules runs `edgegate rules test`.
func cmdRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "test" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, rulesUsage)
			return nil
		}
		fmt.Fprint(stderr, rulesUsage)
		return errUsage
	}
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, rulesUsage)
		fs.PrintDefaults()
	}
	path := configFlag(fs)
	eventsPath := fs.String("events", "", "JSONL file of events to run through the rules")
	verbose := fs.Bool("v", false, "print the decision of every test step")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	setup, err := loadRulesSetup(*path)
	if err != nil {
		printConfigErrors(stderr, err)
		return errUsage
	}
	return runRulesTest(ctx, setup, *eventsPath, *verbose, stdout)
}

// loadRulesSetup loads and validates the whole configuration file, then
// takes its rules section.
func loadRulesSetup(path string) (rulesSetup, error) {
	c, err := gateway.LoadFile(path)
	if err != nil {
		return rulesSetup{}, err
	}
	return setupFromConfig(c.Config), nil
}

func setupFromConfig(cfg gateway.Config) rulesSetup {
	s := rulesSetup{rules: cfg.Rules, gatewayID: cfg.GatewayID, events: cfg.Events}
	for _, u := range cfg.Uplinks {
		s.uplinks = append(s.uplinks, u.Name)
	}
	return s
}

func runRulesTest(ctx context.Context, s rulesSetup, eventsPath string, verbose bool, stdout io.Writer) error {
	set, err := rules.Compile(s.rules, s.uplinks, rules.WithGatewayID(s.gatewayID))
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	if eventsPath != "" {
		if err := runEventsFile(ctx, set, s, eventsPath, stdout); err != nil {
			return err
		}
	}
	if len(s.rules.Tests) == 0 {
		if eventsPath == "" {
			return errors.New("the rules section has no tests (rules.tests) and no --events file was given")
		}
		return nil
	}
	results, err := rules.RunTests(s.rules, s.uplinks, rules.WithGatewayID(s.gatewayID))
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	failed := 0
	for _, r := range results {
		if r.Failed() {
			failed++
			fmt.Fprintf(stdout, "FAIL  %s\n", r.Name)
		} else {
			fmt.Fprintf(stdout, "PASS  %s\n", r.Name)
		}
		for i, st := range r.Steps {
			if len(st.Failures) == 0 && !verbose {
				continue
			}
			what := "event"
			if st.Tick {
				what = "tick"
			}
			fmt.Fprintf(stdout, "      step %d (%s at %s):\n", i+1, what, st.Time.Format(time.RFC3339))
			for _, f := range st.Failures {
				fmt.Fprintf(stdout, "        %s\n", f)
			}
			var got any = st.Decision
			if st.Tick {
				got = map[string]any{"emits": st.Emits}
			}
			fmt.Fprintf(stdout, "        got: %s\n", indentJSON(got, "        "))
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", len(results)-failed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d rule tests failed", failed, len(results))
	}
	return nil
}

func indentJSON(v any, indent string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent(indent, "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return strings.TrimSpace(b.String())
}

// runEventsFile evaluates each line of a JSONL file and prints the decisions.
func runEventsFile(ctx context.Context, set *rules.Set, s rulesSetup, path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer f.Close()
	mapper, err := mapping.Compile(s.events, s.gatewayID)
	if err != nil {
		return fmt.Errorf("events section: %w", err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	line := 0
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		in, now, err := parseEventLine([]byte(text), mapper)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		for _, e := range set.Tick(now) {
			fmt.Fprintf(stdout, "%s:%d: before it, the clock (%s) closed/emitted:\n%s\n", path, line, now.Format(time.RFC3339), indentJSON(e, ""))
		}
		d := set.Evaluate(in, now)
		fmt.Fprintf(stdout, "%s:%d: %s %s\n%s\n", path, line, in.Event.Type, in.Event.Subject, indentJSON(d, ""))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("events %s: %w", path, err)
	}
	return nil
}

// mqttLine is the simple JSONL form: an MQTT message.
type mqttLine struct {
	Topic       string          `json:"topic"`
	Payload     json.RawMessage `json:"payload"`
	ClientID    string          `json:"client_id"`
	QoS         byte            `json:"qos"`
	ContentType string          `json:"content_type"`
	Time        time.Time       `json:"time"`
}

func parseEventLine(b []byte, mapper *mapping.Mapper) (rules.Input, time.Time, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return rules.Input{}, time.Time{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, ok := probe["specversion"]; ok {
		var ce event.Event
		if err := json.Unmarshal(b, &ce); err != nil {
			return rules.Input{}, time.Time{}, fmt.Errorf("cloudevent: %w", err)
		}
		in := rules.Input{Event: rules.FromCloudEvent(ce)}
		if t, ok := ce.Extensions()[mapping.ExtTopic].(string); ok {
			in.Topic = t
		}
		now := ce.Time()
		if now.IsZero() {
			now = time.Now()
		}
		return in, now, nil
	}
	var m mqttLine
	if err := json.Unmarshal(b, &m); err != nil {
		return rules.Input{}, time.Time{}, fmt.Errorf("message: %w", err)
	}
	if m.Topic == "" {
		return rules.Input{}, time.Time{}, errors.New(`want a CloudEvent ("specversion") or a message with "topic" and "payload"`)
	}
	payload := []byte(m.Payload)
	var str string
	if json.Unmarshal(m.Payload, &str) == nil {
		payload = []byte(str) // a JSON string is sent as its text
	}
	now := m.Time
	if now.IsZero() {
		now = time.Now()
	}
	ce, err := mapper.Map(mapping.Message{Topic: m.Topic, Payload: payload, QoS: m.QoS, ClientID: m.ClientID,
		ContentType: m.ContentType, Received: now})
	if err != nil {
		return rules.Input{}, time.Time{}, fmt.Errorf("topic %s: %w", m.Topic, err)
	}
	return rules.Input{Event: rules.FromCloudEvent(ce), Topic: m.Topic, ClientID: m.ClientID}, now, nil
}
