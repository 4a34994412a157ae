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
// (see the package doc). o is not modified.
func New(o *paho.ClientOptions) paho.Client {
	opts := *o
	opts.Store = newStore(opts.Store)
	return paho.NewClient(&opts)
}

// store is a paho.Store that hands out private copies of PUBLISH packets
// and lists its keys in the order they were put.
type store struct {
	inner paho.Store

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
func (s *store) Get(key string) packets.ControlPacket {
	return private(s.inner.Get(key))
}

// All implements paho.Store: keys in Put order, unknown keys first.
func (s *store) All() []string {
	keys := s.inner.All()
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
