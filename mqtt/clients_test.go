package mqtt

import (
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// ClientList lists each connected device once, with its identity, listener,
// address, protocol and since when; a device that takes over its session
// is listed with its new connection, and one that left is gone.
func TestClientList(t *testing.T) {
	tb := startBroker(t, testConfig(), &recorder{})
	addr := tb.addr("tcp")
	before := time.Now()
	a := mqtttest.Connect(t, "tcp://"+addr, "dev-a", func(o *paho.ClientOptions) { o.SetUsername("alice") })
	mqtttest.DialRaw(t, addr, 5, "dev-b", true)
	eventually(t, "two clients listed", func() bool { return len(tb.ClientList()) == 2 })

	list := tb.ClientList()
	for i, want := range []struct {
		id      string
		version byte
	}{{"dev-a", 4}, {"dev-b", 5}} {
		c := list[i]
		if c.ClientID != want.id || c.ProtocolVersion != want.version || c.Listener != "tcp" || c.AuthMethod != AuthAnonymous {
			t.Errorf("client %d: %+v, want id %s protocol %d on tcp", i, c, want.id, want.version)
		}
		if host, _, err := net.SplitHostPort(c.RemoteAddr); err != nil || host != "127.0.0.1" {
			t.Errorf("client %s: remote address %q", c.ClientID, c.RemoteAddr)
		}
		if c.ConnectedSince.Before(before) || c.ConnectedSince.After(time.Now()) {
			t.Errorf("client %s: connected since %v, test began %v", c.ClientID, c.ConnectedSince, before)
		}
	}
	first := list[1].ConnectedSince

	// dev-b connects again: the new connection takes the session over.
	mqtttest.DialRaw(t, addr, 5, "dev-b", true)
	eventually(t, "dev-b listed once, with its new connection", func() bool {
		l := tb.ClientList()
		return len(l) == 2 && l[1].ClientID == "dev-b" && l[1].ConnectedSince.After(first)
	})

	a.Disconnect(100)
	eventually(t, "dev-a gone", func() bool {
		l := tb.ClientList()
		return len(l) == 1 && l[0].ClientID == "dev-b"
	})
	if n := tb.Clients(); n != 1 {
		t.Errorf("Clients() = %d, want 1", n)
	}
}
