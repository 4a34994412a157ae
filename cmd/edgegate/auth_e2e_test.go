package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// authSection is the auth section of the auth tests, appended to the
// e2e config: devices come from devices.yaml, the dashboard is inline;
// each device may publish under its own devices/{name}/ and read its
// commands, the dashboard reads every device and $SYS.
const authSection = `auth:
  users_file: devices.yaml
  users:
    - {username: dashboard, password_hash: %q}
  acl:
    - users: ["*"]
      publish: ["devices/%%u/#"]
      subscribe: ["devices/%%u/cmd/#"]
    - users: [dashboard]
      subscribe: ["devices/#", "$SYS/#"]
`

// appendConfig adds text to the e2e config file.
func appendConfig(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// hashSecret hashes secret with the binary's own `edgegate passwd`,
// reading it from stdin.
func hashSecret(t *testing.T, bin, secret string) string {
	t.Helper()
	cmd := exec.Command(bin, "passwd")
	cmd.Stdin = strings.NewReader(secret + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("edgegate passwd: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// userFile writes devices.yaml with a user per name, each with the secret
// "<name>-secret". A name written before keeps its hash: only what an
// integrator changes changes.
type userFile struct {
	bin, dir string
	hashes   map[string]string
}

func (u *userFile) write(t *testing.T, names ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("users:\n")
	for _, n := range names {
		if u.hashes[n] == "" {
			u.hashes[n] = hashSecret(t, u.bin, n+"-secret")
		}
		fmt.Fprintf(&b, "  - username: %s\n    password_hash: %q\n", n, u.hashes[n])
	}
	if err := os.WriteFile(filepath.Join(u.dir, "devices.yaml"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// login sets a device's user name and password (its name, "<name>-secret")
// and MQTT 3.1.1 (paho retries a refused connect with MQTT 3.1 otherwise).
func login(name string) func(*paho.ClientOptions) {
	return func(o *paho.ClientOptions) { o.SetUsername(name).SetPassword(name + "-secret").SetProtocolVersion(4) }
}

// subackCode returns the SUBACK code of a single-filter subscription.
func subackCode(t *testing.T, c paho.Client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, func(paho.Client, paho.Message) {})
	mqtttest.Wait(t, tok, "subscribe "+filter)
	return tok.(*paho.SubscribeToken).Result()[filter]
}

// Devices through the real binary: wrong password, unknown user, no
// credentials and another device's client id are refused; a device may
// publish and subscribe under its own name only ('#' and $SYS/# refused,
// and a denied publish never becomes an event); the dashboard reads
// $SYS; changing the users file and sending SIGHUP lets a new device in
// and disconnects and locks out a removed one.
func TestDeviceAuthE2E(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	users := &userFile{bin: e.bin, dir: e.dir, hashes: map[string]string{}}
	users.write(t, "d1", "d2")
	appendConfig(t, e.config, fmt.Sprintf(authSection, hashSecret(t, e.bin, "dashboard-secret")))
	sink := startSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()
	broker := "tcp://" + e.mqtt

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name, id string
			adjust   func(*paho.ClientOptions)
			want     string
		}{
			{"wrong password", "d1", func(o *paho.ClientOptions) { login("d1")(o); o.SetPassword("d2-secret") }, "bad user name or password"},
			{"unknown user", "d9", login("d9"), "bad user name or password"},
			{"anonymous", "d1", func(o *paho.ClientOptions) { o.SetProtocolVersion(4) }, "not Authorized"},
			{"client id of another device", "d2", login("d1"), "identifier rejected"},
		} {
			c, err := mqtttest.Dial(broker, tc.id, tc.adjust)
			if err == nil {
				c.Disconnect(0)
				t.Errorf("%s: connected", tc.name)
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			}
		}
		m := adminMetrics(t, e.admin)
		for _, want := range []string{
			`edgegate_mqtt_auth_failures_total{reason="wrong_password"} 1`,
			`edgegate_mqtt_auth_failures_total{reason="unknown_user"} 1`,
			`edgegate_mqtt_auth_failures_total{reason="anonymous"} 1`,
			`edgegate_mqtt_connections_refused_total{reason="client_id"} 1`,
		} {
			if !strings.Contains(m, "\n"+want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	var d1Lost atomic.Bool
	d1 := mqtttest.Connect(t, broker, "d1", login("d1"), func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { d1Lost.Store(true) })
	})
	dash := mqtttest.Connect(t, broker, "dashboard", login("dashboard"))

	t.Run("topics", func(t *testing.T) {
		for _, f := range []string{"devices/d2/cmd/#", "devices/+/cmd/#", "devices/d1/telemetry", "#", "$SYS/#"} {
			if code := subackCode(t, d1, f); code != 0x80 {
				t.Errorf("d1 subscribe %s: SUBACK %#x, want 0x80", f, code)
			}
		}
		if code := subackCode(t, d1, "devices/d1/cmd/#"); code != 1 {
			t.Errorf("d1 subscribe to its own commands: SUBACK %#x", code)
		}
		sys := mqtttest.Subscribe(t, dash, "$SYS/#", 0)
		select {
		case <-sys:
		case <-time.After(10 * time.Second):
			t.Error("the dashboard, granted $SYS/#, received nothing")
		}
		seen := mqtttest.Subscribe(t, dash, "devices/#", 1)

		// Another device's telemetry and commands: acknowledged (3.1.1),
		// never an event, never delivered.
		mqtttest.Publish(t, d1, "devices/d2/telemetry", 1, `{"forged":true}`)
		mqtttest.Publish(t, d1, "devices/d2/cmd/unlock", 1, `{"forged":true}`)
		// MQTT 5: the negative ack says so.
		raw, ack, err := mqtttest.DialRawConnect(t, e.mqtt, 5, packets.ConnectParams{
			ClientIdentifier: "d2", Username: []byte("d2"), Password: []byte("d2-secret"), Keepalive: 30, Clean: true})
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("MQTT 5 d2: CONNACK %#x %v", ack.ReasonCode, err)
		}
		raw.Publish("devices/d1/telemetry", []byte(`{"forged":true}`), 1, 1, packets.Properties{})
		if pk, err := raw.Read(); err != nil || pk.FixedHeader.Type != packets.Puback || pk.ReasonCode != 0x87 {
			t.Errorf("MQTT 5 cross-device publish: %+v reason %#x %v, want PUBACK 0x87", pk.FixedHeader, pk.ReasonCode, err)
		}
		raw.Conn.Close()

		mqtttest.Publish(t, d1, "devices/d1/telemetry", 1, `{"ok":1}`)
		select {
		case m := <-seen:
			if m.Topic() != "devices/d1/telemetry" {
				t.Errorf("the dashboard received %s %s", m.Topic(), m.Payload())
			}
		case <-time.After(10 * time.Second):
			t.Error("the dashboard did not receive d1's telemetry")
		}
		events := sink.WaitFor(1, 10*time.Second)
		time.Sleep(200 * time.Millisecond) // anything denied would have come in the same batch or before
		for _, ev := range append(events, sink.Events()...) {
			if bytes.Contains(ev.Data(), []byte("forged")) {
				t.Errorf("a denied publish became an event: %s %s", eventSource(ev), ev.Data())
			}
		}
		m := adminMetrics(t, e.admin)
		for _, want := range []string{
			`edgegate_mqtt_acl_denied_total{action="publish"} 3`,
			`edgegate_mqtt_acl_denied_total{action="subscribe"} 5`,
		} {
			if !strings.Contains(m, "\n"+want+"\n") {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	d2 := mqtttest.Connect(t, broker, "d2", login("d2")) // after the MQTT 5 d2 above, which took its session
	t.Run("reload", func(t *testing.T) {
		if _, err := mqtttest.Dial(broker, "d3", login("d3")); err == nil {
			t.Fatal("d3 connected before it was added")
		}
		users.write(t, "d2", "d3") // d1 removed, d3 added
		p.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(10 * time.Second)
		for !d1Lost.Load() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !d1Lost.Load() {
			t.Fatalf("d1 is still connected after its removal; log:\n%s", p.log)
		}
		d3 := mqtttest.Connect(t, broker, "d3", login("d3"))
		mqtttest.Publish(t, d3, "devices/d3/telemetry", 1, `{"new":true}`)
		if _, err := mqtttest.Dial(broker, "d1", login("d1")); err == nil || !strings.Contains(err.Error(), "bad user name or password") {
			t.Errorf("removed d1 reconnects: %v", err)
		}
		if !d2.IsConnectionOpen() {
			t.Error("d2, still a user, lost its connection")
		}
		mqtttest.Publish(t, d2, "devices/d2/telemetry", 1, `{"still":true}`)

		// POST /-/reload takes the same path: d2 removed.
		users.write(t, "d3")
		resp, err := http.Post("http://"+e.admin+"/-/reload", "", nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /-/reload: %v %v", resp, err)
		}
		resp.Body.Close()
		eventuallyE2E(t, "d2 disconnected", func() bool { return !d2.IsConnectionOpen() })
		if !strings.Contains(adminMetrics(t, e.admin), "\nedgegate_mqtt_revoked_disconnects_total 2\n") {
			t.Error("/metrics does not count two revoked clients")
		}
	})
	if !strings.Contains(p.log.String(), "client disconnected: its credentials are no longer valid") {
		t.Errorf("no revocation in the log:\n%s", p.log)
	}
}

func eventSource(ev event.Event) string { return ev.Source() }

// eventuallyE2E polls cond for up to 10 s.
func eventuallyE2E(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A listener beyond loopback with no way to authenticate is refused before
// anything is bound; allow_anonymous: true is accepted with a warning.
func TestAnonymousBeyondLoopbackRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary")
	}
	bin := edgegateBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "open.yaml")
	write := func(extra string) {
		cfg := fmt.Sprintf(`gateway_id: open
mqtt:
  listeners:
    - {id: lan, type: tcp, address: "0.0.0.0:0"}
buffer: {dir: %q}
uplinks:
  - {name: cloud, http: {url: "http://127.0.0.1:1/"}}
%s`, filepath.Join(dir, "buffer"), extra)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	out, err := exec.Command(bin, "run", "--config", path).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("run: %v, want exit 2\n%s", err, out)
	}
	want := path + `:1:1: auth.allow_anonymous: mqtt listener "lan" binds 0.0.0.0:0 beyond loopback and no device can authenticate`
	if !strings.Contains(string(out), want) {
		t.Errorf("run output lacks %q:\n%s", want, out)
	}
	write("auth: {allow_anonymous: true}\n")
	out, err = exec.Command(bin, "validate", "--config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	for _, want := range []string{"warning: auth.allow_anonymous is true and mqtt listener \"lan\" binds 0.0.0.0:0 beyond loopback", "warning: no auth.acl"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}

// The quickstart on the shipped config, its auth section as shipped:
// `edgegate simulate`'s devices connect without credentials on loopback
// and publish under their own client id, which the shipped ACL grants;
// the same client publishing under another device's id is refused.
func TestQuickstartShippedConfig(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	shipped, err := os.ReadFile("../../configs/edgegate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"127.0.0.1:1883", e.mqtt,
		`":8080"`, fmt.Sprintf("%q", e.admin),
		"127.0.0.1:8080", e.admin,
		"./data/buffer", filepath.Join(e.dir, "buffer"),
		"http://127.0.0.1:8081/", "http://"+e.uplink+"/",
	).Replace(string(shipped))
	for _, want := range []string{e.mqtt, e.admin, e.uplink, e.dir} {
		if !strings.Contains(cfg, want) {
			t.Fatalf("the shipped config changed: could not point it at %s", want)
		}
	}
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	sink := startSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()
	out, err := exec.Command(e.bin, "simulate", "--broker", "tcp://"+e.mqtt, "--devices", "3", "--count", "5", "--rate", "0", "--progress", "0").CombinedOutput()
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	if got := sink.WaitFor(15, 10*time.Second); len(got) < 15 {
		t.Fatalf("%d of 15 simulated events arrived; simulate said:\n%s\nlog:\n%s", len(got), out, p.log)
	}
	c := mqtttest.Connect(t, "tcp://"+e.mqtt, "sim-001")
	mqtttest.Publish(t, c, "devices/sim-002/telemetry", 1, `{"forged":true}`)
	if !strings.Contains(adminMetrics(t, e.admin), "\n"+`edgegate_mqtt_acl_denied_total{action="publish"} 1`+"\n") {
		t.Error("a publish under another device's id was not denied")
	}
}
