package gateway

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/uplink"
)

// getJSON decodes the JSON answer of a GET on the admin endpoint.
func getJSON(t *testing.T, g *Gateway, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// readyz returns /readyz's status and body.
func readyz(t *testing.T, g *Gateway) (int, string) {
	t.Helper()
	got := call(t, http.DefaultClient, "GET", "http://"+g.AdminAddr().String()+"/readyz")
	return got.code, got.body
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Ready means device intake is open: an uplink outage leaves the gateway
// ready (the buffer takes the events) while /v1/uplinks shows it failing,
// with its backlog, oldest age and last error; a buffer that refuses
// events makes it not ready, saying why, until it accepts again.
func TestReadinessAndUplinkHealth(t *testing.T) {
	rcv := newReceiver(t)
	rcv.Refuse(http.StatusServiceUnavailable)
	cfg := testConfig(t, rcv.URL())
	cfg.Buffer.MaxBytes = 4 << 10
	cfg.Buffer.Overflow = buffer.Reject
	gw := start(t, cfg)
	g := gw.g
	if code, body := readyz(t, g); code != http.StatusOK || body != "ready\n" {
		t.Fatalf("/readyz at start: %d %q", code, body)
	}
	var ups []uplinkStatus
	getJSON(t, g, "/v1/uplinks", &ups)
	if len(ups) != 1 || ups[0].Name != "cloud" || ups[0].State != uplink.StateIdle || ups[0].LastSuccess != nil || ups[0].Backlog != 0 {
		t.Fatalf("/v1/uplinks at start: %+v", ups)
	}

	c := mqtttest.Connect(t, gw.mqtt, "dev-1")
	publishSeq(t, c, "dev-1", 0, 1)
	waitFor(t, "the uplink failing", func() bool {
		getJSON(t, g, "/v1/uplinks", &ups)
		return ups[0].State == uplink.StateFailing && ups[0].OldestAge > 0
	})
	u := ups[0]
	if u.Up || u.Backlog != 1 || u.BacklogBytes == 0 || u.ConsecutiveFailures < 1 || !strings.Contains(u.LastError, "503") ||
		u.LastFailure == nil || u.LastSuccess != nil || u.DeadLetterQueue != "deadletter.cloud" {
		t.Errorf("failing uplink: %+v", u)
	}
	if code, body := readyz(t, g); code != http.StatusOK {
		t.Errorf("/readyz during an uplink outage: %d %q, want 200: the buffer takes the events", code, body)
	}

	// Fill the buffer (QoS 0: a refused message is only counted).
	payload := strings.Repeat("x", 500)
	waitFor(t, "the buffer refusing events", func() bool {
		mqtttest.Wait(t, c.Publish("devices/dev-1/telemetry", 0, false, `"`+payload+`"`), "publish")
		code, _ := readyz(t, g)
		return code == http.StatusServiceUnavailable
	})
	code, body := readyz(t, g)
	if want := "not ready:\nbuffer: full (max_bytes reached, overflow: reject)"; code != http.StatusServiceUnavailable || !strings.HasPrefix(body, want) {
		t.Errorf("/readyz with the buffer full: %d %q, want 503 %q", code, body, want)
	}
	var st status
	getJSON(t, g, "/status", &st)
	if st.Ready || len(st.NotReady) != 1 || !strings.HasPrefix(st.NotReady[0], "buffer: full") {
		t.Errorf("/status with the buffer full: ready %v, not_ready %q", st.Ready, st.NotReady)
	}
	if m := metricsText(t, g); !strings.Contains(m, "\nedgegate_ready 0\n") {
		t.Error("edgegate_ready is not 0 with the buffer full")
	}

	rcv.Refuse(0)
	waitFor(t, "the backlog delivered and ready again", func() bool {
		getJSON(t, g, "/v1/uplinks", &ups)
		code, _ := readyz(t, g)
		return ups[0].Backlog == 0 && code == http.StatusOK
	})
	u = ups[0]
	if !u.Up || u.State == uplink.StateFailing || u.LastSuccess == nil || u.LastSuccess.Before(*u.LastFailure) ||
		u.ConsecutiveFailures != 0 || u.OldestAge != 0 || u.Delivered == 0 {
		t.Errorf("recovered uplink: %+v", u)
	}
}

// /status lists the connected devices (at most ?clients=N), the
// configuration's hash, counters and rules, never secrets.
func TestStatus(t *testing.T) {
	rcv := newReceiver(t)
	cfg := testConfig(t, rcv.URL())
	data := []byte(fmt.Sprintf(`gateway_id: gw-status
admin: {listen: "127.0.0.1:0"}
mqtt: {listeners: [{id: tcp, type: tcp, address: "127.0.0.1:0"}]}
buffer: {dir: %q, min_free_bytes: 16MiB}
events: {presence: {enabled: false}}
uplinks: [{name: cloud, http: {url: %q, auth: {bearer_token: s3cret-value}}}]
rules:
  rules:
    - name: hot
      when: data.seq >= 2
      actions: [{set: {data.hot: "true"}}]
`, cfg.Buffer.Dir, rcv.URL()))
	c, err := Parse("status.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(c, Options{Version: "v9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	gw := runGateway(t, g, "tcp")
	a := mqtttest.Connect(t, gw.mqtt, "dev-a", func(o *paho.ClientOptions) { o.SetUsername("alice") })
	mqtttest.Connect(t, gw.mqtt, "dev-b")
	publishSeq(t, a, "dev-a", 0, 4)
	rcv.WaitFor(4, 10*time.Second)

	var st status
	waitFor(t, "the delivery counted", func() bool {
		getJSON(t, g, "/status", &st)
		return st.Counters.Delivered == 4
	})
	sum := sha256.Sum256(data)
	if st.GatewayID != "gw-status" || st.Version != "v9.9.9" || !st.Ready || st.Config.Hash != hex.EncodeToString(sum[:]) ||
		st.Config.LoadedAt.IsZero() || !st.Config.LastReloadOK || st.StartedAt.After(st.Now) {
		t.Errorf("status: %+v", st)
	}
	if st.Clients != 2 || len(st.ClientList) != 2 || st.ClientList[0].ClientID != "dev-a" || st.ClientList[1].ClientID != "dev-b" {
		t.Fatalf("clients: %d %+v", st.Clients, st.ClientList)
	}
	for _, cl := range st.ClientList {
		if cl.Listener != "tcp" || cl.ProtocolVersion != 4 || !strings.HasPrefix(cl.RemoteAddr, "127.0.0.1:") || cl.ConnectedSince.After(st.Now) || cl.Auth == "" {
			t.Errorf("client: %+v", cl)
		}
	}
	if st.Counters.Ingested != 4 || len(st.Uplinks) != 1 || st.Uplinks[0].Delivered != 4 {
		t.Errorf("counters %+v, uplinks %+v", st.Counters, st.Uplinks)
	}
	if len(st.Rules) != 1 || st.Rules[0].Name != "hot" || st.Rules[0].Evaluations != 4 || st.Rules[0].Matches != 2 {
		t.Errorf("rules: %+v", st.Rules)
	}
	getJSON(t, g, "/status?clients=1", &st)
	if st.Clients != 2 || len(st.ClientList) != 1 {
		t.Errorf("?clients=1: %d listed of %d", len(st.ClientList), st.Clients)
	}
	raw := call(t, http.DefaultClient, "GET", "http://"+g.AdminAddr().String()+"/status")
	if strings.Contains(raw.body, "s3cret") {
		t.Errorf("/status shows a secret:\n%s", raw.body)
	}
	if got := call(t, http.DefaultClient, "GET", "http://"+g.AdminAddr().String()+"/status?clients=-1"); got.code != http.StatusBadRequest {
		t.Errorf("?clients=-1: %d, want 400", got.code)
	}

	// The live tail streams the stored events, and ends when the gateway
	// stops (a stream never keeps Run from returning).
	resp, err := http.Get("http://" + g.AdminAddr().String() + "/v1/events?q=dev-a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	for seen := 0; seen < 4; {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("tail: %v", err)
		}
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"subject":"dev-a"`) {
			seen++
		}
	}
	stopped := make(chan struct{})
	go func() { gw.stop(t); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the gateway did not stop within 5 s with a live tail open")
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Errorf("tail after stop: %v", err)
	}
}
