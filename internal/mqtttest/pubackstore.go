package mqtttest

import (
	"strings"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// PubackStore is a paho Store (paho.ClientOptions.SetStore) that reports
// every QoS 1/2 publish the broker acknowledged, by its payload.
//
// A completed publish token does not say that on a persistent session:
// when paho resends its in-flight messages after a reconnect, it gives
// each resend a new token, which the caller never sees, and completes the
// old one without an error (client.resume → messageIds.claimID; paho
// issue 563). A device that then stops before the resend is answered
// counts a message as acknowledged that no broker ever acknowledged.
// paho deletes an outbound publish from its store only when its PUBACK
// (QoS 1) or PUBCOMP (QoS 2) arrives, so that deletion is the signal.
type PubackStore struct {
	paho.Store
	onAck func(payload []byte)

	mu       sync.Mutex
	payloads map[string][]byte // outbound store key -> payload
}

// NewPubackStore returns a PubackStore over paho's memory store that
// calls onAck with the payload of each acknowledged publish, on paho's
// receiving goroutine.
func NewPubackStore(onAck func(payload []byte)) *PubackStore {
	return &PubackStore{Store: paho.NewMemoryStore(), onAck: onAck, payloads: make(map[string][]byte)}
}

// outboundPrefix starts the store keys of the client's own messages.
const outboundPrefix = "o."

// Put stores m, remembering the payload of an outbound publish.
func (s *PubackStore) Put(key string, m packets.ControlPacket) {
	if p, ok := m.(*packets.PublishPacket); ok && strings.HasPrefix(key, outboundPrefix) {
		s.mu.Lock()
		s.payloads[key] = p.Payload
		s.mu.Unlock()
	}
	s.Store.Put(key, m)
}

// Del removes key; for an outbound publish that is its acknowledgement.
func (s *PubackStore) Del(key string) {
	s.mu.Lock()
	payload, ok := s.payloads[key]
	delete(s.payloads, key)
	s.mu.Unlock()
	s.Store.Del(key)
	if ok {
		s.onAck(payload)
	}
}

// Reset forgets everything stored (paho resets the store of a clean
// session: nothing in it was acknowledged).
func (s *PubackStore) Reset() {
	s.mu.Lock()
	clear(s.payloads)
	s.mu.Unlock()
	s.Store.Reset()
}
