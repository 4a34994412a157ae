package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/testpki"
)

// versionRulesInline is the rules section of a pushed document: every
// event gets data.version.
const versionRulesInline = `rules:
  rules:
    - name: version
      actions:
        - set: { data.version: %s }
`

// configE2E is a gateway whose admin API needs a token, with the token in
// a file for the CLI.
type configE2E struct {
	e2e
	base      string // the config file without rules
	tokenFile string
	token     string
}

func newConfigE2E(t *testing.T) configE2E {
	e := newE2E(t, "builds and runs the real binary")
	c := configE2E{e2e: e, token: "s3cret-admin-token-0123"}
	setAdmin(t, e.config, fmt.Sprintf("admin: {listen: %q, tokens: [{name: ops, hash: %q}]}\n", e.admin, tokenHash(t, e.bin, c.token)))
	b, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	c.base = string(b)
	c.tokenFile = filepath.Join(e.dir, "token")
	if err := os.WriteFile(c.tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// doc is the base config with the uplink sending to uplink and rules
// stamping version, written to name in the test's directory.
func (c configE2E) doc(t *testing.T, name, uplink, version string) string {
	t.Helper()
	d := strings.Replace(c.base, "http://"+c.uplink+"/", "http://"+uplink+"/", 1) + fmt.Sprintf(versionRulesInline, version)
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(d), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// config runs `edgegate config ARGS --to … --token-file …`.
func (c configE2E) config(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	full := append([]string{"config", args[0], "--to", "http://" + c.admin, "--token-file", c.tokenFile}, args[1:]...)
	return cli(t, c.bin, full...)
}

// metrics is /metrics with the token.
func (c configE2E) metrics(t *testing.T) string {
	t.Helper()
	code, _, body := adminDo(t, http.DefaultClient, "GET", "http://"+c.admin+"/metrics", c.token)
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	return "\n" + body
}

// A push through `edgegate config push` under steady QoS 1 publishing
// changes a rule and the uplink's URL: every event is evaluated by exactly
// one version of the rules, the versions switch once, no acked event is
// lost, the device stays connected. Invalid documents and pushes without
// or with a wrong token are refused with precise messages, the running
// config stays, and each refusal is counted.
func TestConfigPushUnderLoadE2E(t *testing.T) {
	c := newConfigE2E(t)
	config := c.doc(t, "edgegate.yaml", c.uplink, "1")
	rec := startVersionSink(t, c.uplink)
	uplink2 := freeAddr(t)
	srv2 := rec.serve(t, uplink2)
	p := startProc(t, c.bin, config, c.admin)
	stopped := false
	defer func() {
		if !stopped {
			p.kill()
		}
	}()

	dev := startSteady(t, c.mqtt)
	waitFor, stopPublishing := dev.waitFor, dev.stop

	waitFor("version 1 events", func() bool { return rec.count(1) >= 50 })
	// A dry run shows what would change and changes nothing.
	out, errOut, code := c.config(t, "diff", c.doc(t, "v2.yaml", uplink2, "2"))
	if code != 0 || !strings.Contains(out, "uplinks[0].http.url") || !strings.Contains(out, "rules.rules[0].actions[0].set") {
		t.Fatalf("config diff: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = c.config(t, "push", filepath.Join(c.dir, "v2.yaml"))
	if code != 0 || !strings.Contains(out, "applied version 2") {
		t.Fatalf("config push: exit %d\n%s%s", code, out, errOut)
	}
	waitFor("version 2 events", func() bool { return rec.count(2) >= 50 })
	waitFor("events at the new uplink URL", func() bool { return len(srv2.Events()) > 0 })

	// Refusals: each with its message, the running version stays 2.
	bad := []struct{ name, doc, want string }{
		{"yaml", "gateway_id: [\n", "push:1:13: syntax error"},
		{"expr", strings.Replace(c.base, "uplinks:", "rules:\n  rules:\n    - {name: bad, when: \"topic * 2\", actions: [{set: {data.x: \"1\"}}]}\nuplinks:", 1), "push:15:32: rules.rules[0].when: invalid operation: * (mismatched types string and int)"},
		{"route", c.base + "rules:\n  rules:\n    - {name: r, actions: [{route: [nowhere]}]}\n", `push:19:36: rules.rules[0].actions[0].route[0]: unknown uplink "nowhere" (uplinks: cloud)`},
	}
	for _, b := range bad {
		f := filepath.Join(c.dir, b.name+".yaml")
		os.WriteFile(f, []byte(b.doc), 0o644)
		out, errOut, code := c.config(t, "push", f)
		if code != 1 || !strings.Contains(errOut, b.want) || !strings.Contains(errOut, "422 Unprocessable Entity") {
			t.Errorf("push of %s: exit %d, want 1 with %q:\n%s%s", b.name, code, b.want, out, errOut)
		}
	}
	// No token, a wrong token.
	_, errOut, code = cli(t, c.bin, "config", "push", "--to", "http://"+c.admin, filepath.Join(c.dir, "v2.yaml"))
	if code != 1 || !strings.Contains(errOut, "401 Unauthorized") {
		t.Errorf("push without a token: exit %d: %s", code, errOut)
	}
	wrong := filepath.Join(c.dir, "wrong-token")
	os.WriteFile(wrong, []byte("not-the-token"), 0o600)
	_, errOut, code = cli(t, c.bin, "config", "push", "--to", "http://"+c.admin, "--token-file", wrong, filepath.Join(c.dir, "v2.yaml"))
	if code != 1 || !strings.Contains(errOut, "401 Unauthorized") {
		t.Errorf("push with a wrong token: exit %d: %s", code, errOut)
	}
	after := rec.count(2)
	waitFor("events after the refusals", func() bool { return rec.count(2) >= after+50 })
	stopPublishing()
	_, errOut, _ = c.config(t, "get")
	if !strings.Contains(errOut, "# version 2,") {
		t.Errorf("config get after the refusals: %s", errOut)
	}

	sent := dev.sent()
	waitFor("every acked event at a sink", func() bool { return rec.has(sent) })
	m := c.metrics(t)
	for _, want := range []string{
		"\nedgegate_config_applies_total{source=\"admin\",result=\"rejected\"} 3\n",
		"\nedgegate_config_applies_total{source=\"admin\",result=\"applied\"} 1\n",
		"\nedgegate_config_applies_total{source=\"admin\",result=\"dry_run\"} 1\n",
		"\nedgegate_admin_auth_failures_total{reason=\"missing\"} 1\n",
		"\nedgegate_admin_auth_failures_total{reason=\"invalid\"} 1\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	lostConns := dev.lost.Load()
	dev.c.Disconnect(50)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()
	stopped = true
	if lostConns != 0 {
		t.Errorf("the device lost its connection %d times", lostConns)
	}
	seqs, versions, problems := rec.snapshot()
	for _, b := range problems {
		t.Error(b)
	}
	switches, prev := 0, 1
	for _, s := range seqs {
		v := versions[s]
		if v != 1 && v != 2 {
			t.Fatalf("event seq %d has version %d", s, v)
		}
		if v != prev {
			switches++
			prev = v
		}
	}
	if switches != 1 || prev != 2 {
		t.Errorf("versions switched %d times (last %d), want once from 1 to 2", switches, prev)
	}
	log := p.log.String()
	if !strings.Contains(log, `msg="config applied"`) || !strings.Contains(log, "push:15:32: rules.rules[0].when") {
		t.Errorf("the log lacks the apply or a refusal:\n%s", log)
	}
	t.Logf("%d events acked; %d with version 1, %d with version 2; %d at the new URL", len(sent), rec.count(1), rec.count(2), len(srv2.Events()))
}

// A pushed config is what the gateway runs after a restart (SIGTERM or
// kill -9) while the local file is unchanged; once the local file is
// edited, it wins.
func TestConfigPersistsAcrossRestartE2E(t *testing.T) {
	c := newConfigE2E(t)
	config := c.doc(t, "edgegate.yaml", c.uplink, "1")
	startSink(t, c.uplink)
	version := func() string {
		t.Helper()
		_, errOut, code := c.config(t, "get")
		if code != 0 {
			t.Fatalf("config get: %s", errOut)
		}
		return regexp.MustCompile(`# version (\d+),`).FindStringSubmatch(errOut)[1]
	}
	p := startProc(t, c.bin, config, c.admin)
	if out, errOut, code := c.config(t, "push", c.doc(t, "v2.yaml", c.uplink, "2")); code != 0 {
		t.Fatalf("push: %s%s", out, errOut)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.cmd.Wait()

	p = startProc(t, c.bin, config, c.admin)
	if v := version(); v != "2" {
		t.Errorf("after SIGTERM and a restart the gateway runs version %s, want 2", v)
	}
	if !strings.Contains(p.log.String(), "using remotely applied config v2 from admin") {
		t.Errorf("the start does not say it uses the pushed config:\n%s", p.log)
	}
	p.kill()
	p = startProc(t, c.bin, config, c.admin)
	if v := version(); v != "2" {
		t.Errorf("after kill -9 and a restart the gateway runs version %s, want 2", v)
	}
	p.kill()

	c.doc(t, "edgegate.yaml", c.uplink, "3") // the operator edits the local file
	p = startProc(t, c.bin, config, c.admin)
	defer p.kill()
	doc, errOut, _ := c.config(t, "get")
	if !strings.Contains(doc, "data.version: 3") || !strings.Contains(errOut, "# version 3,") {
		t.Errorf("after a local edit the gateway runs:\n%s%s", errOut, doc)
	}
	if !strings.Contains(p.log.String(), "the local config file changed since a remote config was applied") {
		t.Errorf("the start does not say the local file wins:\n%s", p.log)
	}
	out, _, _ := c.config(t, "history")
	if !strings.Contains(out, "admin") || !strings.Contains(out, "file") {
		t.Errorf("config history:\n%s", out)
	}
}

// A pushed config that sends to a closed port is rolled back within the
// health window; the rolledback event reaches the restored uplink, and
// `config history` shows why.
func TestConfigRollbackE2E(t *testing.T) {
	c := newConfigE2E(t)
	c.base = strings.Replace(c.base, "remote_config: {events: false}", "remote_config: {health_window: 20s}", 1)
	config := c.doc(t, "edgegate.yaml", c.uplink, "1")
	sink := startSink(t, c.uplink)
	p := startProc(t, c.bin, config, c.admin)
	defer p.kill()
	closed := freeAddr(t)
	if out, errOut, code := c.config(t, "push", c.doc(t, "broken.yaml", closed, "2")); code != 0 {
		t.Fatalf("push: %s%s", out, errOut)
	}
	var reason string
	deadline := time.Now().Add(20 * time.Second)
	for reason == "" && time.Now().Before(deadline) {
		for _, e := range sink.Events() {
			if e.Type() == "io.edgegate.config.rolledback" {
				var d struct{ Reason string }
				json.Unmarshal(e.Data(), &d)
				reason = d.Reason
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(reason, "uplink cloud fails every send since the change") {
		t.Fatalf("rolledback event reason %q; log:\n%s", reason, p.log)
	}
	out, _, _ := c.config(t, "history")
	if !regexp.MustCompile(`(?m)^2 .*rolled back: health window: uplink cloud fails every send`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^1 +\*`).MatchString(out) {
		t.Errorf("config history:\n%s", out)
	}
}

// The admin API of the real binary with admin.tls.client_ca_file and no
// tokens: `edgegate config get` with a client certificate gets the config,
// without one it is refused 401.
func TestConfigClientCertificateE2E(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	ca := testpki.NewCA(t, "admin CA")
	srv := ca.Server(t, "edgegate-admin")
	ops := ca.Client(t, "ops-laptop")
	setAdmin(t, e.config, fmt.Sprintf("admin:\n  listen: %q\n  tls: {cert_file: %q, key_file: %q, client_ca_file: %q}\n",
		e.admin, srv.CertFile, srv.KeyFile, ca.File))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{ops.TLS}}}}
	defer client.CloseIdleConnections()
	p := startProcAt(t, e.bin, e.config, "https://"+e.admin, client)
	defer p.kill()
	to := []string{"--to", "https://" + e.admin, "--cacert", ca.File}
	out, errOut, code := cli(t, e.bin, append(append([]string{"config", "get"}, to...), "--cert", ops.CertFile, "--key", ops.KeyFile)...)
	if code != 0 || !strings.Contains(out, "gateway_id: crash-test") {
		t.Errorf("config get with a client certificate: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = cli(t, e.bin, append([]string{"config", "get"}, to...)...)
	if code != 1 || !strings.Contains(errOut, "401 Unauthorized") {
		t.Errorf("config get without a certificate: exit %d: %s", code, errOut)
	}
}
