package mqtttest

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/pahoclient"
)

// Timeout bounds a connect, an acknowledgement or a subscription.
const Timeout = 10 * time.Second

// Options returns the options every test client starts from: broker (a URL
// such as tcp://127.0.0.1:1883), client id, clean session, no automatic
// reconnect, 5 s connect timeout, 30 s keep-alive with 60 s to answer a
// ping, 10 s write timeout, at most 100 messages resent at once after a
// reconnect. The broker answers a PINGREQ in order, after every publish
// sent before it is stored: a test that pipelines a thousand QoS 1
// publishes on a loaded machine can wait longer than paho's default 10 s
// for it, and paho would call the connection lost.
func Options(broker, id string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker(broker).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).SetKeepAlive(30 * time.Second).SetPingTimeout(60 * time.Second).
		SetWriteTimeout(10 * time.Second).SetMaxResumePubInFlight(100)
}

// Persistent adjusts options for a device that keeps its session and
// resends at once after a lost connection: no clean session, automatic
// reconnect and connect retry every 50 ms, at most 200 ms apart. Its
// publish tokens complete when paho resends after a reconnect, not on the
// PUBACK: see PubackStore.
func Persistent(o *paho.ClientOptions) {
	o.SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond)
}

// Dial connects a client built from Options(broker, id), changed by each
// adjust in turn (nil ones are skipped), and waits at most Timeout. The
// caller disconnects it.
func Dial(broker, id string, adjust ...func(*paho.ClientOptions)) (paho.Client, error) {
	o := Options(broker, id)
	for _, a := range adjust {
		if a != nil {
			a(o)
		}
	}
	c := pahoclient.New(o)
	tok := c.Connect()
	if !tok.WaitTimeout(Timeout) {
		c.Disconnect(0)
		return nil, fmt.Errorf("connect %s to %s: no CONNACK within %s", id, broker, Timeout)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", id, broker, err)
	}
	return c, nil
}

// Connect is Dial that fails the test on error; the client disconnects
// when the test ends.
func Connect(tb testing.TB, broker, id string, adjust ...func(*paho.ClientOptions)) paho.Client {
	tb.Helper()
	c, err := Dial(broker, id, adjust...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Acked reports whether tok completed without error within d. On a
// persistent session (Persistent) that is not a PUBACK: paho completes a
// publish's token without error when it resends the message after a
// reconnect. Count acknowledgements with PubackStore there.
func Acked(tok paho.Token, d time.Duration) bool {
	return tok.WaitTimeout(d) && tok.Error() == nil
}

// Wait fails the test unless tok completes without error within Timeout;
// what names the operation.
func Wait(tb testing.TB, tok paho.Token, what string) {
	tb.Helper()
	if !tok.WaitTimeout(Timeout) {
		tb.Fatalf("%s: token did not complete", what)
	}
	if err := tok.Error(); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// Publish publishes payload and waits for its acknowledgement (QoS 0: for
// the write).
func Publish(tb testing.TB, c paho.Client, topic string, qos byte, payload any) {
	tb.Helper()
	Wait(tb, c.Publish(topic, qos, false, payload), "publish to "+topic)
}

// Subscribe subscribes c to filter and returns the messages it receives
// (up to 1000 unread; a test that lets more pile up fails).
func Subscribe(tb testing.TB, c paho.Client, filter string, qos byte) <-chan paho.Message {
	tb.Helper()
	msgs := make(chan paho.Message, 1000)
	Wait(tb, c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) {
		select {
		case msgs <- m:
		default:
			tb.Errorf("mqtttest: subscription %s: more than %d unread messages", filter, cap(msgs))
		}
	}), "subscribe to "+filter)
	return msgs
}

// Steady publishes {"seq":0}, {"seq":1}, … to topic at QoS 1, one at a time
// and gap apart, until stop is closed; acked learns each seq acknowledged
// within 5 s. Run it in its own goroutine.
func Steady(c paho.Client, topic string, gap time.Duration, stop <-chan struct{}, acked func(seq int)) {
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		if Acked(c.Publish(topic, 1, false, fmt.Sprintf(`{"seq":%d}`, seq)), 5*time.Second) {
			acked(seq)
		}
		time.Sleep(gap)
	}
}

// Broker is a mochi broker for tests of MQTT clients.
//
// It accepts connections itself, as edgegate's broker does, and hands them
// to mochi. mochi v2.7.9's own listeners cannot be shut down safely while
// clients come and go: its listener closer takes the clients' read lock
// twice (Clients.GetByListener calls Len) and deadlocks when a client
// connects or leaves in between (TestSimulateCount hung for 10 minutes that
// way), and Server.Close waits on its client WaitGroup while the accept
// loop may still add to it (a data race).
type Broker struct {
	*mochi.Server
	URL string // tcp://127.0.0.1:port

	ln        net.Listener
	accepting sync.WaitGroup // the accept loop
	serving   sync.WaitGroup // one per connection, in EstablishConnection
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	closeOnce sync.Once
}

// Close stops the broker, disconnecting every client; later calls do nothing.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		_ = b.ln.Close()
		b.accepting.Wait()
		for _, cl := range b.Server.Clients.GetAll() {
			if !cl.Net.Inline && !cl.Closed() {
				_ = b.Server.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
		b.mu.Lock()
		for c := range b.conns {
			_ = c.Close() // connections still between accept and CONNECT
		}
		b.mu.Unlock()
		b.serving.Wait()
		_ = b.Server.Close()
	})
}

func (b *Broker) accept() {
	defer b.accepting.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.serving.Go(func() {
			_ = b.Server.EstablishConnection(listenerID, c)
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
			_ = c.Close()
		})
	}
}

// listenerID is the listener name mochi records for the broker's clients.
const listenerID = "tcp"

// NewBroker serves a mochi broker on addr ("127.0.0.1:0": any free port)
// that lets every client connect, publish and subscribe, with inline
// subscriptions (Server.Subscribe) enabled. The caller closes it. It stands
// in for edgegate's broker in tests of device-side tools.
func NewBroker(addr string) (*Broker, error) {
	s := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := s.Serve(); err != nil {
		ln.Close()
		return nil, err
	}
	b := &Broker{Server: s, URL: "tcp://" + ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	b.accepting.Add(1)
	go b.accept()
	return b, nil
}

// StartBroker is NewBroker on a free port of 127.0.0.1, closed when the test
// ends.
func StartBroker(tb testing.TB) *Broker {
	tb.Helper()
	b, err := NewBroker("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Close)
	return b
}
