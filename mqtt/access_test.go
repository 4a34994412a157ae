package mqtt

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// fakeAccess lets users in with their password (client id = user name),
// refuses "busy" as overloaded and anonymous clients unless anonymous;
// each identity may use the topics under its own name, and "reader" may
// subscribe to "shared/#" except "shared/secret", "watcher" to any topic
// not starting with '$'.
type fakeAccess struct {
	mu        sync.Mutex
	users     map[string]string
	anonymous bool
	obscure   bool
	seen      []ConnectInfo
}

func (f *fakeAccess) ObscureDenials() bool { return f.obscure }

func (f *fakeAccess) Authenticate(ci ConnectInfo) (Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = append(f.seen, ci)
	switch pw, ok := f.users[ci.Username]; {
	case ci.Username == "busy":
		return Identity{}, &Refusal{Err: ErrServerBusy, Reason: "busy"}
	case ci.Username == "":
		if !f.anonymous {
			return Identity{}, &Refusal{Err: ErrNotAuthorized, Reason: "anonymous", Auth: true}
		}
		return Identity{Method: AuthAnonymous}, nil
	case !ok || pw != string(ci.Password):
		return Identity{}, &Refusal{Err: ErrBadCredentials, Reason: "wrong_password", Auth: true}
	case ci.ClientID != ci.Username:
		return Identity{}, &Refusal{Err: ErrClientIDNotValid, Reason: "client_id", Auth: true}
	}
	return Identity{Username: ci.Username, Method: AuthPassword, Credential: f.users[ci.Username]}, nil
}

func (f *fakeAccess) CanPublish(id Identity, topic string) bool {
	return id.Username != "" && strings.HasPrefix(topic, id.Username+"/")
}

func (f *fakeAccess) CanSubscribe(id Identity, filter string) bool {
	if id.Username == "reader" && strings.HasPrefix(filter, "shared/") && filter != "shared/secret" {
		return true
	}
	if id.Username == "watcher" && !strings.HasPrefix(filter, "$") {
		return true
	}
	return f.CanPublish(id, filter)
}

func (f *fakeAccess) Admits(id Identity) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id.Method == AuthAnonymous {
		return f.anonymous
	}
	return f.users[id.Username] == id.Credential
}

func connectParams(id, user, pass string) packets.ConnectParams {
	return packets.ConnectParams{ClientIdentifier: id, Username: []byte(user), Password: []byte(pass), Keepalive: 30, Clean: true}
}

// Each refusal gets its own CONNACK code, as each protocol version spells
// it, and is counted; the connection is closed after it.
func TestConnectRefusals(t *testing.T) {
	tb := startBroker(t, testConfig(), &recorder{})
	tb.SetAccess(&fakeAccess{users: map[string]string{"door": "pw"}})
	for _, tc := range []struct {
		name          string
		c             packets.ConnectParams
		v5, v4        byte
		reason        string
		authFailure   bool
		wantConnected bool
	}{
		{"ok", connectParams("door", "door", "pw"), 0, 0, "", false, true},
		{"wrong password", connectParams("door", "door", "px"), 0x86, 0x04, "wrong_password", true, false},
		{"anonymous", connectParams("door", "", ""), 0x87, 0x05, "anonymous", true, false},
		{"client id", connectParams("other", "door", "pw"), 0x85, 0x02, "client_id", true, false},
		{"busy", connectParams("busy", "busy", "pw"), 0x89, 0x03, "busy", false, false},
		{"inline client id", connectParams(mochi.InlineClientId, "door", "pw"), 0x85, 0x02, "reserved_client_id", false, false},
	} {
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("%s/v%d", tc.name, v), func(t *testing.T) {
				rc, ack, err := mqtttest.DialRawConnect(t, tb.addr("tcp"), v, tc.c)
				want := tc.v4
				if v == 5 {
					want = tc.v5
				}
				if err != nil || ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != want {
					t.Fatalf("CONNACK %+v, %v; want reason %#x", ack.FixedHeader, err, want)
				}
				if tc.wantConnected {
					rc.Ping()
					return
				}
				if pk, err := rc.Read(); err != io.EOF {
					t.Errorf("after the refusal: %+v %v, want the connection closed", pk.FixedHeader, err)
				}
			})
		}
		if tc.reason != "" {
			if got := tb.metric(t, `edgegate_mqtt_connections_refused_total{reason="`+tc.reason+`"}`); got != "2" {
				t.Errorf("refused %s = %s, want 2", tc.reason, got)
			}
		}
		if tc.authFailure {
			if got := tb.metric(t, `edgegate_mqtt_auth_failures_total{reason="`+tc.reason+`"}`); got != "2" {
				t.Errorf("auth failures %s = %s, want 2", tc.reason, got)
			}
		}
	}
}

// What the Access sees of a CONNECT, and what the Handler sees of the
// identity it decided.
func TestIdentityReachesHandler(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(), rec)
	fa := &fakeAccess{users: map[string]string{"door": "pw"}}
	tb.SetAccess(fa)
	c := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "door", func(o *paho.ClientOptions) { o.SetUsername("door").SetPassword("pw") })
	mqtttest.Publish(t, c, "door/telemetry", 1, "x")
	msgs := rec.all()
	if len(msgs) != 1 || msgs[0].Username != "door" || msgs[0].AuthMethod != AuthPassword || msgs[0].ClientID != "door" {
		t.Fatalf("messages %+v, want one from user door by password", msgs)
	}
	fa.mu.Lock()
	ci := fa.seen[0]
	fa.mu.Unlock()
	if ci.Listener != "tcp" || ci.ClientID != "door" || ci.Username != "door" || string(ci.Password) != "pw" ||
		ci.ProtocolVersion != 4 || !strings.HasPrefix(ci.RemoteAddr, "127.0.0.1:") || ci.Cert != nil || ci.CertIdentity != "" {
		t.Errorf("ConnectInfo %+v", ci)
	}
}

// A denied PUBLISH never reaches the Handler: MQTT 5 QoS 1/2 gets 0x87,
// MQTT 3.1.1 is acknowledged (it would resend forever otherwise); every
// denial is counted.
func TestPublishDenied(t *testing.T) {
	rec := &recorder{}
	tb := startBroker(t, testConfig(), rec)
	tb.SetAccess(&fakeAccess{users: map[string]string{"door": "pw"}})
	for _, v := range []byte{4, 5} {
		rc, _, err := mqtttest.DialRawConnect(t, tb.addr("tcp"), v, connectParams("door", "door", "pw"))
		if err != nil {
			t.Fatal(err)
		}
		for qos := byte(0); qos <= 2; qos++ {
			id := uint16(qos + 1)
			rc.Publish("window/telemetry", []byte("x"), qos, id, packets.Properties{})
			if qos == 0 {
				continue
			}
			ack, err := rc.Read()
			wantType, wantCode := packets.Puback, byte(0)
			if qos == 2 {
				wantType = packets.Pubrec
			}
			if v == 5 {
				wantCode = 0x87
			}
			if err != nil || ack.FixedHeader.Type != wantType || ack.PacketID != id || ack.ReasonCode != wantCode {
				t.Errorf("v%d qos %d: ack %+v id %d reason %#x (%v), want type %d reason %#x", v, qos, ack.FixedHeader, ack.PacketID, ack.ReasonCode, err, wantType, wantCode)
			}
			if qos == 2 && v == 4 {
				rc.Send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: id})
				if pk, err := rc.Read(); err != nil || pk.FixedHeader.Type != packets.Pubcomp {
					t.Errorf("pubcomp: %+v %v", pk.FixedHeader, err)
				}
			}
		}
		rc.Ping() // still connected
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("the Handler got %d denied messages", n)
	}
	if got := tb.metric(t, `edgegate_mqtt_acl_denied_total{action="publish"}`); got != "6" {
		t.Errorf("publish denials = %s, want 6", got)
	}
}

// A denied SUBSCRIBE gets 0x87 (MQTT 5) or 0x80 (3.1.1) for that filter
// only; a subscription never receives a topic the Access denies to its
// client, nor a shared subscription one outside its filter's grant.
func TestSubscribeDenied(t *testing.T) {
	tb := startBroker(t, testConfig(), &recorder{})
	tb.SetAccess(&fakeAccess{users: map[string]string{"reader": "pw", "shared": "pw"}})
	for _, v := range []byte{4, 5} {
		rc, _, _ := mqtttest.DialRawConnect(t, tb.addr("tcp"), v, connectParams("reader", "reader", "pw"))
		rc.Send(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
			PacketID:    7,
			Filters: packets.Subscriptions{
				{Filter: "shared/#", Qos: 1}, {Filter: "other/#", Qos: 1}, {Filter: "#", Qos: 1},
				{Filter: "$SYS/#", Qos: 1}, {Filter: "$share/g/shared/x", Qos: 1}, {Filter: "$share/g/other/x", Qos: 1},
			},
		})
		deny := byte(0x80)
		if v == 5 {
			deny = 0x87
		}
		ack, err := rc.Read()
		want := []byte{1, deny, deny, deny, 1, deny}
		if err != nil || ack.FixedHeader.Type != packets.Suback || fmt.Sprint(ack.ReasonCodes) != fmt.Sprint(want) {
			t.Fatalf("v%d suback %v (%v), want %v", v, ack.ReasonCodes, err, want)
		}
		rc.Conn.Close()
	}
	if got := tb.metric(t, `edgegate_mqtt_acl_denied_total{action="subscribe"}`); got != "8" {
		t.Errorf("subscribe denials = %s, want 8", got)
	}

	// Read side: "reader" may receive shared/x, not shared/secret, which
	// "shared" may publish; Broker.Publish is not checked, its delivery is.
	reader := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "reader", func(o *paho.ClientOptions) { o.SetUsername("reader").SetPassword("pw") })
	got := mqtttest.Subscribe(t, reader, "shared/#", 1)
	pub := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "shared", func(o *paho.ClientOptions) { o.SetUsername("shared").SetPassword("pw") })
	mqtttest.Publish(t, pub, "shared/secret", 1, "no")
	if err := tb.Publish("shared/secret", []byte("no, local"), false, 1); err != nil {
		t.Fatal(err)
	}
	mqtttest.Publish(t, pub, "shared/x", 1, "yes")
	select {
	case m := <-got:
		if m.Topic() != "shared/x" {
			t.Fatalf("reader received %s %q", m.Topic(), m.Payload())
		}
	case <-time.After(waitLong):
		t.Fatal("reader received nothing")
	}
}

// With ObscureDenials, MQTT 5 clients are told 0x80 instead of 0x87.
func TestObscureDenials(t *testing.T) {
	tb := startBroker(t, testConfig(), &recorder{})
	tb.SetAccess(&fakeAccess{users: map[string]string{"door": "pw"}, obscure: true})
	rc, _, err := mqtttest.DialRawConnect(t, tb.addr("tcp"), 5, connectParams("door", "door", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	rc.Send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: "door/#", Qos: 1}, {Filter: "window/#", Qos: 1}},
	})
	if ack, err := rc.Read(); err != nil || fmt.Sprint(ack.ReasonCodes) != fmt.Sprint([]byte{1, 0x80}) {
		t.Errorf("suback %v (%v), want [1 0x80]", ack.ReasonCodes, err)
	}
	rc.Publish("window/x", []byte("x"), 1, 2, packets.Properties{})
	if ack, err := rc.Read(); err != nil || ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0x80 {
		t.Errorf("puback %+v reason %#x (%v), want 0x80", ack.FixedHeader, ack.ReasonCode, err)
	}
}

// A will whose topic the client may not publish to is removed when it
// connects: never sent, counted.
func TestWillTopicChecked(t *testing.T) {
	tb := startBroker(t, testConfig(), &recorder{})
	tb.SetAccess(&fakeAccess{users: map[string]string{"door": "pw", "watcher": "pw"}})
	watcher := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "watcher", func(o *paho.ClientOptions) { o.SetUsername("watcher").SetPassword("pw") })
	wills := mqtttest.Subscribe(t, watcher, "+/state", 1)
	for _, topic := range []string{"window/state", "door/state"} {
		c := connectParams("door", "door", "pw")
		c.WillFlag, c.WillTopic, c.WillPayload, c.WillQos = true, topic, []byte("gone"), 1
		rc, ack, err := mqtttest.DialRawConnect(t, tb.addr("tcp"), 5, c)
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("will %s: CONNACK %#x (%v), want 0", topic, ack.ReasonCode, err)
		}
		rc.Conn.Close() // no DISCONNECT: the will is due
	}
	select {
	case m := <-wills:
		if m.Topic() != "door/state" {
			t.Errorf("will on %s published", m.Topic())
		}
	case <-time.After(waitLong):
		t.Fatal("the permitted will was not published")
	}
	select {
	case m := <-wills:
		t.Errorf("a second will was published: %s", m.Topic())
	case <-time.After(200 * time.Millisecond):
	}
	if got := tb.metric(t, `edgegate_mqtt_wills_dropped_total{reason="not_permitted"}`); got != "1" {
		t.Errorf("wills dropped as not permitted = %s, want 1", got)
	}
}

// SetAccess disconnects the clients the new Access does not admit (their
// will is not published) and keeps the others.
func TestSetAccessRevokes(t *testing.T) {
	tb := startBroker(t, testConfig(), &recorder{})
	tb.SetAccess(&fakeAccess{users: map[string]string{"door": "pw", "window": "pw", "watcher": "pw"}})

	watcher := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "watcher", func(o *paho.ClientOptions) { o.SetUsername("watcher").SetPassword("pw") })
	wills := mqtttest.Subscribe(t, watcher, "window/state", 1)

	var doors []*mqtttest.Raw
	for _, v := range []byte{4, 5} {
		c := connectParams("door", "door", "pw")
		c.Clean = true
		rc, ack, err := mqtttest.DialRawConnect(t, tb.addr("tcp"), v, c)
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("connect: %v %#x", err, ack.ReasonCode)
		}
		doors = append(doors, rc)
	}
	// The second took the first's session over (mochi writes a DISCONNECT
	// even to MQTT 3.1.1 clients then).
	for {
		if _, err := doors[0].Read(); err != nil {
			if err != io.EOF {
				t.Fatalf("taken over connection: %v", err)
			}
			break
		}
	}
	window := mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "window", func(o *paho.ClientOptions) {
		o.SetUsername("window").SetPassword("pw").SetWill("window/state", "gone", 1, false)
	})

	tb.SetAccess(&fakeAccess{users: map[string]string{"window": "pw", "watcher": "pw"}}) // door removed
	pk, err := doors[1].Read()
	if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != 0x87 {
		t.Fatalf("door (v5): %+v reason %#x %v, want DISCONNECT 0x87", pk.FixedHeader, pk.ReasonCode, err)
	}
	if got := tb.metric(t, `edgegate_mqtt_revoked_disconnects_total`); got != "1" {
		t.Errorf("revoked = %s, want 1", got)
	}
	if !window.IsConnectionOpen() {
		t.Error("window lost its connection")
	}
	mqtttest.Publish(t, window, "window/x", 1, "still here")

	tb.SetAccess(&fakeAccess{users: map[string]string{"watcher": "pw"}}) // window removed: its will is not sent
	eventually(t, "window disconnected", func() bool { return !window.IsConnectionOpen() })
	select {
	case m := <-wills:
		t.Errorf("a revoked client's will was published: %s %q", m.Topic(), m.Payload())
	case <-time.After(200 * time.Millisecond):
	}
	// A revoked client cannot come back.
	_, ack, _ := mqtttest.DialRawConnect(t, tb.addr("tcp"), 5, connectParams("door", "door", "pw"))
	if ack.ReasonCode != 0x86 {
		t.Errorf("revoked door reconnects: CONNACK %#x", ack.ReasonCode)
	}
}
