package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/gateway"
	"github.com/edgegate/edgegate/mqtt"
	"github.com/edgegate/edgegate/rules"
)

func newRulesCmd(a *app) *cobra.Command {
	cmd := groupCmd("rules", "run the rules' test cases, show their decisions",
		"Tools for the rules section of a configuration.")
	cmd.GroupID = groupTools
	cmd.AddCommand(newRulesTestCmd(a))
	return cmd
}

func newRulesTestCmd(a *app) *cobra.Command {
	var path, eventsPath string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test [--config FILE] [--events FILE.jsonl] [-v]",
		Short: "run the rules' test cases / show their decisions",
		Long: `Runs the test cases of the rules section (rules.tests) and reports each as
PASS or FAIL with the differences; exits non-zero when one fails. With
--events, also runs every event of the file through the rules and prints the
decision (routes, changed event, emitted events, local publishes,
dead-letter, errors). Each line of the file is a CloudEvent in JSON, or an
MQTT message {"topic": "devices/t1/telemetry", "payload": {...} or "text",
"client_id": "t1", "time": "2026-01-01T00:00:00Z"} that is first mapped to a
CloudEvent by the events section. Events are evaluated at their time
(or now), in file order, sharing state.

Exit status: 0 every test passed, 1 a test failed, 2 the configuration is
invalid.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := gateway.LoadFile(path)
			if err != nil {
				printConfigErrors(a.stderr, err)
				return errUsage
			}
			return runRulesTest(cmd.Context(), c, eventsPath, verbose, a.stdout)
		},
	}
	configFlag(cmd, &path, defaultConfig, "configuration `file` whose rules to test")
	cmd.Flags().StringVar(&eventsPath, "events", "", "JSONL `file` of events to run through the rules")
	cmd.MarkFlagFilename("events", "jsonl", "json")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print the decision of every test step")
	return cmd
}

// uplinkNames are the route names the rules may use.
func uplinkNames(cfg gateway.Config) []string {
	names := make([]string, len(cfg.Uplinks))
	for i, u := range cfg.Uplinks {
		names[i] = u.Name
	}
	return names
}

// runRulesTest runs the events file through the gateway's mapping and
// rules (gateway.DryRun, with the rule set LoadFile compiled), then the
// rules section's own tests.
func runRulesTest(ctx context.Context, c *gateway.Compiled, eventsPath string, verbose bool, stdout io.Writer) error {
	dry, cfg := gateway.NewDryRun(c), c.Config
	if eventsPath != "" {
		if err := runEventsFile(ctx, dry, eventsPath, stdout); err != nil {
			return err
		}
	}
	if len(cfg.Rules.Tests) == 0 {
		if eventsPath == "" {
			return errors.New("the rules section has no tests (rules.tests) and no --events file was given")
		}
		return nil
	}
	results, err := rules.RunTests(cfg.Rules, uplinkNames(cfg), rules.WithGatewayID(cfg.GatewayID))
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
func runEventsFile(ctx context.Context, dry *gateway.DryRun, path string, stdout io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer f.Close()
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
		ev, msg, now, err := parseEventLine([]byte(text))
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		for _, e := range dry.Tick(now) {
			fmt.Fprintf(stdout, "%s:%d: before it, the clock (%s) closed/emitted:\n%s\n", path, line, now.Format(time.RFC3339), indentJSON(e, ""))
		}
		var in rules.Input
		var d rules.Decision
		if ev != nil {
			in, d = dry.Event(ev, now)
		} else if in, d, err = dry.Message(msg, now); err != nil {
			return fmt.Errorf("%s:%d: topic %s: %w", path, line, msg.Topic, err)
		}
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

// parseEventLine reads one line of an events file: a CloudEvent in the
// JSON format (ev) or an MQTT message (msg), and the time to evaluate it
// at (the event's or message's time, or now).
func parseEventLine(b []byte) (ev *cloudevent.Event, msg mqtt.Message, now time.Time, err error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, msg, now, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, ok := probe["specversion"]; ok {
		ev = new(cloudevent.Event)
		if err := cloudevent.Decode(b, ev); err != nil {
			return nil, msg, now, err
		}
		if now = ev.Time; now.IsZero() {
			now = time.Now()
		}
		return ev, msg, now, nil
	}
	var m mqttLine
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, msg, now, fmt.Errorf("message: %w", err)
	}
	if m.Topic == "" {
		return nil, msg, now, errors.New(`want a CloudEvent ("specversion") or a message with "topic" and "payload"`)
	}
	payload := []byte(m.Payload)
	var str string
	if json.Unmarshal(m.Payload, &str) == nil {
		payload = []byte(str) // a JSON string is sent as its text
	}
	if now = m.Time; now.IsZero() {
		now = time.Now()
	}
	return nil, mqtt.Message{Topic: m.Topic, Payload: payload, QoS: m.QoS, ClientID: m.ClientID, ContentType: m.ContentType}, now, nil
}
