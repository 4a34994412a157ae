package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/configsign"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// signedSetup is a gateway configuration with public key ops.pub in dir,
// and the private key to sign documents with.
type signedSetup struct {
	e2e
	key   configsign.PrivateKey
	local string // the local file's text
}

// newSignedSetup writes ops.key/ops.pub and a configuration whose
// remote_config section is remote (indented two spaces, without
// public_key_files) and whose uplinks section is uplinks.
func newSignedSetup(t *testing.T, remote, uplinks string) signedSetup {
	t.Helper()
	s := signedSetup{e2e: newE2E(t, "builds and runs the real binary")}
	k, err := configsign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.key = k
	if err := configsign.WriteKeyPair(filepath.Join(s.dir, "ops"), k); err != nil {
		t.Fatal(err)
	}
	s.local = fmt.Sprintf(`gateway_id: sign-test
log: {level: info}
admin: {listen: %q}
mqtt:
  listeners:
    - {id: tcp, type: tcp, address: %q}
buffer: {dir: %q, min_free_bytes: 16MiB}
remote_config:
  events: false
  public_key_files: [ops.pub]
%suplinks:
%s`, s.admin, s.mqtt, filepath.Join(s.dir, "buffer"), remote, uplinks)
	s.config = filepath.Join(s.dir, "edgegate.yaml")
	if err := os.WriteFile(s.config, []byte(s.local), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// doc is the local configuration with the log level changed: a document
// a remote source may apply.
func (s signedSetup) doc(level string) []byte {
	return []byte(strings.Replace(s.local, "log: {level: info}", "log: {level: "+level+"}", 1))
}

func (s signedSetup) sign(t *testing.T, doc []byte, version int64) []byte {
	t.Helper()
	out, _, err := configsign.SignDocument(s.key, doc, version)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// configHash is the hash of the configuration in effect, from /status.
func configHash(t *testing.T, p *gatewayProc) string {
	t.Helper()
	var st struct {
		Config struct {
			Hash string `json:"hash"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(adminStatus(p)), &st); err != nil {
		t.Fatal(err)
	}
	return st.Config.Hash
}

// A gateway with a public key pulls from a URL and applies only a
// correctly signed, newer document: unsigned, signed by another key,
// tampered and older documents are refused with precise messages and
// counted, and the running configuration stays.
func TestSignedPull(t *testing.T) {
	var mu sync.Mutex
	var served []byte
	var sig string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		etag := `"` + sha256hex(append([]byte(sig), served...))[:16] + `"`
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		if sig != "" {
			w.Header().Set("Edgegate-Signature", sig)
		}
		w.Write(served)
	}))
	defer srv.Close()
	s := newSignedSetup(t, fmt.Sprintf("  pull: {url: %q, interval: 1s, jitter: 0}\n", srv.URL+"/gw.yaml"),
		fmt.Sprintf("  - {name: cloud, http: {url: \"http://%s/\"}}\n", s0(t)))
	serve := func(doc []byte, detached string) {
		mu.Lock()
		served, sig = doc, detached
		mu.Unlock()
	}
	serve(s.doc("warn"), "") // unsigned, before start
	p := startProc(t, s.bin, s.config, s.admin)
	p.admin = s.admin
	defer p.kill()
	localHash := sha256hex([]byte(s.local))

	rejected := func(n int, want string) {
		t.Helper()
		eventuallyE2E(t, fmt.Sprintf("rejection %d (%s)", n, want), func() bool {
			return metricValue(t, s.admin, `edgegate_config_pull_total{result="rejected"}`) >= float64(n)
		})
		if !strings.Contains(p.log.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, p.log)
		}
	}
	rejected(1, "config is not signed")

	other, _ := configsign.GenerateKey(rand.Reader)
	stranger, _, _ := configsign.SignDocument(other, s.doc("warn"), 1000)
	serve(stranger, "")
	rejected(2, "signed with unknown key "+other.Public().ID())

	good := s.sign(t, s.doc("debug"), 1000)
	serve([]byte(strings.Replace(string(good), "debug", "error", 1)), "")
	rejected(3, "bad signature")
	if h := configHash(t, p); h != localHash {
		t.Fatalf("a refused document changed the running config: hash %s", h)
	}

	// Detached in the header, embedded in the body: both verify.
	body, line, _ := configsign.Split(good)
	serve(body, line.String())
	eventuallyE2E(t, "the signed document applied", func() bool { return configHash(t, p) == sha256hex(body) })
	serve(good, "")
	eventuallyE2E(t, "the same signed document, embedded", func() bool {
		return metricValue(t, s.admin, `edgegate_config_pull_total{result="unchanged"}`) >= 1 || configHash(t, p) == sha256hex(good)
	})

	serve(s.sign(t, s.doc("warn"), 999), "")
	rejected(4, "version 999 is older than the running version 1000")
	if got := metricValue(t, s.admin, `edgegate_config_applies_total{source="pull",result="rejected"}`); got != 4 {
		t.Errorf("edgegate_config_applies_total{source=pull,result=rejected} = %v, want 4", got)
	}
	if h := configHash(t, p); h == localHash || h == sha256hex(s.doc("warn")) {
		t.Errorf("running hash %s after the refused older version", h)
	}
	var st struct {
		Config struct {
			Pull struct {
				URL        string `json:"url"`
				LastResult string `json:"last_result"`
				LastError  string `json:"last_error"`
			} `json:"pull"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(adminStatus(p)), &st); err != nil {
		t.Fatal(err)
	}
	if pull := st.Config.Pull; pull.URL != srv.URL+"/gw.yaml" || (pull.LastResult == "rejected" && !strings.Contains(pull.LastError, "older than the running version")) {
		t.Errorf("/status config.pull = %+v", pull)
	}
	eventuallyE2E(t, "a poll answered 304 (If-None-Match sent)", func() bool {
		return metricValue(t, s.admin, `edgegate_config_pull_total{result="not_modified"}`) > 0
	})

	// The server goes away: polls fail, counted, and the gateway runs on.
	running := configHash(t, p)
	applied := metricValue(t, s.admin, `edgegate_config_applies_total{source="pull",result="applied"}`)
	srv.Close()
	eventuallyE2E(t, "failed polls", func() bool {
		return metricValue(t, s.admin, `edgegate_config_pull_total{result="error"}`) >= 2
	})
	resp, err := http.Get("http://" + s.admin + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("not ready while the config server is down: %v %v", resp, err)
	}
	resp.Body.Close()
	if h := configHash(t, p); h != running {
		t.Errorf("running hash changed while the server was down")
	}
	if got := metricValue(t, s.admin, `edgegate_config_applies_total{source="pull",result="applied"}`); got != applied {
		t.Errorf("applies while the server was down: %v, was %v", got, applied)
	}
}

// s0 is an address where nothing listens: an uplink that is never used.
func s0(t *testing.T) string { return freeAddr(t) }

// The MQTT config channel over the MQTT uplink's own connection to a real
// broker: a signed retained config is applied and answered on the status
// topic; an unsigned one is refused; after a restart the retained config,
// equal to the running one, is a no-op.
func TestSignedMQTTChannel(t *testing.T) {
	cloud := mqtttest.StartBroker(t)
	s := newSignedSetup(t, "  mqtt: {uplink: iot}\n",
		fmt.Sprintf("  - {name: iot, mqtt: {url: %q, topic: \"cloud/{type}\"}, retry: {initial: 50ms, max: 500ms}}\n", cloud.URL))
	operator := mqtttest.Connect(t, cloud.URL, "operator")
	defer operator.Disconnect(0)
	status := mqtttest.Subscribe(t, operator, "gateways/sign-test/config/status", 1)
	next := func(what string) map[string]any {
		t.Helper()
		select {
		case m := <-status:
			var st map[string]any
			if err := json.Unmarshal(m.Payload(), &st); err != nil {
				t.Fatal(err)
			}
			return st
		case <-time.After(20 * time.Second):
			t.Fatalf("no status for %s", what)
			return nil
		}
	}
	const topic = "gateways/sign-test/config"
	v1 := s.sign(t, s.doc("debug"), 1000)
	mqtttest.Wait(t, operator.Publish(topic, 1, true, v1), "retained config")

	p := startProc(t, s.bin, s.config, s.admin)
	p.admin = s.admin
	st := next("the retained signed config")
	if st["result"] != "applied" || st["version"] != float64(1000) || st["retained"] != true {
		t.Fatalf("status = %v", st)
	}
	if h := configHash(t, p); h != sha256hex(v1) {
		t.Fatalf("running hash %s, want the pushed document's", h)
	}

	mqtttest.Wait(t, operator.Publish(topic, 1, false, s.doc("warn")), "unsigned config")
	st = next("the unsigned config")
	errs, _ := st["errors"].([]any)
	if st["result"] != "rejected" || st["reason"] != "signature" || len(errs) == 0 || !strings.Contains(fmt.Sprint(errs[0]), "config is not signed") {
		t.Fatalf("status = %v", st)
	}
	if got := metricValue(t, s.admin, `edgegate_config_mqtt_total{result="rejected"}`); got != 1 {
		t.Errorf("edgegate_config_mqtt_total{result=rejected} = %v", got)
	}

	// A config that changes the uplink itself: its sender is replaced,
	// and the channel subscribes again on the new connection.
	v2 := s.sign(t, []byte(strings.Replace(string(s.doc("debug")), `topic: "cloud/{type}"`, `topic: "cloud2/{type}"`, 1)), 1001)
	mqtttest.Wait(t, operator.Publish(topic, 1, true, v2), "a config changing the uplink")
	st = next("the config changing the uplink")
	if st["result"] != "applied" || st["version"] != float64(1001) {
		t.Fatalf("status = %v", st)
	}
	if st = next("the retained config on the new connection"); st["result"] != "unchanged" || st["version"] != float64(1001) {
		t.Fatalf("status = %v", st)
	}
	v3 := s.sign(t, []byte(strings.Replace(string(v2), "level: debug", "level: info", 1)), 1002)
	mqtttest.Wait(t, operator.Publish(topic, 1, true, v3), "a config over the new connection")
	if st = next("a config over the new connection"); st["result"] != "applied" || st["version"] != float64(1002) {
		t.Fatalf("status = %v", st)
	}

	// Restarted, the gateway runs v3 from its state directory; the
	// retained v3 arrives again and changes nothing.
	p.kill()
	p = startProc(t, s.bin, s.config, s.admin)
	p.admin = s.admin
	defer p.kill()
	st = next("the retained config after a restart")
	if st["result"] != "unchanged" || st["version"] != float64(1002) {
		t.Fatalf("status = %v", st)
	}
	if h := configHash(t, p); h != sha256hex(v3) {
		t.Errorf("running hash %s after restart, want v3's", h)
	}
}

// Pushes to a gateway with a public key: unsigned, wrongly signed and
// older documents are refused with their status and a precise message,
// counted, and leave the running config; a signed newer one is applied,
// embedded or with the detached signature in the header.
func TestSignedPush(t *testing.T) {
	s := newSignedSetup(t, "", fmt.Sprintf("  - {name: cloud, http: {url: \"http://%s/\"}}\n", s0(t)))
	p := startProc(t, s.bin, s.config, s.admin)
	p.admin = s.admin
	defer p.kill()
	localHash := sha256hex([]byte(s.local))
	push := func(doc []byte, detached string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, "http://"+s.admin+"/v1/config", strings.NewReader(string(doc)))
		if detached != "" {
			req.Header.Set("Edgegate-Signature", detached)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	other, _ := configsign.GenerateKey(rand.Reader)
	byOther, _, _ := configsign.SignDocument(other, s.doc("warn"), 2000)
	good := s.sign(t, s.doc("debug"), 2000)
	for _, tc := range []struct {
		name   string
		doc    []byte
		status int
		want   string
	}{
		{"unsigned", s.doc("warn"), 403, "config is not signed"},
		{"unknown key", byOther, 403, "signed with unknown key " + other.Public().ID()},
		{"tampered", []byte(strings.Replace(string(good), "debug", "error", 1)), 403, "bad signature"},
		{"malformed line", append(s.doc("warn"), "# edgegate-signature: v1 version=1\n"...), 403, "signature line"},
	} {
		code, body := push(tc.doc, "")
		if code != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", tc.name, code, body, tc.status, tc.want)
		}
	}
	if h := configHash(t, p); h != localHash {
		t.Fatalf("refused pushes changed the running config: %s", h)
	}

	body, line, _ := configsign.Split(good)
	if code, resp := push(body, line.String()); code != 200 || !strings.Contains(resp, `"version": 2000`) {
		t.Fatalf("signed push (detached): %d %s", code, resp)
	}
	if h := configHash(t, p); h != sha256hex(body) {
		t.Fatalf("running hash %s after the signed push", h)
	}
	if code, resp := push(s.sign(t, s.doc("warn"), 1999), ""); code != 409 || !strings.Contains(resp, "version 1999 is older than the running version 2000") {
		t.Errorf("older version: %d %s", code, resp)
	}
	if code, resp := push(s.sign(t, s.doc("warn"), 2001), ""); code != 200 || !strings.Contains(resp, `"version": 2001`) {
		t.Errorf("newer version: %d %s", code, resp)
	}
	if got := metricValue(t, s.admin, `edgegate_config_applies_total{source="admin",result="rejected"}`); got != 5 {
		t.Errorf("edgegate_config_applies_total{source=admin,result=rejected} = %v, want 5", got)
	}
	if !strings.Contains(p.log.String(), "config rejected: keeping the running configuration") {
		t.Errorf("no rejection logged:\n%s", p.log)
	}
}
