package pahoclient

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// New returns paho.NewClient(o) with o.Store (a MemoryStore when nil)
// wrapped so that paho's resume never touches a packet that is being sent
// and never resends one before Publish has queued it, and with
// o.MaxResumePubInFlight enforced by that store instead of by paho (see
// the package doc). o is not modified.
func New(o *paho.ClientOptions) paho.Client {
	opts := *o
	s := newStore(opts.Store)
	s.limit = opts.MaxResumePubInFlight
	opts.MaxResumePubInFlight = 0 // paho's own limit starts the goroutine that races
	opts.Store = s
	c := &client{Client: paho.NewClient(&opts), store: s}
	s.open = c.IsConnectionOpen
	return c
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

// store is a paho.Store that hands out private copies of PUBLISH packets,
// lists its keys in the order they were put once no Publish is under way,
// and holds resume while limit of its resent publishes await a PUBACK.
type store struct {
	inner paho.Store
	limit int         // resent publishes awaiting a PUBACK; 0: no limit
	open  func() bool // the client's IsConnectionOpen; set by New

	// publishing is read-locked by every Publish and locked by All.
	publishing sync.RWMutex

	mu     sync.Mutex
	last   uint64              // sequence of the latest Put
	seq    map[string]uint64   // key -> sequence of its Put; absent: put by an earlier process
	resent map[string]struct{} // outbound publishes Get handed to this resume, not yet deleted
	freed  chan struct{}       // signalled by Del
}

var _ paho.Store = (*store)(nil)

func newStore(inner paho.Store) *store {
	if inner == nil {
		inner = paho.NewMemoryStore()
	}
	return &store{
		inner:  inner,
		open:   func() bool { return false },
		seq:    map[string]uint64{},
		resent: map[string]struct{}{},
		freed:  make(chan struct{}, 1),
	}
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
// resume sends the outbound publishes it gets; with a limit, Get waits
// while limit of them await their PUBACK.
func (s *store) Get(key string) packets.ControlPacket {
	m := private(s.inner.Get(key))
	if _, ok := m.(*packets.PublishPacket); ok && s.limit > 0 && strings.HasPrefix(key, outboundPrefix) {
		s.awaitSlot(key)
	}
	return m
}

// outboundPrefix starts paho's store keys of packets it sends ("o.<id>").
const outboundPrefix = "o."

// checkOpenEvery is how often a waiting Get checks the connection. paho
// closes its stop channel when the connection drops, but resume sees it
// only once Get returns, and paho reconnects only after resume returned.
const checkOpenEvery = 20 * time.Millisecond

// awaitSlot waits until fewer than limit of the publishes handed to this
// resume await their PUBACK (Del), or until the connection is not open: a
// resume on a connection that is down or not yet up is not held (paho's
// reserveStoredPublishIDs gets every key before connecting; resume returns
// at its next send once the connection has dropped).
func (s *store) awaitSlot(key string) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		open := s.open()
		s.mu.Lock()
		if !open || len(s.resent) < s.limit {
			if open {
				s.resent[key] = struct{}{}
			}
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(checkOpenEvery)
		} else {
			timer.Reset(checkOpenEvery)
		}
		select {
		case <-s.freed:
		case <-timer.C:
		}
	}
}

// All implements paho.Store: keys in Put order, unknown keys first. paho's
// resume calls it first; it waits until no Publish is under way, so every
// packet a Publish sends is queued before resume's copy of it. It starts a
// new count of resent publishes: those of an earlier resume went out on a
// connection that is gone.
func (s *store) All() []string {
	s.publishing.Lock()
	keys := s.inner.All()
	s.publishing.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.resent)
	slices.SortStableFunc(keys, func(a, b string) int { return cmp.Compare(s.seq[a], s.seq[b]) })
	return keys
}

// Del implements paho.Store.
func (s *store) Del(key string) {
	s.mu.Lock()
	delete(s.seq, key)
	delete(s.resent, key)
	s.mu.Unlock()
	select {
	case s.freed <- struct{}{}:
	default:
	}
	s.inner.Del(key)
}

// Close implements paho.Store.
func (s *store) Close() { s.inner.Close() }

// Reset implements paho.Store.
func (s *store) Reset() {
	s.mu.Lock()
	clear(s.seq)
	clear(s.resent)
	s.mu.Unlock()
	s.inner.Reset()
}
