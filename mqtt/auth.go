package mqtt

import (
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// allowAllAuth lets every client connect and publish or subscribe to any
// topic. It is the only place that decides who may connect and what a client
// may publish or subscribe to: per-device authentication replaces this hook
// in New (mochi allows if ANY hook providing OnConnectAuthenticate or
// OnACLCheck says yes, so a stricter hook must not be added next to it).
// Keep the refusal of mochi's inline client id in the replacement.
type allowAllAuth struct {
	mochi.HookBase
}

func (h *allowAllAuth) ID() string { return "edgegate-auth-allow-all" }

func (h *allowAllAuth) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

// OnConnectAuthenticate refuses only the client id mochi reserves for its
// inline client: a device taking it over would disconnect Broker.Publish.
func (h *allowAllAuth) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	return pk.Connect.ClientIdentifier != mochi.InlineClientId
}

func (h *allowAllAuth) OnACLCheck(cl *mochi.Client, topic string, write bool) bool { return true }
