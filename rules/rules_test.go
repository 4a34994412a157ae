package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/cloudevent"
)

func TestCompileErrors(t *testing.T) {
	cfg := parseConfig(t, `
max_keys: -1
schemas:
  - type: x
    on_invalid: shout
    schema: { type: objekt }
rules:
  - name: a
    when: data.t >
    actions: [{ route: [nowhere] }]
  - name: a
    when: "'str'"
    actions: []
  - name: "bad name!"
    when: nosuch(data.t)
    on_error: explode
    actions:
      - { set: { colour: "1" } }
      - { drop: true, route: [cloud] }
      - {}
      - { drop: false }
      - { emit: { type: "'quoted'" } }
      - { publish: { topic: "42", qos: 3 } }
      - { aggregate: { value: data.t, every: 1m, size: 90s, emit: { type: x } } }
      - { stale: { after: 0s, emit: { type: y, data: "nosuchvar" } } }
      - { set: { data.x: "changed(data.t, 1, 2)" } }
      - { set: { data.y: "sample(data.t)" } }
      - { set: { data.z: "__st" } }
tests:
  - name: ""
`)
	_, err := Compile(cfg, []string{"cloud"})
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"max_keys: must be between",
		"schemas[0].on_invalid: must be drop, dead_letter or tag",
		"schemas[0].schema: ",
		"rules[0].when: unexpected token EOF",
		`rules[0].actions[0].route[0]: unknown uplink "nowhere" (uplinks: cloud)`,
		`rules[1].name: "a" is already used by rules[0]`,
		"rules[1].when: expected bool, but got string",
		"rules[1].actions: at least one action is required",
		`rules[2].name: "bad name!" must be`,
		"rules[2].on_error: must be skip, drop or dead_letter",
		"rules[2].when: unknown name nosuch",
		`rules[2].actions[0].set.colour: unknown target "colour"`,
		"rules[2].actions[1]: an action has exactly one of",
		"rules[2].actions[2]: empty action",
		"rules[2].actions[3].drop: drop: false does nothing",
		`rules[2].actions[4].emit.type: "'quoted'" is not a valid event type`,
		"rules[2].actions[5].publish.topic: expected string, but got int",
		"rules[2].actions[5].publish.qos: must be 0, 1 or 2",
		"rules[2].actions[6].aggregate.size: must be a multiple of every",
		"rules[2].actions[7].stale.after: must be at least 1s",
		"rules[2].actions[7].stale.emit.data: unknown name nosuchvar",
		"rules[2].actions[8].set.data.x: changed() takes",
		"rules[2].actions[9].set.data.y: sample(): the window must be a duration",
		"rules[2].actions[10].set.data.z: unknown name __st",
		"tests[0].name: is required",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q", w)
		}
	}
	// Every error is one line "path: problem" the loader can position.
	for _, line := range strings.Split(msg, "\n") {
		path, _, ok := strings.Cut(line, ": ")
		if !ok || strings.ContainsAny(path, " \"") {
			t.Errorf("not a path error: %q", line)
		}
	}
	if t.Failed() {
		t.Log(msg)
	}
}

func TestValidateSkipsUplinks(t *testing.T) {
	cfg := parseConfig(t, "rules: [{name: r, actions: [{route: [anything]}]}]")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(cfg, []string{}); err == nil {
		t.Fatal("want unknown uplink with an empty uplink list")
	}
}

// A rule that fails on some events affects neither other rules nor other
// events, and is counted.
func TestRuntimeErrorIsolated(t *testing.T) {
	s := mustCompile(t, `
rules:
  - name: divide
    when: int(data.a) % int(data.b) == 1
    actions: [{ route: [backup] }]
  - name: always
    actions: [{ route: [cloud] }]
`)
	bad := s.Evaluate(reading("x", map[string]any{"a": 3.0, "b": 0.0}), t0)
	if len(bad.Errors) != 1 || bad.Errors[0].Rule != "divide" || !strings.Contains(bad.Errors[0].Error(), "divide by zero") {
		t.Fatalf("errors: %v", bad.Errors)
	}
	if fmt.Sprint(bad.Routes) != "[cloud]" || bad.Drop {
		t.Fatalf("other rule affected: %+v", bad)
	}
	good := s.Evaluate(reading("x", map[string]any{"a": 3.0, "b": 2.0}), t0)
	if len(good.Errors) != 0 || fmt.Sprint(good.Routes) != "[backup cloud]" {
		t.Fatalf("good event: %+v", good)
	}
	st := s.Stats()
	if st[0].Evaluations != 2 || st[0].Errors != 1 || st[0].Matches != 1 || st[1].Matches != 2 {
		t.Fatalf("stats: %+v", st)
	}
}

// A failing action undoes the rule's other actions.
func TestFailedRuleHasNoEffect(t *testing.T) {
	s := mustCompile(t, `
rules:
  - name: half
    actions:
      - set: { data.ok: "true" }
      - route: [backup]
      - emit: { type: io.x }
      - publish: { topic: "'t'" }
      - set: { data.bad: "data.nothing.at.all + 1" }
`)
	d := s.Evaluate(reading("x", map[string]any{"a": 1.0}), t0)
	if d.Changed || d.Routes != nil || len(d.Emits) != 0 || len(d.Publishes) != 0 || len(d.Errors) != 1 {
		t.Fatalf("partial effects: %+v", d)
	}
	if _, ok := d.Event.Data.(map[string]any)["ok"]; ok {
		t.Fatal("data changed")
	}
}

func TestInputNotModified(t *testing.T) {
	s := mustCompile(t, `
rules:
  - name: r
    actions:
      - set: { data.inner.x: "1", ext.foo: "'bar'" }
      - remove: [data.gone]
`)
	inner := map[string]any{"y": 2.0}
	data := map[string]any{"inner": inner, "gone": true}
	ext := map[string]any{"mqttqos": int32(1)}
	in := reading("x", data)
	in.Event.Extensions = ext
	d := s.Evaluate(in, t0)
	if len(inner) != 1 || len(data) != 2 || len(ext) != 1 {
		t.Fatalf("input modified: %v %v %v", data, inner, ext)
	}
	got := d.Event.Data.(map[string]any)
	if got["inner"].(map[string]any)["x"] != 1 || got["gone"] != nil || d.Event.Extensions["foo"] != "bar" {
		t.Fatalf("output: %+v", d.Event)
	}
}

func TestLRUBound(t *testing.T) {
	s := mustCompile(t, `
max_keys: 3
rules:
  - name: dedupe
    when: duplicate(data.v, '1h')
    actions: [{ drop: true }]
`)
	for i := range 10 {
		s.Evaluate(reading(fmt.Sprint("d", i), map[string]any{"v": 1.0}), t0)
	}
	if n := s.rules[0].state.len(); n != 3 {
		t.Fatalf("entries = %d, want 3", n)
	}
	// d9 is remembered, d0 was evicted.
	if !s.Evaluate(reading("d9", map[string]any{"v": 1.0}), t0).Drop {
		t.Fatal("d9 forgotten")
	}
	if s.Evaluate(reading("d0", map[string]any{"v": 1.0}), t0).Drop {
		t.Fatal("d0 still remembered")
	}
	// Expired entries are freed by Tick.
	s.Tick(t0.Add(2 * time.Hour))
	if n := s.rules[0].state.len(); n != 0 {
		t.Fatalf("entries after expiry = %d", n)
	}
}

func TestCarryStateFrom(t *testing.T) {
	src := deadbandAvg("t", "1", "1m", "io.avg") + `  - name: %s
    when: "!changed(data.t)"
    actions: [{ drop: true }]
`
	old := mustCompile(t, fmt.Sprintf(src, "renamed-later"))
	old.Evaluate(reading("s", map[string]any{"t": 10.0}), t0)
	old.Evaluate(reading("s", map[string]any{"t": 20.0}), t0.Add(10*time.Second))

	next := mustCompile(t, fmt.Sprintf(src, "renamed"))
	next.CarryStateFrom(old)
	// The deadband reference (20) is kept: 20.5 is dropped.
	if d := next.Evaluate(reading("s", map[string]any{"t": 20.5}), t0.Add(20*time.Second)); !d.Drop {
		t.Fatalf("deadband state lost: %+v", d)
	}
	// The open window kept 10 and 20; the renamed rule started afresh.
	em := next.Tick(t0.Add(time.Minute))
	if len(em) != 1 || em[0].Event.Data.(map[string]any)["count"] != 2.0 {
		t.Fatalf("window state lost: %+v", em)
	}
	st := next.Stats()
	if st[0].Evaluations != 3 || st[2].Evaluations != 0 {
		t.Fatalf("stats not carried: %+v", st)
	}
}

// Evaluate and Tick are safe for concurrent use (run with -race).
func TestConcurrent(t *testing.T) {
	s := mustCompile(t, deadbandAvg("t", "0.5", "1s", "io.avg")+`      - stale: { after: 1s, emit: { type: io.stale } }
      - set: { data.f: "data.t * 2" }
`)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				now := t0.Add(time.Duration(i) * 10 * time.Millisecond)
				d := s.Evaluate(reading(fmt.Sprint("d", g, i%5), map[string]any{"t": float64(i % 7)}), now)
				if len(d.Errors) > 0 {
					t.Errorf("errors: %v", d.Errors)
					return
				}
				if i%50 == 0 {
					s.Tick(now)
				}
			}
		}()
	}
	wg.Wait()
}

func TestNeverPanics(t *testing.T) {
	s := mustCompile(t, `
rules:
  - name: r
    when: data.a.b.c == 1 || segments[5] == 'x' || len(data) > 2
    actions: [{ set: { data.x.y: "data.a" } }]
`)
	inputs := []any{nil, "str", []any{1.0}, map[string]any{"a": "str"}, map[string]any{"a": map[string]any{"b": []any{}}}, []byte{0xff}}
	for _, data := range inputs {
		d := s.Evaluate(Input{Event: Event{Data: data}, Topic: "a/b"}, t0)
		_ = d
	}
}

func TestRecordRoundTrip(t *testing.T) {
	rec := cloudevent.Event{ID: "1", Source: "/s", Type: "t", Subject: "dev", Time: t0,
		DataContentType: "application/json", Data: []byte(`{"t":21.5}`)}
	rec.SetExtension("mqttqos", cloudevent.Integer(1))
	e := FromRecord(&rec)
	if e.Data.(map[string]any)["t"] != 21.5 || e.Extensions["mqttqos"] != int32(1) {
		t.Fatalf("decoded: %+v", e)
	}
	e.Extensions = map[string]any{"mqttqos": int32(1), "ratio": 0.5, "n": 3.0, "i": 7, "ok": true,
		"obj": map[string]any{"a": 1.0}, "at": t0, "b": []byte{1}}
	back, err := e.Record()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, x := range back.Extensions {
		got[x.Name] = x.Value.Any()
	}
	want := map[string]any{"mqttqos": int32(1), "ratio": "0.5", "n": int32(3), "i": int32(7), "ok": true,
		"obj": `{"a":1}`, "at": t0.UTC().Format(time.RFC3339Nano), "b": "AQ=="}
	if string(back.Data) != `{"t":21.5}` || back.DataBase64 || !reflect.DeepEqual(got, want) {
		t.Fatalf("encoded: %s %v", back.Data, got)
	}
	if back.Extensions[0].Name != "at" {
		t.Errorf("extensions not in name order: %v", back.Extensions)
	}
	bin := cloudevent.Event{ID: "2", Source: "/s", Type: "t", DataContentType: "application/octet-stream", Data: []byte{1, 2}, DataBase64: true}
	if e := FromRecord(&bin); fmt.Sprint(e.Data) != "[1 2]" {
		t.Fatalf("binary data: %#v", e.Data)
	}
	if back, err := FromRecord(&bin).Record(); err != nil || !back.DataBase64 || string(back.Data) != "\x01\x02" {
		t.Fatalf("binary back: %+v %v", back, err)
	}

	// As sdk-go's setters did: white space trimmed, the source written as
	// net/url writes it, invalid results refused.
	e = Event{ID: " 3 ", Source: "/edgegate/edge 01/rules/r", Type: " t ", Subject: "  ", DataContentType: " text/plain ", Data: []byte("x")}
	if back, err = e.Record(); err != nil || back.ID != "3" || back.Type != "t" || back.Subject != "" ||
		back.Source != "/edgegate/edge%2001/rules/r" || back.DataContentType != "text/plain" {
		t.Fatalf("trimmed: %+v %v", back, err)
	}
	for name, bad := range map[string]Event{
		"id":            {Source: "/s", Type: "t"},
		"source":        {ID: "1", Source: "a b:c", Type: "t"},
		"extension":     {ID: "1", Source: "/s", Type: "t", Extensions: map[string]any{"big": 1 << 40}},
		"time.Duration": {ID: "1", Source: "/s", Type: "t", Extensions: map[string]any{"d": time.Second}},
	} {
		if _, err := bad.Record(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRunTests(t *testing.T) {
	cfg := parseConfig(t, `
rules:
  - name: hot
    when: data.t > 30
    actions:
      - publish: { topic: "'devices/' + subject + '/cmd/fan'", payload: "{'on': true}" }
      - route: [cloud]
tests:
  - name: passes
    event: { subject: t1, data: { t: 31 } }
    expect:
      routes: [cloud]
      publishes: [{ topic: devices/t1/cmd/fan, payload: { on: true } }]
      errors: []
  - name: fails
    steps:
      - event: { subject: t1, data: { t: 20 } }
        expect: { routes: [cloud], drop: true, event: { data: { t: 21 } } }
`)
	res, err := RunTests(cfg, []string{"cloud"})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Failed() {
		t.Fatalf("passes failed: %v", res[0].Steps[0].Failures)
	}
	f := strings.Join(res[1].Steps[0].Failures, "\n")
	for _, w := range []string{"drop: want true, got false", "routes: want [cloud], got default (every uplink)", "event.data.t: want 21, got 20"} {
		if !strings.Contains(f, w) {
			t.Errorf("missing %q in\n%s", w, f)
		}
	}
}

func TestRuleErrorUnwraps(t *testing.T) {
	e := RuleError{Rule: "r", Err: errors.New("boom")}
	if e.Error() != "rule r: boom" {
		t.Fatal(e.Error())
	}
}

func TestWritePrometheus(t *testing.T) {
	s := mustCompile(t, "rules: [{name: r1, when: 'data.a > 1', actions: [{drop: true}]}]")
	s.Evaluate(reading("x", map[string]any{"a": 2.0}), t0)
	var b strings.Builder
	s.WritePrometheus(&b)
	for _, w := range []string{`edgegate_rule_evaluations_total{rule="r1"} 1`, `edgegate_rule_matches_total{rule="r1"} 1`, `edgegate_rule_errors_total{rule="r1"} 0`} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("missing %q in\n%s", w, b.String())
		}
	}
}

// Division by zero is a runtime error of the rule, not a silent ±Inf.
func TestDivisionByZeroIsAnError(t *testing.T) {
	var cfg Config
	drop := true
	cfg.Rules = []Rule{{Name: "ratio", When: "data.a / data.b > 1", Actions: []Action{{Drop: &drop}}}}
	set, err := Compile(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		data    map[string]any
		wantErr string
		drop    bool
	}{
		{map[string]any{"a": 4.0, "b": 2.0}, "", true},
		{map[string]any{"a": 4.0, "b": 0.0}, "division by zero", false},
		{map[string]any{"a": 4.0}, "invalid operation", false},
	} {
		d := set.Evaluate(Input{Event: Event{Type: "t", Data: tc.data}}, time.Now())
		if d.Drop != tc.drop {
			t.Errorf("%v: drop = %v", tc.data, d.Drop)
		}
		got := ""
		if len(d.Errors) > 0 {
			got = d.Errors[0].Err.Error()
		}
		if tc.wantErr == "" && got != "" || !strings.Contains(got, tc.wantErr) {
			t.Errorf("%v: errors %q, want %q", tc.data, got, tc.wantErr)
		}
	}
}
