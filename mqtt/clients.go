package mqtt

import (
	"slices"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// ClientInfo is a connected device, as ClientList reports it.
type ClientInfo struct {
	// ClientID, Username and AuthMethod are as in Message: Username is
	// the authenticated identity, "" for an anonymous client.
	ClientID, Username, AuthMethod string
	Listener                       string // listener id
	RemoteAddr                     string
	ProtocolVersion                byte // 3, 4 (3.1.1) or 5
	ConnectedSince                 time.Time
	// FairShareDelayed counts the device's publishes held back to its
	// fair share (Broker.LimitIntake) on this connection.
	FairShareDelayed int64
}

// clientInfo describes cl, connected since since; its identity comes from
// message, the one place identity is read.
func (b *Broker) clientInfo(cl *mochi.Client, since time.Time) ClientInfo {
	id := b.message(cl, packets.Packet{})
	return ClientInfo{
		ClientID:        id.ClientID,
		Username:        id.Username,
		AuthMethod:      id.AuthMethod,
		Listener:        cl.Net.Listener,
		RemoteAddr:      cl.Net.Remote,
		ProtocolVersion: cl.Properties.ProtocolVersion,
		ConnectedSince:  since,
	}
}

// clientTable is the connected devices, by mochi client: a device that
// takes over its own session is a new *mochi.Client, so its old
// connection's late disconnect removes only the old entry.
type clientTable struct {
	mu sync.Mutex
	m  map[*mochi.Client]ClientInfo
}

// ClientList returns the connected devices, sorted by client id (then by
// connection time). The gateway's own client is not listed. It is safe for
// concurrent use.
func (b *Broker) ClientList() []ClientInfo {
	b.clients.mu.Lock()
	out := make([]ClientInfo, 0, len(b.clients.m))
	for cl, info := range b.clients.m {
		if !cl.Closed() {
			if cc, ok := cl.Net.Conn.(*clientConn); ok {
				info.FairShareDelayed = cc.slowed.Load()
			}
			out = append(out, info)
		}
	}
	b.clients.mu.Unlock()
	slices.SortFunc(out, func(a, b ClientInfo) int {
		if c := strings.Compare(a.ClientID, b.ClientID); c != 0 {
			return c
		}
		return a.ConnectedSince.Compare(b.ConnectedSince)
	})
	return out
}

// clientsHook keeps the clientTable: a device is listed once its session
// is established (after its CONNACK) until its connection has ended.
type clientsHook struct {
	mochi.HookBase
	b *Broker
}

func (h *clientsHook) ID() string { return "edgegate-clients" }

func (h *clientsHook) Provides(b byte) bool {
	return b == mochi.OnSessionEstablished || b == mochi.OnDisconnect
}

func (h *clientsHook) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	info := h.b.clientInfo(cl, time.Now())
	t := &h.b.clients
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[*mochi.Client]ClientInfo)
	}
	t.m[cl] = info
	t.mu.Unlock()
}

func (h *clientsHook) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	t := &h.b.clients
	t.mu.Lock()
	delete(t.m, cl)
	t.mu.Unlock()
}
