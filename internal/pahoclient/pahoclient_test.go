package pahoclient

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

const waitLong = 10 * time.Second

func publish(id uint16, payload string) *packets.PublishPacket {
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName, p.Payload = 1, id, "t", []byte(payload)
	return p
}

func TestStoreCopiesAndOrders(t *testing.T) {
	for name, inner := range map[string]func(t *testing.T) paho.Store{
		"memory": func(*testing.T) paho.Store { return paho.NewMemoryStore() },
		"file":   func(t *testing.T) paho.Store { return paho.NewFileStore(t.TempDir()) },
	} {
		t.Run(name, func(t *testing.T) {
			s := newStore(inner(t))
			s.Open()
			defer s.Close()
			put := map[string]*packets.PublishPacket{}
			for _, k := range []string{"o.9", "o.10", "o.3"} {
				put[k] = publish(0, k)
				s.Put(k, put[k])
			}
			a, b := s.Get("o.10").(*packets.PublishPacket), s.Get("o.10").(*packets.PublishPacket)
			if a == b || a == put["o.10"] || b == put["o.10"] {
				t.Fatal("Get returned a packet it returned before or the one that was put")
			}
			if string(a.Payload) != "o.10" || a.Qos != 1 || a.TopicName != "t" {
				t.Fatalf("Get: %v", a)
			}
			a.Dup = true // what paho's resume does
			if b.Dup || put["o.10"].Dup || s.Get("o.10").(*packets.PublishPacket).Dup {
				t.Error("setting DUP on one copy changed another packet")
			}
			if got, want := s.All(), []string{"o.9", "o.10", "o.3"}; !slices.Equal(got, want) {
				t.Errorf("All = %v, want put order %v", got, want)
			}
			s.Del("o.10")
			s.Put("o.10", publish(0, "again"))
			if got, want := s.All(), []string{"o.9", "o.3", "o.10"}; !slices.Equal(got, want) {
				t.Errorf("All after Del and Put = %v, want %v", got, want)
			}
			if s.Get("o.1") != nil {
				t.Error("Get of a missing key returned a packet")
			}
			s.Reset()
			if keys := s.All(); len(keys) != 0 {
				t.Errorf("All after Reset = %v", keys)
			}
		})
	}
}

// Keys a FileStore kept from an earlier process come before the ones put
// since (they are older).
func TestStoreReopenedFileStore(t *testing.T) {
	dir := t.TempDir()
	old := paho.NewFileStore(dir)
	old.Open()
	old.Put("o.7", publish(7, "old"))
	old.Close()

	s := newStore(paho.NewFileStore(dir))
	s.Open()
	defer s.Close()
	s.Put("o.1", publish(1, "new"))
	if got, want := s.All(), []string{"o.7", "o.1"}; !slices.Equal(got, want) {
		t.Errorf("All = %v, want %v", got, want)
	}
	if p := s.Get("o.7").(*packets.PublishPacket); string(p.Payload) != "old" {
		t.Errorf("old packet: %v", p)
	}
}

// pipeBroker is the broker end of the client's connections: each dial
// makes a net.Pipe, so the test decides when paho's writer blocks.
type pipeBroker struct{ conns chan net.Conn }

func (b *pipeBroker) open(*url.URL, paho.ClientOptions) (net.Conn, error) {
	c, s := net.Pipe()
	b.conns <- s
	return c, nil
}

// accept answers the next CONNECT with a CONNACK (session present).
func (b *pipeBroker) accept(t *testing.T) net.Conn {
	t.Helper()
	var conn net.Conn
	select {
	case conn = <-b.conns:
	case <-time.After(waitLong):
		t.Fatal("client did not connect")
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(waitLong))
	if p, err := packets.ReadPacket(conn); err != nil {
		t.Fatalf("read CONNECT: %v", err)
	} else if _, ok := p.(*packets.ConnectPacket); !ok {
		t.Fatalf("got %v, want CONNECT", p)
	}
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.SessionPresent, ack.ReturnCode = true, packets.Accepted
	if err := ack.Write(conn); err != nil {
		t.Fatalf("write CONNACK: %v", err)
	}
	conn.SetDeadline(time.Time{})
	return conn
}

// connectPipe connects a persistent, reconnecting client built by New
// (options changed by adjust) through a pipeBroker, and returns the broker,
// the client and the broker's end of the first connection. The client
// disconnects when the test ends.
func connectPipe(t *testing.T, adjust func(*paho.ClientOptions)) (*pipeBroker, paho.Client, net.Conn) {
	t.Helper()
	b := &pipeBroker{conns: make(chan net.Conn, 4)}
	opts := paho.NewClientOptions().AddBroker("tcp://pipe:1883").SetClientID(t.Name()).
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetKeepAlive(0).SetWriteTimeout(waitLong).SetConnectTimeout(waitLong).
		SetCustomOpenConnectionFn(b.open)
	adjust(opts)
	c := New(opts)
	connected := make(chan paho.Token, 1)
	go func() { connected <- c.Connect() }()
	conn := b.accept(t)
	if tok := <-connected; !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return b, c, conn
}

// heldPut holds one Publish inside Store.Put, once armed, after storing
// its packet and before paho sends it, until released; and it notes
// whether paho listed the store while that Publish was held.
type heldPut struct {
	paho.Store
	armed       atomic.Bool
	holding     chan struct{}
	release     chan struct{}
	held        atomic.Bool
	listedEarly atomic.Bool
	watchAll    atomic.Bool
	listed      chan struct{} // closed by the first All once watchAll is set
}

func (h *heldPut) Put(key string, m packets.ControlPacket) {
	h.Store.Put(key, m)
	if h.armed.CompareAndSwap(true, false) {
		h.held.Store(true)
		close(h.holding)
		<-h.release
		h.held.Store(false)
	}
}

func (h *heldPut) All() []string {
	if h.held.Load() {
		h.listedEarly.Store(true)
	}
	if h.watchAll.CompareAndSwap(true, false) {
		defer close(h.listed)
	}
	return h.Store.All()
}

// A Publish under way while paho reconnects and resumes the session: its
// packet is sent by Publish and again by resume, the case where resume
// used to set DUP on the packet the writer was encoding (the race detector
// checks that no packet is shared now: the held packet is the first resume
// marks). Resume must not list the store before Publish has queued its
// packet, so the copy without DUP goes out first; every packet is intact,
// and resume resends in publish order.
func TestResumeAfterReconnect(t *testing.T) {
	const stored = 5 // 0 held across the drop, 1..4 unacknowledged before it
	store := &heldPut{Store: paho.NewMemoryStore(), holding: make(chan struct{}), release: make(chan struct{}), listed: make(chan struct{})}
	b, c, conn1 := connectPipe(t, func(o *paho.ClientOptions) { o.SetStore(store) })

	payload := func(i int) string { return fmt.Sprintf(`{"seq":%d}`, i) }
	// Publish(0) stores its packet and is held; 1..4 reach the broker,
	// which never acknowledges them; the connection drops and paho
	// reconnects; Publish(0) goes on once the new connection is up.
	store.armed.Store(true)
	published := make(chan struct{})
	go func() {
		c.Publish("t", 1, false, payload(0))
		close(published)
	}()
	<-store.holding
	for i := 1; i < stored; i++ {
		c.Publish("t", 1, false, payload(i))
		if _, err := packets.ReadPacket(conn1); err != nil {
			t.Fatal(err)
		}
	}
	store.watchAll.Store(true)
	conn1.Close()
	conn2 := b.accept(t)
	for deadline := time.Now().Add(waitLong); !c.IsConnectionOpen(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not connected again")
		}
	}

	type got struct {
		p   *packets.PublishPacket
		err error
	}
	arrived := make(chan got, 4*stored)
	read := func() {
		for {
			p, err := packets.ReadPacket(conn2)
			if err != nil {
				arrived <- got{err: err}
				return
			}
			pub, ok := p.(*packets.PublishPacket)
			if !ok {
				continue // DISCONNECT at the end
			}
			if pub.Dup { // Publish(0)'s copy stays unacknowledged, so resume lists it
				ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
				ack.MessageID = pub.MessageID
				if err := ack.Write(conn2); err != nil {
					arrived <- got{err: err}
					return
				}
			}
			arrived <- got{p: pub}
		}
	}
	// Publish(0) hands its packet to paho's writer, which blocks on the
	// pipe; resume lists the store and marks its copy of 0 meanwhile.
	close(store.release)
	select {
	case <-store.listed:
	case <-time.After(waitLong):
		t.Fatal("paho did not resume the session")
	}
	go read()
	<-published

	var resent []int // seq of each DUP copy, in arrival order
	fresh := -1      // index in resent when the copy without DUP (Publish(0)) came
	byID := map[uint16]string{}
	for len(resent) < stored || fresh < 0 {
		var g got
		select {
		case g = <-arrived:
		case <-time.After(waitLong):
			t.Fatalf("after the reconnect: resent %v (want %d), Publish(0) sent: %v", resent, stored, fresh >= 0)
		}
		if g.err != nil {
			t.Fatalf("broker read: %v", g.err)
		}
		p := g.p
		var seq int
		if _, err := fmt.Sscanf(string(p.Payload), `{"seq":%d}`, &seq); err != nil || p.TopicName != "t" || p.Qos != 1 || string(p.Payload) != payload(seq) {
			t.Fatalf("mangled PUBLISH: %v", p)
		}
		if prev, ok := byID[p.MessageID]; ok && prev != string(p.Payload) {
			t.Fatalf("packet id %d carried %s and %s", p.MessageID, prev, p.Payload)
		}
		byID[p.MessageID] = string(p.Payload)
		switch {
		case p.Dup:
			resent = append(resent, seq)
		case seq == 0 && fresh < 0:
			fresh = len(resent)
		default:
			t.Fatalf("message %d sent again without DUP", seq)
		}
	}
	if store.listedEarly.Load() {
		t.Error("resume listed the store while a Publish was between storing and sending its packet")
	}
	if fresh > 0 {
		t.Errorf("Publish(0) went out after resume's copy of it (resent before it: %v)", resent[:fresh])
	}
	want := make([]int, stored)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(resent, want) {
		t.Errorf("resume resent %v, want publish order %v", resent, want)
	}
}

// With MaxResumePubInFlight, paho's own limit starts a goroutine that
// races with the next reconnect (client.go:1038-1044 reads c.stop,
// client.go:610 writes it); New enforces the limit in the store instead.
// Resume holds at most the limit of unacknowledged resends, goes on as
// PUBACKs come, and is not stuck when the connection drops meanwhile.
func TestResumeLimit(t *testing.T) {
	const stored, limit = 5, 2
	b, c, conn1 := connectPipe(t, func(o *paho.ClientOptions) { o.SetMaxResumePubInFlight(limit) })
	for i := range stored {
		c.Publish("t", 1, false, fmt.Sprintf(`{"seq":%d}`, i))
		if _, err := packets.ReadPacket(conn1); err != nil {
			t.Fatal(err)
		}
	}

	// readPublish reads the next PUBLISH of conn, or fails after d.
	readPublish := func(conn net.Conn, d time.Duration) (*packets.PublishPacket, error) {
		conn.SetReadDeadline(time.Now().Add(d))
		defer conn.SetReadDeadline(time.Time{})
		p, err := packets.ReadPacket(conn)
		if err != nil {
			return nil, err
		}
		return p.(*packets.PublishPacket), nil
	}
	ack := func(conn net.Conn, p *packets.PublishPacket) {
		a := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
		a.MessageID = p.MessageID
		if err := a.Write(conn); err != nil {
			t.Fatal(err)
		}
	}

	// Second connection: limit resends, a third only after a PUBACK; then
	// the connection drops while resume waits.
	conn1.Close()
	conn2 := b.accept(t)
	var first []*packets.PublishPacket
	for range limit {
		p, err := readPublish(conn2, waitLong)
		if err != nil {
			t.Fatalf("resend: %v", err)
		}
		first = append(first, p)
	}
	if p, err := readPublish(conn2, 200*time.Millisecond); err == nil {
		t.Fatalf("resend %s beyond the limit of %d unacknowledged", p.Payload, limit)
	}
	ack(conn2, first[0])
	third, err := readPublish(conn2, waitLong)
	if err != nil {
		t.Fatalf("no resend after a PUBACK: %v", err)
	}
	if got := string(third.Payload); got != `{"seq":2}` || !third.Dup {
		t.Fatalf("third resend %s (dup %v), want seq 2", got, third.Dup)
	}
	conn2.Close()

	// Third connection: the four unacknowledged are resent, in order.
	conn3 := b.accept(t)
	for i := 1; i < stored; i++ {
		p, err := readPublish(conn3, waitLong)
		if err != nil {
			t.Fatalf("resend after the second drop: %v", err)
		}
		if want := fmt.Sprintf(`{"seq":%d}`, i); string(p.Payload) != want || !p.Dup {
			t.Fatalf("resend %s (dup %v), want %s", p.Payload, p.Dup, want)
		}
		ack(conn3, p)
	}
}
