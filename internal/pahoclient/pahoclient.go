package pahoclient

import (
	"cmp"
	"slices"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// New returns paho.NewClient(o) with o.Store (a MemoryStore when nil)
// wrapped so that paho's resume never touches a packet that is being sent
// and never resends one before Publish has queued it (see the package
// doc). o is not modified.
func New(o *paho.ClientOptions) paho.Client {
	opts := *o
	s := newStore(opts.Store)
	opts.Store = s
	return &client{Client: paho.NewClient(&opts), store: s}
}

// client is a paho client whose Publish calls the store's All waits for.
type client struct {
	paho.Client
	store *store
}

// Publish implements paho.Client. paho stores the packet (Put) and then
// hands it to its writer; resume does not list the store in between.
func (c *client) Publish(topic string, qos byte, retained bool, payload any) paho.Token {
	c.store.publishing.RLock()
	defer c.store.publishing.RUnlock()
	return c.Client.Publish(topic, qos, retained, payload)
}

// store is a paho.Store that hands out private copies of PUBLISH packets
// and lists its keys in the order they were put, once no Publish is under
// way.
type store struct {
	inner paho.Store

	// publishing is read-locked by every Publish and locked by All.
	publishing sync.RWMutex

	mu   sync.Mutex
	last uint64            // sequence of the latest Put
	seq  map[string]uint64 // key -> sequence of its Put; absent: put by an earlier process
}

var _ paho.Store = (*store)(nil)

func newStore(inner paho.Store) *store {
	if inner == nil {
		inner = paho.NewMemoryStore()
	}
	return &store{inner: inner, seq: map[string]uint64{}}
}

// private returns a copy of a PUBLISH packet that shares only the payload
// bytes, which paho never writes; other packets are returned as they are
// (resume sends them without modifying them).
func private(m packets.ControlPacket) packets.ControlPacket {
	if p, ok := m.(*packets.PublishPacket); ok {
		c := *p
		return &c
	}
	return m
}

// Open implements paho.Store.
func (s *store) Open() { s.inner.Open() }

// Put implements paho.Store. paho calls it before it hands m to its writer,
// so copying m here reads nothing that another goroutine writes.
func (s *store) Put(key string, m packets.ControlPacket) {
	s.mu.Lock()
	s.last++
	s.seq[key] = s.last
	s.mu.Unlock()
	s.inner.Put(key, private(m))
}

// Get implements paho.Store: every call returns a packet of its own.
func (s *store) Get(key string) packets.ControlPacket { return private(s.inner.Get(key)) }

// All implements paho.Store: keys in Put order, unknown keys first. paho's
// resume calls it first; it waits until no Publish is under way, so every
// packet a Publish sends is queued before resume's copy of it.
func (s *store) All() []string {
	s.publishing.Lock()
	keys := s.inner.All()
	s.publishing.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(s.seq[a], s.seq[b]) })
	return keys
}

// Del implements paho.Store.
func (s *store) Del(key string) {
	s.mu.Lock()
	delete(s.seq, key)
	s.mu.Unlock()
	s.inner.Del(key)
}

// Close implements paho.Store.
func (s *store) Close() { s.inner.Close() }

// Reset implements paho.Store.
func (s *store) Reset() {
	s.mu.Lock()
	clear(s.seq)
	s.mu.Unlock()
	s.inner.Reset()
}
