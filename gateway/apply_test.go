package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/freeport"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// applyDoc is a configuration document whose rule stamps data.config with
// tag; extra is appended (more YAML).
const applyDoc = `gateway_id: gw-apply
log: {level: warn}
admin: {listen: "127.0.0.1:0"}
mqtt:
  listeners:
    - {id: tcp, type: tcp, address: "127.0.0.1:0"}
buffer:
  dir: %q
  min_free_bytes: 16MiB
events:
  presence: {enabled: false}
remote_config: {health_window: %s}
uplinks:
  - name: cloud
    http: {url: %q, auth: {bearer_token: s3cret-uplink-token}}
    retry: {initial: 20ms, max: 200ms}
rules:
  rules:
    - name: tag
      %s
      actions: [{set: {data.config: "'%s'"}}]
`

type applyEnv struct {
	t     *testing.T
	dir   string
	rcv   interface{ Events() []event.Event }
	url   string
	admin string
	g     *Gateway
	r     *running
}

func (e *applyEnv) doc(tag, window, when string) []byte {
	return []byte(fmt.Sprintf(applyDoc, filepath.Join(e.dir, "buf"), window, e.url, when, tag))
}

// startApply runs a gateway on the document with tag v1 from a file (as
// the binary starts).
func startApply(t *testing.T, window string) *applyEnv {
	rcv := newReceiver(t)
	e := &applyEnv{t: t, dir: t.TempDir(), rcv: rcv, url: rcv.URL()}
	path := filepath.Join(e.dir, "edgegate.yaml")
	if err := os.WriteFile(path, e.doc("v1", window, ""), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadStartup(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(c, Options{ConfigPath: path, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	e.g = g
	e.r = runGateway(t, g, "tcp")
	deadline := time.Now().Add(5 * time.Second)
	for g.AdminAddr() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	e.admin = "http://" + g.AdminAddr().String()
	return e
}

// do makes an admin request and decodes a JSON answer into out (if not nil).
func (e *applyEnv) do(method, path string, body []byte, out any) (int, http.Header, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.admin+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(raw, out)
	}
	return resp.StatusCode, resp.Header, string(raw)
}

// configEvents returns the config events the receiver got, by type.
func configEvents(rcv interface{ Events() []event.Event }) map[string][]cloudevent.ConfigChange {
	out := map[string][]cloudevent.ConfigChange{}
	for _, ev := range rcv.Events() {
		if !strings.HasPrefix(ev.Type(), "io.edgegate.config.") {
			continue
		}
		var c cloudevent.ConfigChange
		json.Unmarshal(ev.Data(), &c)
		out[ev.Type()] = append(out[ev.Type()], c)
	}
	return out
}

// The admin API's config routes: a dry run diffs without applying, a push
// applies and is kept, repeating it changes nothing, every bad document is
// refused with its problems located in "push" and the running config
// stays, GET redacts secrets, a rollback goes back; each outcome is an
// event through the uplink and a count.
func TestConfigAdminAPI(t *testing.T) {
	e := startApply(t, "0s")
	v1 := e.g.running.Load().entry
	if v1.Version != 1 || v1.Source != SourceFile {
		t.Fatalf("start entry = %+v", v1)
	}

	var res ApplyResult
	code, _, body := e.do("PUT", "/v1/config?dry_run=true", e.doc("v2", "0s", ""), &res)
	want := "rules.rules[0].actions[0].set"
	if code != 200 || res.Applied || !res.DryRun || !slices.Equal(res.Diff, []string{want}) {
		t.Fatalf("dry run: %d %s", code, body)
	}
	if e.g.running.Load().entry.Hash != v1.Hash {
		t.Fatal("a dry run changed the running config")
	}

	code, _, body = e.do("PUT", "/v1/config", e.doc("v2", "0s", ""), &res)
	if code != 200 || !res.Applied || res.Version != 2 || res.PreviousVersion != 1 || res.Source != SourceAdmin {
		t.Fatalf("push: %d %s", code, body)
	}
	if st := e.g.status(0).Config; st.Version != 2 || st.Source != SourceAdmin || st.Hash != res.Hash {
		t.Errorf("/status config after the push: %+v", st)
	}
	code, _, body = e.do("PUT", "/v1/config", e.doc("v2", "0s", ""), &res)
	if code != 200 || res.Applied || !res.Unchanged || res.Version != 2 {
		t.Fatalf("push again: %d %s", code, body)
	}

	code, hdr, body := e.do("GET", "/v1/config", nil, nil)
	if code != 200 || hdr.Get("Edgegate-Config-Version") != "2" || hdr.Get("ETag") != `"`+res.Hash+`"` {
		t.Fatalf("GET /v1/config: %d %v", code, hdr)
	}
	if strings.Contains(body, "s3cret") || !strings.Contains(body, "bearer_token: <redacted>") || !strings.Contains(body, "'v2'") {
		t.Errorf("GET /v1/config is not the running document with secrets redacted:\n%s", body)
	}

	bad := []struct{ name, doc, status, want string }{
		{"yaml", "gateway_id: [\n", "422", "push:1:13: syntax error"},
		{"expr", string(e.doc("v3", "0s", `when: "topic * 2"`)), "422", "push:20:20: rules.rules[0].when: invalid operation"},
		{"route", strings.Replace(string(e.doc("v3", "0s", "")), "actions: [", "actions: [{route: [nowhere]}, ", 1), "422", `push:21:26: rules.rules[0].actions[0].route[0]: unknown uplink "nowhere" (uplinks: cloud)`},
		{"restart", strings.Replace(string(e.doc("v3", "0s", "")), "127.0.0.1:0", "127.0.0.1:1", 1), "422", "push:3:17: admin.listen: change requires restart"},
	}
	for _, b := range bad {
		var eb ConfigErrorBody
		code, _, body := e.do("PUT", "/v1/config", []byte(b.doc), &eb)
		if fmt.Sprint(code) != b.status || !strings.Contains(eb.Error, b.want) || eb.Reason != RefusedInvalid {
			t.Errorf("%s: %d %s, want %s with %q", b.name, code, body, b.status, b.want)
		}
	}
	if got := e.g.running.Load().entry; got.Version != 2 {
		t.Errorf("after refusals the running version is %d, want 2", got.Version)
	}

	var h ConfigHistory
	if code, _, body := e.do("GET", "/v1/config/history", nil, &h); code != 200 || h.Active != 2 || len(h.Entries) != 2 {
		t.Fatalf("history: %d %s", code, body)
	}
	code, _, body = e.do("POST", "/v1/config/rollback", nil, &res)
	if code != 200 || !res.Applied || res.Version != 1 || res.Source != SourceRollback {
		t.Fatalf("rollback: %d %s", code, body)
	}
	if code, _, body := e.do("POST", "/v1/config/rollback", []byte(`{"version": 7}`), nil); code != 404 || !strings.Contains(body, "version 7 is not kept") {
		t.Errorf("rollback to a version not kept: %d %s", code, body)
	}

	waitFor(t, "the config events", func() bool {
		ev := configEvents(e.rcv)
		return len(ev[cloudevent.TypeConfigApplied]) == 1 && len(ev[cloudevent.TypeConfigRejected]) == 4 && len(ev[cloudevent.TypeConfigRolledBack]) == 1
	})
	ev := configEvents(e.rcv)
	if a := ev[cloudevent.TypeConfigApplied][0]; a.Version != 2 || a.PreviousVersion != 1 || a.Source != "admin" || !slices.Equal(a.Diff, []string{want}) {
		t.Errorf("applied event %+v", a)
	}
	if r := ev[cloudevent.TypeConfigRolledBack][0]; r.Version != 1 || r.PreviousVersion != 2 || !strings.Contains(r.Reason, "requested") {
		t.Errorf("rolledback event %+v", r)
	}
	for _, r := range ev[cloudevent.TypeConfigRejected] {
		if r.Reason != RefusedInvalid || len(r.Errors) == 0 {
			t.Errorf("rejected event %+v", r)
		}
	}
	m := metricsText(t, e.g)
	for _, w := range []string{
		`edgegate_config_applies_total{source="admin",result="applied"} 1`,
		`edgegate_config_applies_total{source="admin",result="unchanged"} 1`,
		`edgegate_config_applies_total{source="admin",result="dry_run"} 1`,
		`edgegate_config_applies_total{source="admin",result="rejected"} 4`,
		`edgegate_config_applies_total{source="rollback",result="applied"} 1`,
	} {
		if !strings.Contains(m, w) {
			t.Errorf("/metrics lacks %s", w)
		}
	}
}

// A remote config whose rule fails on every event (an error storm) is
// rolled back within the health window; the rolledback event reaches the
// uplink, the bad config is marked so pull and MQTT do not apply it again.
func TestHealthWindowRollsBackErrorStorm(t *testing.T) {
	e := startApply(t, "5s")
	c := mqtttest.Connect(t, e.r.mqtt, "storm")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		mqtttest.Steady(c, "devices/d1/telemetry", 5*time.Millisecond, stop, func(int) {})
	}()
	defer func() { close(stop); <-done }()

	var res ApplyResult
	if code, _, body := e.do("PUT", "/v1/config", e.doc("v2", "5s", `when: "int(topic) > 0"`), &res); code != 200 || !res.Applied {
		t.Fatalf("push: %d %s", code, body)
	}
	waitFor(t, "the rollback", func() bool { return e.g.running.Load().entry.Version == 1 })
	waitFor(t, "the rolledback event", func() bool { return len(configEvents(e.rcv)[cloudevent.TypeConfigRolledBack]) == 1 })
	r := configEvents(e.rcv)[cloudevent.TypeConfigRolledBack][0]
	if !strings.Contains(r.Reason, "rule errors at") || r.PreviousVersion != 2 || r.Version != 1 {
		t.Errorf("rolledback event %+v", r)
	}
	// Pulled again, the bad config is refused by name.
	_, err := e.g.Apply(context.Background(), ConfigUpdate{Source: SourcePull, Origin: "https://cfg.example/gw", Data: e.doc("v2", "5s", `when: "int(topic) > 0"`)})
	if err == nil || !strings.Contains(err.Error(), "was rolled back (health window: rule errors") {
		t.Errorf("pull of the rolled-back config: %v", err)
	}
}

// The state directory: a pushed config is used at the next start while
// the local file is unchanged; a local edit wins.
func TestStartupUsesPushedConfigUntilLocalEdit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "edgegate.yaml")
	e := &applyEnv{t: t, dir: dir, url: "http://127.0.0.1:9/"}
	os.WriteFile(path, e.doc("v1", "0s", ""), 0o644)
	log := slog.New(slog.DiscardHandler)
	open := func() *Gateway {
		c, err := LoadStartup(path, log)
		if err != nil {
			t.Fatal(err)
		}
		g, err := New(c, Options{ConfigPath: path})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g := open()
	res, err := g.Apply(context.Background(), ConfigUpdate{Source: SourceAdmin, Origin: "push", Data: e.doc("v2", "0s", "")})
	if err != nil || res.Version != 2 {
		t.Fatalf("Apply: %+v %v", res, err)
	}
	g.buffer().Close()

	g = open()
	if got := g.running.Load().entry; got.Version != 2 || got.Source != SourceAdmin || !strings.Contains(string(g.running.Load().data), "'v2'") {
		t.Fatalf("restart after a push runs %+v", got)
	}
	g.buffer().Close()

	os.WriteFile(path, e.doc("v1-edited", "0s", ""), 0o644)
	g = open()
	if got := g.running.Load(); got.entry.Source != SourceFile || !strings.Contains(string(got.data), "'v1-edited'") || got.entry.Version != 3 {
		t.Fatalf("restart after a local edit runs %+v", got.entry)
	}
	g.buffer().Close()
}

// A remote config that points the uplink at a closed port is rolled back
// within the health window; the rolledback event (and the applied one
// before it) reaches the restored uplink.
func TestHealthWindowRollsBackBrokenUplink(t *testing.T) {
	e := startApply(t, "10s")
	closed, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	good := e.url
	e.url = "http://" + closed + "/"
	var res ApplyResult
	if code, _, body := e.do("PUT", "/v1/config", e.doc("v2", "10s", ""), &res); code != 200 || !res.Applied || !slices.Contains(res.Diff, "uplinks[0].http.url") {
		t.Fatalf("push: %d %s", code, body)
	}
	e.url = good
	waitFor(t, "the rollback", func() bool { return e.g.running.Load().entry.Version == 1 })
	waitFor(t, "the rolledback event at the restored uplink", func() bool {
		return len(configEvents(e.rcv)[cloudevent.TypeConfigRolledBack]) == 1
	})
	ev := configEvents(e.rcv)
	if r := ev[cloudevent.TypeConfigRolledBack][0]; !strings.Contains(r.Reason, "uplink cloud fails every send since the change") {
		t.Errorf("rolledback event %+v", r)
	}
	if len(ev[cloudevent.TypeConfigApplied]) != 1 {
		t.Errorf("the applied event of the bad config did not reach the restored uplink: %v", ev)
	}
	if h, _ := e.g.configs.History(); len(h) != 2 || h[0].Version != 2 || h[0].RolledBack == "" {
		t.Errorf("history after the rollback: %+v", h)
	}
}
